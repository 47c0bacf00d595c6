"""Base of the image attention blocks that keep the input's shape.

SE, CBAM's channel and spatial attention, ECA, the non-local block and
2-D self-attention all return a feature map of the input's shape and, on
request (`return_attention_scores=True`), their attention weights. This
base holds that shape contract once; a subclass states only the shape of
its weights (`attention_scores_shape`).
"""

import keras


class ImageAttentionBase(keras.layers.Layer):
    """A layer `x -> y` with `y.shape == x.shape`, optionally with scores.

    Subclasses implement `call(inputs, return_attention_scores=False,
    ...)` (returning `outputs` or `(outputs, scores)`, see `with_scores`)
    and `attention_scores_shape(input_shape)`.
    """

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
