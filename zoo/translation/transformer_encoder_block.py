"""One Transformer encoder block on this project's MultiHeadAttention."""

import keras

from layers import MultiHeadAttention


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerEncoderBlock(keras.layers.Layer):
    """Self-attention and a feed-forward network, each with a residual.

    Vaswani et al. 2017, §3.1. With `norm_first=True` (default) layer
    normalisation comes before each sub-layer (pre-LN, Xiong et al. 2020,
    which trains without a long warm-up); `False` is the paper's post-LN.

    Args:
        num_heads: attention heads.
        ff_dim: hidden size of the feed-forward network.
        dropout: dropout on attention weights and sub-layer outputs.
        norm_first: pre-LN (`True`) or post-LN.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[B, T, D]`.
        mask: optional boolean `[B, T]` padding mask (automatic).
        training: dropout switch.

    Returns:
        `[B, T, D]`.
    """

    def __init__(
        self, num_heads, ff_dim, dropout=0.1, norm_first=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.norm_first = norm_first
        self.supports_masking = True

    def build(self, inputs_shape):
        dim = inputs_shape[-1]
        self.attention = MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.attention.build(inputs_shape, inputs_shape)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=self.dtype_policy, name="attention_norm"
        )
        self.attention_norm.build(inputs_shape)
        self.ff_inner = keras.layers.Dense(
            self.ff_dim,
            activation="relu",
            dtype=self.dtype_policy,
            name="ff_inner",
        )
        self.ff_inner.build(inputs_shape)
        self.ff_outer = keras.layers.Dense(
            dim, dtype=self.dtype_policy, name="ff_outer"
        )
        self.ff_outer.build((*inputs_shape[:-1], self.ff_dim))
        self.ff_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=self.dtype_policy, name="ff_norm"
        )
        self.ff_norm.build(inputs_shape)
        self.sublayer_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="sublayer_dropout"
        )

    def _residual(self, x, norm, fn, training):
        if self.norm_first:
            return x + self.sublayer_dropout(fn(norm(x)), training=training)
        return norm(x + self.sublayer_dropout(fn(x), training=training))

    def call(self, inputs, mask=None, training=None):
        def attend(x):
            return self.attention(
                x, x, query_mask=mask, value_mask=mask, training=training
            )

        x = self._residual(inputs, self.attention_norm, attend, training)
        return self._residual(
            x,
            self.ff_norm,
            lambda h: self.ff_outer(self.ff_inner(h)),
            training,
        )

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
        }
