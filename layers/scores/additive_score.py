"""Bahdanau's additive score `v^T tanh(W_q q + W_k k)` (Bahdanau 2014)."""

import math

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.scores.learned_score import LearnedScore
from layers.scores.score import as_float32
from layers.validation import check_bool
from layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="attention_zoo")
class AdditiveScore(LearnedScore):
    """Additive (`concat`) score `v^T tanh(W_q q + W_k k)`, learned weights.

    Bahdanau, Cho & Bengio 2014 (the alignment model `a(s, h)`), called
    `concat` by Luong, Pham & Manning 2015 (`v^T tanh(W [q; k])` is the same
    function). `W_q` (`[Dq, units]`) and `W_k` (`[Dk, units]`) are bias-free
    projections, `v` a `[units]` vector. With `normalize=True`, `v` is
    weight-normalised (Salimans & Kingma 2016): `v = g * v / |v|` with a
    learned scalar `g` (initialised to `sqrt(1 / units)`) and a bias `b`
    inside the tanh, as in tensorflow-addons' `BahdanauAttention`.

    `project_key` computes `W_k k` (`[B, Tk, units]`) once per sequence.

    References:
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Salimans & Kingma 2016, "Weight Normalization: A Simple
        Reparameterization to Accelerate Training of Deep Neural Networks".

    Args:
        units: positive int, the hidden size of the score.
        normalize: whether to weight-normalise `v` (adds `g` and `b`).
        kernel_initializer: initializer of `W_q`, `W_k` and `v`.
        kernel_regularizer: optional regularizer of `W_q`, `W_k` and `v`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`.
        key: `[B, Tk, Dk]`.

    Returns:
        float32 logits `[B, Tq, Tk]`.

    Example:
    ```python
    import numpy as np
    from layers import AdditiveScore

    score = AdditiveScore(units=8, normalize=True)
    logits = score(np.ones((2, 3, 4)), np.ones((2, 5, 6)))
    assert logits.shape == (2, 3, 5)
    ```
    """

    def __init__(
        self,
        units,
        normalize=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            **kwargs,
        )
        self.units = check_positive_int("units", units)
        self.normalize = check_bool("normalize", normalize)
        self.query_dense = self._projection("query_dense")
        self.key_dense = self._projection("key_dense")

    def _projection(self, name):
        return keras.layers.Dense(
            self.units,
            use_bias=False,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, key_shape):
        super().build(query_shape, key_shape)
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.v = self.add_kernel("v", (self.units,))
        if self.normalize:
            self.g = self.add_weight(
                name="g",
                shape=(),
                initializer=keras.initializers.Constant(
                    math.sqrt(1.0 / self.units)
                ),
            )
            self.b = self.add_weight(
                name="b", shape=(self.units,), initializer="zeros"
            )

    def project_key(self, key):
        return self.key_dense(key)  # [B, Tk, units]

    def score_projected(self, query, projected_key):
        # Broadcast [B, Tq, 1, units] + [B, 1, Tk, units].
        hidden = ops.expand_dims(as_float32(self.query_dense(query)), 2)
        hidden = hidden + ops.expand_dims(as_float32(projected_key), 1)
        v = as_float32(self.v)
        if self.normalize:
            hidden = hidden + as_float32(self.b)
            v = as_float32(self.g) * v * ops.rsqrt(ops.sum(ops.square(v)))
        # sum_u v_u tanh(h_u) as a matrix-vector product: the same score
        # with fewer passes over the [B, Tq, Tk, units] tensor, forward and
        # backward (the gradient of `v` is one product, not a broadcast
        # multiply and a reduction), markedly faster with and without XLA.
        scores = ops.matmul(ops.tanh(hidden), ops.expand_dims(v, -1))
        return ops.squeeze(scores, -1)  # [B, Tq, Tk]

    def score_args(self):
        return {"units": self.units, "normalize": self.normalize}
