"""Base of the image attention blocks that keep the input's shape.

SE, CBAM's channel and spatial attention, ECA, the non-local block and
2-D self-attention all return a feature map of the input's shape and, on
request (`return_attention_scores=True`), their attention weights. This
base holds that shape contract once; a subclass states only the shape of
its weights (`attention_scores_shape`).
"""

import keras

from layers import vision_utils


class ImageAttentionBase(keras.layers.Layer):
    """A layer `x -> y` with `y.shape == x.shape`, optionally with scores.

    Subclasses set `self.data_format` (and `self.channels`, the declared
    channel count or `None`), implement `call(inputs,
    return_attention_scores=False, ...)` (returning `outputs` or
    `(outputs, scores)`, see `with_scores`) and
    `attention_scores_shape(input_shape)`, and check their input in
    `build` with `input_channels`.
    """

    def input_channels(self, input_shape):
        """The channel count of `input_shape`, after checking it: rank-4
        images in `data_format` with a known channel count equal to
        `channels` where declared (`ValueError` otherwise)."""
        name = type(self).__name__
        vision_utils.check_image_shape(input_shape, name, self.data_format)
        return vision_utils.resolve_channels(
            self.channels, input_shape, self.data_format, name
        )

    def attention_scores_shape(self, input_shape):
        """Hook: the shape of the attention weights for `input_shape`."""
        raise NotImplementedError

    @staticmethod
    def with_scores(outputs, scores, return_attention_scores):
        """What `call` returns: `(outputs, scores)` when asked, else
        `outputs`."""
        if return_attention_scores:
            return outputs, scores
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(
        self, inputs, return_attention_scores=False, training=None
    ):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        scores = None
        if return_attention_scores:
            scores = keras.KerasTensor(
                self.attention_scores_shape(tuple(inputs.shape)),
                dtype=self.compute_dtype,
            )
        return self.with_scores(outputs, scores, return_attention_scores)
