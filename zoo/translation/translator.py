"""Base class of the translators: a teacher-forced functional model that
also decodes (greedy or beam search, `zoo.decoding`).

Sutskever, Vinyals & Le 2014, "Sequence to Sequence Learning with Neural
Networks"; beam search with the length penalty of Wu et al. 2016.
"""

import keras

PAD_ID = 0
UNK_ID = 1
START_ID = 2
END_ID = 3


class Translator(keras.Model):
    """A sequence-to-sequence model trained with teacher forcing.

    Subclasses build a functional model (keras-hub style: layers as
    attributes, then `super().__init__(inputs, outputs)`) with the inputs
    `{"source": int32 [B, S], "target_in": int32 [B, T]}` (0 = padding;
    `target_in` starts with `start_id`) and the output logits `[B, T, V]`
    predicting `target_out` (the targets shifted by one, ending in
    `end_id`). They implement the two pieces decoding needs:

    - `encode(source_ids, max_length)` -> `(state, context)`: the initial
      decoder state and the step-invariant context (see `zoo.decoding`);
    - `decode_step(tokens, state, context, step)` -> `(logits, state,
      attention)`: one decoder step (the `zoo.decoding` step function).

    `generate` runs greedy or beam search with them. All of it traces into
    a `tf.function` (the exported SavedModel decodes in one graph).

    Args:
        start_id: id of the start token fed at the first step.
        end_id: id of the end token that finishes a translation.
        max_target_length: default maximum number of produced tokens.
        **kwargs: `keras.Model` arguments (`inputs`, `outputs`, `name`).
    """

    def __init__(
        self,
        *args,
        start_id=START_ID,
        end_id=END_ID,
        max_target_length=64,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.start_id = start_id
        self.end_id = end_id
        self.max_target_length = max_target_length

    @property
    def has_attention(self):
        """Whether `decode_step` returns attention weights."""
        return True

    def encode(self, source_ids, max_length):
        raise NotImplementedError

    def decode_step(self, tokens, state, context, step):
        raise NotImplementedError

    def generate(
        self,
        source_ids,
        method="greedy",
        max_length=None,
        beam_width=4,
        length_penalty=0.6,
    ):
        """Translates a batch of token ids.

        Args:
            source_ids: int `[B, S]` source ids (0 = padding).
            method: `"greedy"` or `"beam"`.
            max_length: maximum produced tokens (default
                `max_target_length`).
            beam_width: beams per example (beam search).
            length_penalty: GNMT alpha (beam search).

        Returns:
            A `zoo.decoding.DecodeResult` (`[B, ...]` for greedy,
            `[B, K, ...]` for beam search, best beam first).
        """
        import tensorflow as tf

        from zoo import decoding

        decoding.check_search_method(method)
        source_ids = tf.cast(tf.convert_to_tensor(source_ids), tf.int32)
        max_length = max_length or self.max_target_length
        state, context = self.encode(source_ids, max_length)
        start = tf.fill([tf.shape(source_ids)[0]], self.start_id)
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
            "max_target_length": self.max_target_length,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
