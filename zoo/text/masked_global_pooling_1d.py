"""Global max or mean pooling over time that honours padding masks."""

import keras
from keras import ops

from layers.validation import check_choice

MODES = ("max", "mean")


@keras.saving.register_keras_serializable(package="attention_zoo")
class MaskedGlobalPooling1D(keras.layers.Layer):
    """Max or mean over the unmasked steps of a sequence (the pooling of the
    "no attention" baselines).

    `keras.layers.GlobalMaxPooling1D` ignores masks (the zeros a masked RNN
    emits at padded steps can win the max) and
    `keras.layers.GlobalAveragePooling1D` divides by zero on a fully masked
    sequence (NaN for an empty text). Here masked steps never count and a
    fully masked sequence pools to zeros. Max-over-time pooling of RNN
    states follows Collobert et al. 2011 ("Natural Language Processing
    (Almost) from Scratch") and Kim 2014 ("Convolutional Neural Networks for
    Sentence Classification").

    For comparison with attention, `return_attention_scores=True` also
    returns each step's weight: for `"max"`, its share of the features whose
    maximum it holds (ties shared); for `"mean"`, `1 / length`. Both are
    `[B, T]` distributions over the unmasked steps.

    Args:
        mode: `"max"` or `"mean"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]`.
        mask: optional boolean `[B, T]`, `True` = step counts (filled from
            Keras masks).
        return_attention_scores: also return the `[B, T]` weights.

    Returns:
        `[B, D]`, or `(pooled, weights)`.

    Example:

    >>> import numpy as np
    >>> x = np.array([[[-9.0], [-15.0], [0.0]]], "float32")
    >>> pooled = MaskedGlobalPooling1D("max")(
    ...     x, mask=np.array([[True, True, False]]))
    >>> float(pooled[0, 0])
    -9.0
    """

    def __init__(self, mode="max", **kwargs):
        check_choice("mode", mode, MODES)
        super().__init__(**kwargs)
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None, return_attention_scores=False):
        if len(inputs.shape) != 3:
            raise ValueError(
                "`MaskedGlobalPooling1D` expects [batch, steps, features]. "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        valid = ops.expand_dims(mask, -1)  # [B, T, 1]
        count = ops.sum(ops.cast(mask, "float32"), axis=1, keepdims=True)
        if self.mode == "mean":
            # weights: [B, T], 1 / length on valid steps, 0 when empty.
            weights = ops.cast(mask, "float32") / ops.maximum(count, 1.0)
            pooled = ops.sum(
                inputs * ops.cast(weights[..., None], inputs.dtype), axis=1
            )
            return (pooled, weights) if return_attention_scores else pooled
        lowest = -6.0e4 if inputs.dtype == "float16" else -1.0e30
        filled = ops.where(valid, inputs, ops.cast(lowest, inputs.dtype))
        pooled = ops.max(filled, axis=1)  # [B, D]
        pooled = ops.where(count > 0, pooled, ops.zeros_like(pooled))
        if not return_attention_scores:
            return pooled
        wins = ops.logical_and(
            ops.equal(filled, ops.expand_dims(pooled, 1)), valid
        )
        wins = ops.cast(wins, "float32")
        # Ties: a feature's credit is split between the steps holding it.
        per_feature = ops.maximum(ops.sum(wins, axis=1, keepdims=True), 1.0)
        return pooled, ops.mean(wins / per_feature, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_output_spec(
        self, inputs, mask=None, return_attention_scores=False
    ):
        pooled = keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return pooled
        return pooled, keras.KerasTensor(inputs.shape[:2], dtype="float32")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
