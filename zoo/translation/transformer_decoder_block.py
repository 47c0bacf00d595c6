"""One Transformer decoder block with an incremental-decoding cache."""

import keras
from keras import ops

from layers import MultiHeadAttention


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerDecoderBlock(keras.layers.Layer):
    """Causal self-attention, cross-attention over the encoder, feed-forward.

    Vaswani et al. 2017, §3.1, on this project's `MultiHeadAttention`:
    teacher-forced over a whole target sequence with `call`, or one token
    at a time with `step`, which keeps the self-attention keys/values in a
    static-shape cache and reads the encoder's keys/values from a cache
    computed once (`cross_attention_cache`). Pre-LN by default (see
    `TransformerEncoderBlock`).

    Args:
        num_heads: attention heads.
        ff_dim: hidden size of the feed-forward network.
        dropout: dropout on attention weights and sub-layer outputs.
        norm_first: pre-LN (`True`) or post-LN.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[B, T, D]` embedded target tokens.
        memory: `[B, S, D]` encoder output.
        inputs_mask: optional boolean `[B, T]` (automatic).
        memory_mask: optional boolean `[B, S]` (automatic).
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

    def build(self, inputs_shape, memory_shape):
        dim = inputs_shape[-1]
        self.self_attention = MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.cross_attention = MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="cross_attention",
        )
        self.cross_attention.build(inputs_shape, memory_shape)
        self.norms = []
        for name in ("self_attention_norm", "cross_attention_norm", "ff_norm"):
            norm = keras.layers.LayerNormalization(
                epsilon=1e-6, dtype=self.dtype_policy, name=name
            )
            norm.build(inputs_shape)
            self.norms.append(norm)
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
        self.sublayer_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="sublayer_dropout"
        )

    def _residual(self, x, norm, fn, training):
        if self.norm_first:
            return x + self.sublayer_dropout(fn(norm(x)), training=training)
        return norm(x + self.sublayer_dropout(fn(x), training=training))

    def _feed_forward(self, x, training):
        return self._residual(
            x,
            self.norms[2],
            lambda h: self.ff_outer(self.ff_inner(h)),
            training,
        )

    def call(
        self,
        inputs,
        memory,
        inputs_mask=None,
        memory_mask=None,
        training=None,
    ):
        def self_attend(x):
            return self.self_attention(
                x,
                x,
                query_mask=inputs_mask,
                use_causal_mask=True,
                training=training,
            )

        def cross_attend(x):
            return self.cross_attention(
                x,
                memory,
                query_mask=inputs_mask,
                value_mask=memory_mask,
                training=training,
            )

        x = self._residual(inputs, self.norms[0], self_attend, training)
        x = self._residual(x, self.norms[1], cross_attend, training)
        return self._feed_forward(x, training)

    # === Incremental decoding ===

    def cross_attention_cache(self, memory):
        """The encoder's keys/values `[B, 2, S, heads, head_dim]`, once."""
        return self.cross_attention.compute_key_value_cache(memory)

    def initialize_cache(self, batch_size, max_length):
        """An empty self-attention cache `[B, 2, max_length, heads, dim]`."""
        return self.self_attention.initialize_cache(batch_size, max_length)

    def step(self, inputs, self_cache, cross_cache, memory_mask, index):
        """Decodes new tokens `[B, t, D]` at positions `index ...`.

        Returns:
            `(outputs [B, t, D], new self_cache, cross-attention weights
            [B, heads, t, S])`.
        """
        outputs = {}

        def self_attend(x):
            out, outputs["cache"] = self.self_attention(
                x,
                x,
                cache=self_cache,
                cache_update_index=index,
                use_causal_mask=True,
            )
            return out

        def cross_attend(x):
            out, outputs["weights"], _ = self.cross_attention(
                x,
                None,
                cache=cross_cache,
                value_mask=memory_mask,
                return_attention_scores=True,
            )
            return out

        x = self._residual(inputs, self.norms[0], self_attend, False)
        x = self._residual(x, self.norms[1], cross_attend, False)
        x = self._feed_forward(x, False)
        return x, outputs["cache"], ops.cast(outputs["weights"], "float32")

    def compute_output_shape(self, inputs_shape, memory_shape):
        return inputs_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
        }
