"""One Transformer decoder block with an incremental-decoding cache."""

import keras
from keras import ops

from zoo.translation.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerDecoderBlock(TransformerBlock):
    """Causal self-attention, cross-attention over the encoder, feed-forward.

    Vaswani et al. 2017, §3.1, on this project's `MultiHeadAttention`:
    teacher-forced over a whole target sequence with `call`, or one token
    at a time with `step`, which keeps the self-attention keys/values in a
    static-shape cache and reads the encoder's keys/values from a cache
    computed once (`cross_attention_cache`). Pre-LN by default (see
    `TransformerBlock`).

    Args: those of `TransformerBlock`.

    Call arguments:
        inputs: `[B, T, D]` embedded target tokens.
        memory: `[B, S, D]` encoder output.
        inputs_mask: optional boolean `[B, T]` (automatic).
        memory_mask: optional boolean `[B, S]` (automatic).
        training: dropout switch.

    Returns:
        `[B, T, D]`.
    """

    def build(self, inputs_shape, memory_shape):
        self.self_attention = self.attention_layer(
            "self_attention", inputs_shape, inputs_shape
        )
        self.cross_attention = self.attention_layer(
            "cross_attention", inputs_shape, memory_shape
        )
        self.norms = [
            self.layer_norm(name, inputs_shape)
            for name in (
                "self_attention_norm",
                "cross_attention_norm",
                "ff_norm",
            )
        ]
        self.build_feed_forward(inputs_shape)

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

        x = self.residual(inputs, self.norms[0], self_attend, training)
        x = self.residual(x, self.norms[1], cross_attend, training)
        return self.feed_forward(x, self.norms[2], training)

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

        x = self.residual(inputs, self.norms[0], self_attend, False)
        x = self.residual(x, self.norms[1], cross_attend, False)
        x = self.feed_forward(x, self.norms[2], False)
        return x, outputs["cache"], ops.cast(outputs["weights"], "float32")
