"""Luong's `location` score `W_a h_t`, from the query alone (Luong 2015)."""

import keras
from keras import ops

from layers.scores.learned_score import LearnedScore
from layers.scores.score import as_float32
from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class LocationScore(LearnedScore):
    """Location-based score `a_t = W_a h_t`: logits from the query alone.

    Luong, Pham & Manning 2015, eq. 8 ("location"): one learned logit per
    source position, predicted from the decoder state; the keys' contents
    are ignored (only their number `Tk` is used). `W_a` is stored as a
    `[Dq, max_length]` kernel and the logits are its first `Tk` columns, so
    the score needs the maximum number of keys up front. Calling it with more
    than `max_length` keys raises a `ValueError` (checked on static shapes).

    Reference:
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        max_length: the maximum number of keys `Tk`.
        kernel_initializer: initializer of `W_a`.
        kernel_regularizer: optional regularizer of `W_a`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`.
        key: `[B, Tk, Dk]` with `Tk <= max_length`.

    Returns:
        float32 logits `[B, Tq, Tk]`.

    Example:
    ```python
    import numpy as np
    from layers import LocationScore

    score = LocationScore(max_length=10)
    logits = score(np.ones((2, 3, 4)), np.ones((2, 7, 6)))
    assert logits.shape == (2, 3, 7)
    ```
    """

    def __init__(
        self,
        max_length,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            **kwargs,
        )
        self.max_length = check_positive_int("max_length", max_length)

    def build(self, query_shape, key_shape):
        super().build(query_shape, key_shape)
        self.kernel = self.add_kernel(
            "kernel", (query_shape[-1], self.max_length)
        )

    def _check_length(self, key_shape):
        # One logit per position: at most `max_length` keys.
        length = key_shape[1]
        if length is not None and int(length) > self.max_length:
            raise ValueError(
                f"LocationScore was built for at most max_length="
                f"{self.max_length} keys, but got {int(length)} keys. "
                f"Received: key.shape={tuple(key_shape)}"
            )

    def check_shapes(self, query_shape, key_shape):
        super().check_shapes(query_shape, key_shape)
        self._check_length(key_shape)

    def score_projected(self, query, projected_key):
        self._check_length(projected_key.shape)
        length = ops.shape(projected_key)[1]
        # [B, Tq, Dq] x [Dq, max_length] -> [B, Tq, max_length]
        logits = ops.matmul(as_float32(query), as_float32(self.kernel))
        return logits[:, :, :length]

    def score_args(self):
        return {"max_length": self.max_length}
