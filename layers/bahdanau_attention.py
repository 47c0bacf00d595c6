"""Bahdanau (additive) attention with learned projections (Bahdanau 2014)."""

import keras

from layers.score_attention_base import ScoreAttentionBase
from layers.scores.additive_score import AdditiveScore


@keras.saving.register_keras_serializable(package="attention_zoo")
class BahdanauAttention(ScoreAttentionBase):
    """Additive attention `softmax(v^T tanh(W_q q + W_k k)) @ value`.

    The attention of Bahdanau, Cho & Bengio 2014, with learned bias-free
    projections `W_q`, `W_k` to `units` and a learned vector `v` (the
    `additive` score, `layers.AdditiveScore`). `normalize=True` is the
    weight-normalised variant of tensorflow-addons (Salimans & Kingma 2016):
    `v = g * v / |v|` with a learned scalar `g` and a bias `b` inside the
    tanh.

    Made for decoders: the query may be one decoder state `[B, Dq]` (then
    the context is `[B, Dv]` and the weights `[B, Tk]`) or a sequence
    `[B, Tq, Dq]`. To attend step by step over the same source, compute the
    key projection ("memory") once with `project_key(key)` and pass it to
    every step as `projected_key=`.

    References:
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Salimans & Kingma 2016, "Weight Normalization: A Simple
        Reparameterization to Accelerate Training of Deep Neural Networks".

    Args:
        units: positive int, the hidden size of the additive score.
        normalize: whether to weight-normalise `v` (adds `g` and `b`).
        probability_fn: `"softmax"` (default), `"sparsemax"` (Martins &
            Astudillo 2016) or `"sigmoid"`.
        dropout: dropout rate applied to the attention weights in training.
        kernel_initializer: initializer of `W_q`, `W_k` and `v`.
        kernel_regularizer: optional regularizer of `W_q`, `W_k` and `v`.
        seed: optional int seed of the dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`, or one decoder state `[B, Dq]`.
        value: `[B, Tk, Dv]` (the encoder outputs).
        key: optional `[B, Tk, Dk]`; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`[B]` for a 2-D query).
        value_mask: optional boolean `[B, Tk]`, `True` = may attend. Filled
            automatically from the value's Keras mask.
        attention_mask: optional boolean `[B, Tq, Tk]` (`[B, Tk]` for a 2-D
            query).
        return_attention_scores: also return the weights.
        use_causal_mask: forbid query `i` from attending keys
            `j > query_position + i`.
        training: whether dropout is active.
        projected_key: optional output of `project_key(key)`.
        query_position: position of the first query on the key axis (int or
            `[B]` ints, default 0), e.g. the decoding step.

    Returns:
        The context `[B, Tq, Dv]` (`[B, Dv]` for a 2-D query) and, with
        `return_attention_scores=True`, the float32 weights `[B, Tq, Tk]`
        (`[B, Tk]`), taken before dropout.

    Example:
    ```python
    import numpy as np
    from layers import BahdanauAttention

    attention = BahdanauAttention(units=8, normalize=True)
    encoder_outputs = np.random.rand(2, 7, 16).astype("float32")
    state = np.random.rand(2, 12).astype("float32")
    context, weights = attention(
        state, encoder_outputs, return_attention_scores=True
    )
    assert context.shape == (2, 16) and weights.shape == (2, 7)
    # Step by step: project the keys once, reuse them at every step.
    memory = attention.project_key(encoder_outputs)
    context = attention(state, encoder_outputs, projected_key=memory)
    ```
    """

    def __init__(
        self,
        units,
        normalize=False,
        probability_fn="softmax",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            probability_fn=probability_fn,
            dropout=dropout,
            seed=seed,
            **kwargs,
        )
        self.score_layer = AdditiveScore(
            units,
            normalize=normalize,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            dtype=self.dtype_policy,
            name="additive_score",
        )
        self.units = units
        self.normalize = normalize
        self.kernel_initializer = self.score_layer.kernel_initializer
        self.kernel_regularizer = self.score_layer.kernel_regularizer

    def get_config(self):
        config = {
            "units": self.units,
            "normalize": self.normalize,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer
            ),
        }
        return {**super().get_config(), **config}
