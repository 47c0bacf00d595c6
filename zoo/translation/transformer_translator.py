"""Transformer encoder-decoder translator (Vaswani et al. 2017).

Built on this project's `MultiHeadAttention` (fused QKV projections, the
incremental-decoding cache used by greedy and beam search).
"""

import keras
from keras import ops

from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.registry import register_model
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import START_ID
from zoo.translation.rnn_translator import INPUTS
from zoo.translation.token_position_embedding import TokenPositionEmbedding
from zoo.translation.transformer_decoder_block import TransformerDecoderBlock
from zoo.translation.transformer_encoder_block import TransformerEncoderBlock
from zoo.translation.translator import Translator


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerTranslator(Translator):
    """An encoder-decoder Transformer translator (functional, teacher-forced).

    Token embeddings scaled by `sqrt(model_dim)` plus sinusoidal positions,
    `num_layers` encoder blocks (self-attention, feed-forward) and
    `num_layers` decoder blocks (causal self-attention, cross-attention over
    the encoder output, feed-forward), a final layer normalisation (pre-LN)
    and a linear output layer. The default size is the TF Transformer
    tutorial's: 4 layers, `d_model` 128, 8 heads, feed-forward 512.

    Decoding runs one token at a time with the `MultiHeadAttention`
    key/value cache (`TransformerDecoderBlock.step`); the attention it
    reports is the last decoder block's cross-attention averaged over the
    heads.

    Reference:
        Vaswani et al. 2017, "Attention Is All You Need".

    Args:
        source_vocab_size: source vocabulary size (id 0 = padding).
        target_vocab_size: target vocabulary size.
        num_layers: encoder blocks and decoder blocks (each).
        model_dim: `d_model`.
        num_heads: attention heads (must divide `model_dim`).
        ff_dim: feed-forward hidden size.
        dropout: dropout rate.
        norm_first: pre-LN (`True`) or the paper's post-LN.
        start_id, end_id, max_target_length: see `Translator`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
    ```python
    import numpy as np
    import zoo

    model = zoo.build("transformer_translator", source_vocab_size=50,
                      target_vocab_size=40, num_layers=1, model_dim=16,
                      num_heads=2, ff_dim=32)
    source = np.array([[5, 6, 7, 0]], "int32")
    logits = model({"source": source,
                    "target_in": np.array([[2, 9, 10]], "int32")})
    assert logits.shape == (1, 3, 40)
    result = model.generate(source, method="greedy", max_length=5)
    assert result.attention.shape == (1, 5, 4)
    ```
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        num_layers=4,
        model_dim=128,
        num_heads=8,
        ff_dim=512,
        dropout=0.1,
        norm_first=True,
        start_id=START_ID,
        end_id=END_ID,
        max_target_length=64,
        **kwargs,
    ):
        for name, value in (
            ("source_vocab_size", source_vocab_size),
            ("target_vocab_size", target_vocab_size),
            ("num_layers", num_layers),
            ("model_dim", model_dim),
            ("num_heads", num_heads),
            ("ff_dim", ff_dim),
        ):
            check_positive_int(name, value)
        if model_dim % num_heads:
            raise ValueError(
                "`model_dim` must be divisible by `num_heads`. Received: "
                f"model_dim={model_dim}, num_heads={num_heads}"
            )
        check_rate("dropout", dropout)

        # === Layers ===
        self.source_embedding = TokenPositionEmbedding(
            source_vocab_size, model_dim, name="source_embedding"
        )
        self.target_embedding = TokenPositionEmbedding(
            target_vocab_size, model_dim, name="target_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, name="embedding_dropout"
        )
        self.encoder_blocks = [
            TransformerEncoderBlock(
                num_heads, ff_dim, dropout, norm_first, name=f"encoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerDecoderBlock(
                num_heads, ff_dim, dropout, norm_first, name=f"decoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="encoder_norm"
        )
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="decoder_norm"
        )
        self.output_dense = keras.layers.Dense(target_vocab_size, name="logits")

        # === Functional Model ===
        source = keras.Input((None,), dtype="int32", name="source")
        target_in = keras.Input((None,), dtype="int32", name="target_in")
        memory = self._encode(source)
        x = self.embedding_dropout(self.target_embedding(target_in))
        for block in self.decoder_blocks:
            x = block(x, memory)
        logits = self.output_dense(self.decoder_norm(x))
        super().__init__(
            inputs={"source": source, "target_in": target_in},
            outputs=logits,
            start_id=start_id,
            end_id=end_id,
            max_target_length=max_target_length,
            **kwargs,
        )

        # === Config ===
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.num_layers = num_layers
        self.model_dim = model_dim
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.norm_first = norm_first

    def _encode(self, source, training=None):
        x = self.embedding_dropout(
            self.source_embedding(source), training=training
        )
        for block in self.encoder_blocks:
            x = block(x, training=training)
        return self.encoder_norm(x)

    # === Decoding (zoo.decoding step function) ===

    def encode(self, source_ids, max_length):
        mask = ops.not_equal(source_ids, PAD_ID)
        memory = self._encode(source_ids, training=False)
        batch = ops.shape(source_ids)[0]
        state = [
            block.initialize_cache(batch, max_length)
            for block in self.decoder_blocks
        ]
        context = {
            "memory_mask": mask,
            "cross_caches": [
                block.cross_attention_cache(memory)
                for block in self.decoder_blocks
            ],
        }
        return state, context

    def decode_step(self, tokens, state, context, step):
        x = self.target_embedding(tokens[:, None], start_index=step)
        new_state = []
        weights = None
        for block, cache, cross in zip(
            self.decoder_blocks, state, context["cross_caches"]
        ):
            x, cache, weights = block.step(
                x, cache, cross, context["memory_mask"], step
            )
            new_state.append(cache)
        logits = self.output_dense(self.decoder_norm(x))[:, 0]
        # Last block's cross-attention, mean over heads: [N, S].
        attention = ops.mean(weights[:, :, 0, :], axis=1)
        return logits, new_state, attention

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "num_layers": self.num_layers,
            "model_dim": self.model_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
        }


@register_model(
    task="translation",
    inputs=INPUTS,
    paper="Vaswani et al. 2017, Attention Is All You Need",
)
def transformer_translator(
    source_vocab_size=8000,
    target_vocab_size=8000,
    num_layers=4,
    model_dim=128,
    num_heads=8,
    ff_dim=512,
    dropout=0.1,
    **kwargs,
):
    """Transformer encoder-decoder; TF tutorial size by default."""
    return TransformerTranslator(
        source_vocab_size,
        target_vocab_size,
        num_layers=num_layers,
        model_dim=model_dim,
        num_heads=num_heads,
        ff_dim=ff_dim,
        dropout=dropout,
        name="transformer_translator",
        **kwargs,
    )
