"""Base of the Transformer encoder and decoder blocks (Vaswani et al. 2017).

What both blocks share: the constructor arguments, the residual wrapper
with pre-LN or post-LN, the position-wise feed-forward network and the
builders of their sublayers, on this project's `MultiHeadAttention`.
"""

import keras

from layers import MultiHeadAttention


class TransformerBlock(keras.layers.Layer):
    """Residual sub-layers with a feed-forward network; a base class.

    With `norm_first=True` (default) layer normalisation comes before each
    sub-layer (pre-LN, Xiong et al. 2020, which trains without a long
    warm-up); `False` is the paper's post-LN. Subclasses build their
    attention sub-layers with `attention_layer`, their norms with
    `layer_norm` and the feed-forward network with `build_feed_forward`,
    and wrap each sub-layer in `residual`.

    Args:
        num_heads: attention heads.
        ff_dim: hidden size of the feed-forward network.
        dropout: dropout on attention weights and sub-layer outputs.
        norm_first: pre-LN (`True`) or post-LN.
        **kwargs: base layer arguments.
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

    def attention_layer(self, name, query_shape, value_shape):
        """A built `MultiHeadAttention` splitting the model dim in heads."""
        dim = query_shape[-1]
        attention = MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name=name,
        )
        attention.build(query_shape, value_shape)
        return attention

    def layer_norm(self, name, inputs_shape):
        """A built `LayerNormalization` (epsilon 1e-6, as the paper's)."""
        norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=self.dtype_policy, name=name
        )
        norm.build(inputs_shape)
        return norm

    def build_feed_forward(self, inputs_shape):
        """Builds `ff_inner` (ReLU), `ff_outer` and `sublayer_dropout`."""
        self.ff_inner = keras.layers.Dense(
            self.ff_dim,
            activation="relu",
            dtype=self.dtype_policy,
            name="ff_inner",
        )
        self.ff_inner.build(inputs_shape)
        self.ff_outer = keras.layers.Dense(
            inputs_shape[-1], dtype=self.dtype_policy, name="ff_outer"
        )
        self.ff_outer.build((*inputs_shape[:-1], self.ff_dim))
        self.sublayer_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="sublayer_dropout"
        )

    def residual(self, x, norm, fn, training):
        """`x + fn(norm(x))` (pre-LN) or `norm(x + fn(x))` (post-LN)."""
        if self.norm_first:
            return x + self.sublayer_dropout(fn(norm(x)), training=training)
        return norm(x + self.sublayer_dropout(fn(x), training=training))

    def feed_forward(self, x, norm, training):
        """The residual feed-forward sub-layer, normalised by `norm`."""
        return self.residual(
            x, norm, lambda h: self.ff_outer(self.ff_inner(h)), training
        )

    def compute_output_shape(self, inputs_shape, *args):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
        }
