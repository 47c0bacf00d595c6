"""One Transformer encoder block on this project's MultiHeadAttention."""

import keras

from zoo.translation.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerEncoderBlock(TransformerBlock):
    """Self-attention and a feed-forward network, each with a residual.

    Vaswani et al. 2017, §3.1; pre-LN by default (see `TransformerBlock`).

    Args: those of `TransformerBlock`.

    Call arguments:
        inputs: `[B, T, D]`.
        mask: optional boolean `[B, T]` padding mask (automatic).
        training: dropout switch.

    Returns:
        `[B, T, D]`.
    """

    def build(self, inputs_shape):
        self.attention = self.attention_layer(
            "self_attention", inputs_shape, inputs_shape
        )
        self.attention_norm = self.layer_norm("attention_norm", inputs_shape)
        self.build_feed_forward(inputs_shape)
        self.ff_norm = self.layer_norm("ff_norm", inputs_shape)

    def call(self, inputs, mask=None, training=None):
        def attend(x):
            return self.attention(
                x, x, query_mask=mask, value_mask=mask, training=training
            )

        x = self.residual(inputs, self.attention_norm, attend, training)
        return self.feed_forward(x, self.ff_norm, training)
