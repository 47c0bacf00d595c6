"""Base class of the image captioners: a teacher-forced functional model
that also decodes captions (greedy or beam search, `zoo.decoding`).

Vinyals et al. 2015, "Show and Tell: A Neural Image Caption Generator";
Xu et al. 2015, "Show, Attend and Tell".
"""

import keras

PAD_ID = 0
UNK_ID = 1
START_ID = 2
END_ID = 3


class Captioner(keras.Model):
    """An image-to-caption model trained with teacher forcing.

    Subclasses build a functional model with the inputs `{"images": uint8
    [B, H, W, C], "target_in": int32 [B, T]}` (0 = padding; `target_in`
    starts with `start_id`) and the output logits `[B, T, V]` predicting
    `target_out` (the caption shifted by one, ending in `end_id`). They
    implement what decoding needs, in the `zoo.decoding` contract:

    - `encode(images)` -> `(state, context)`: the initial decoder state and
      the step-invariant context (the annotation vectors);
    - `decode_step(tokens, state, context, step)` -> `(logits, state,
      attention)`, the attention `[N, L]` over the `L` annotation vectors.

    `generate` runs greedy or beam search with them (one graph inside a
    `tf.function`, as in the exported SavedModel). `feature_grid` is the
    `(rows, cols)` layout of the annotation vectors over the image, so an
    attention vector reshapes to a map.

    Args:
        start_id: id of the start token fed at the first step.
        end_id: id of the end token that finishes a caption.
        max_caption_length: default maximum number of produced tokens.
        **kwargs: `keras.Model` arguments (`inputs`, `outputs`, `name`).
    """

    def __init__(
        self,
        *args,
        start_id=START_ID,
        end_id=END_ID,
        max_caption_length=24,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.start_id = start_id
        self.end_id = end_id
        self.max_caption_length = max_caption_length

    @property
    def feature_grid(self):
        raise NotImplementedError

    def encode(self, images):
        raise NotImplementedError

    def decode_step(self, tokens, state, context, step):
        raise NotImplementedError

    def generate(
        self,
        images,
        method="greedy",
        max_length=None,
        beam_width=4,
        length_penalty=0.0,
    ):
        """Captions a batch of images.

        Args:
            images: uint8 `[B, H, W, C]` at the model's input size.
            method: `"greedy"` or `"beam"`.
            max_length: maximum produced tokens (default
                `max_caption_length`).
            beam_width: beams per example (beam search).
            length_penalty: GNMT alpha (beam search).

        Returns:
            A `zoo.decoding.DecodeResult` (`[B, ...]` for greedy,
            `[B, K, ...]` for beam search, best beam first); its
            `attention` is `[..., L, rows * cols]`.
        """
        import tensorflow as tf

        from zoo import decoding

        decoding.check_search_method(method)
        images = tf.convert_to_tensor(images)
        max_length = max_length or self.max_caption_length
        state, context = self.encode(images)
        start = tf.fill([tf.shape(images)[0]], self.start_id)
        return decoding.search(
            method,
            self.decode_step,
            state,
            start,
            self.end_id,
            max_length,
            beam_width=beam_width,
            length_penalty=length_penalty,
            context=context,
            pad_token=PAD_ID,
        )

    def get_config(self):
        return {
            "name": self.name,
            "start_id": self.start_id,
            "end_id": self.end_id,
            "max_caption_length": self.max_caption_length,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
