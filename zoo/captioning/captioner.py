"""Base class of the image captioners: a `SequenceGenerator` over images.

Vinyals et al. 2015, "Show and Tell: A Neural Image Caption Generator";
Xu et al. 2015, "Show, Attend and Tell".
"""

from zoo.sequence_generator import SequenceGenerator


class Captioner(SequenceGenerator):
    """An image-to-caption model trained with teacher forcing.

    A `zoo.SequenceGenerator` whose inputs are `{"images": uint8
    [B, H, W, C], "target_in": int32 [B, T]}` (0 = padding). Subclasses
    implement `encode(images, max_length)` (the context is the annotation
    vectors), `decode_step` (its attention `[N, L]` over the `L` annotation
    vectors) and `feature_grid`, the `(rows, cols)` layout of the
    annotation vectors over the image, so an attention vector reshapes to
    a map. `generate(images, ...)` captions a batch of images at the
    model's input size; its `attention` is `[..., L, rows * cols]`.

    Args:
        max_caption_length: default maximum number of produced tokens.
        **kwargs: `SequenceGenerator` arguments (`start_id`, `end_id`) and
            `keras.Model` arguments (`inputs`, `outputs`, `name`).
    """

    max_length_key = "max_caption_length"

    def __init__(self, *args, max_caption_length=24, **kwargs):
        super().__init__(*args, max_length=max_caption_length, **kwargs)

    @property
    def max_caption_length(self):
        return self.max_length

    @property
    def feature_grid(self):
        raise NotImplementedError
