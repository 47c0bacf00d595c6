"""Transformer encoder-decoder translator (Vaswani et al. 2017).

Built on this project's `MultiHeadAttention` (fused QKV projections, the
incremental-decoding cache used by greedy and beam search).
"""

import keras
from keras import ops

from layers.validation import check_positive_int
from zoo.registry import register_model
from zoo.tokens import END_ID
from zoo.tokens import PAD_ID
from zoo.tokens import START_ID
from zoo.translation.rnn_translator import INPUTS
from zoo.translation.token_position_embedding import TokenPositionEmbedding
from zoo.translation.transformer_decoding import TransformerDecoding
from zoo.translation.transformer_decoding import check_transformer_sizes
from zoo.translation.transformer_encoder_block import TransformerEncoderBlock
from zoo.translation.translator import Translator


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerTranslator(TransformerDecoding, Translator):
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
        tie_embeddings: share the target embedding matrix with the output
            layer (the paper's §3.4 weight sharing; fewer parameters).
        share_embeddings: one embedding matrix for the source and the
            target, over a joint vocabulary (the paper's §3.4 sharing
            between the two embedding layers; with `tie_embeddings` all
            three share one matrix). Needs equal vocabulary sizes: learn
            one vocabulary of both languages (`data.shared_vocabulary`
            in the experiments).
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
        tie_embeddings=False,
        share_embeddings=False,
        start_id=START_ID,
        end_id=END_ID,
        max_target_length=64,
        **kwargs,
    ):
        check_positive_int("source_vocab_size", source_vocab_size)
        check_positive_int("target_vocab_size", target_vocab_size)
        check_transformer_sizes(
            num_layers, model_dim, num_heads, ff_dim, dropout
        )
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(
                "`share_embeddings=True` needs one joint vocabulary: "
                "`source_vocab_size` must equal `target_vocab_size`. "
                f"Received: source_vocab_size={source_vocab_size}, "
                f"target_vocab_size={target_vocab_size}"
            )

        # === Layers ===
        if not share_embeddings:
            self.source_embedding = TokenPositionEmbedding(
                source_vocab_size, model_dim, name="source_embedding"
            )
        self.build_decoder(
            target_vocab_size,
            num_layers=num_layers,
            model_dim=model_dim,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            norm_first=norm_first,
            tie_embeddings=tie_embeddings,
        )
        if share_embeddings:
            # One layer called on both sides: one matrix (the sinusoidal
            # positions have no weights).
            self.source_embedding = self.target_embedding
        self.encoder_blocks = [
            TransformerEncoderBlock(
                num_heads, ff_dim, dropout, norm_first, name=f"encoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="encoder_norm"
        )

        # === Functional Model ===
        source = keras.Input((None,), dtype="int32", name="source")
        target_in = keras.Input((None,), dtype="int32", name="target_in")
        super().__init__(
            inputs={"source": source, "target_in": target_in},
            outputs=self.decode(target_in, self._encode(source)),
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
        self.tie_embeddings = tie_embeddings
        self.share_embeddings = share_embeddings

    def _encode(self, source, training=None):
        x = self.embedding_dropout(
            self.source_embedding(source), training=training
        )
        for block in self.encoder_blocks:
            x = block(x, training=training)
        return self.encoder_norm(x)

    # === Decoding (zoo.decoding step function) ===

    def encode(self, source_ids, max_length):
        memory = self._encode(source_ids, training=False)
        mask = ops.not_equal(source_ids, PAD_ID)
        return self.start_decoding(memory, max_length, memory_mask=mask)

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
            "tie_embeddings": self.tie_embeddings,
            "share_embeddings": self.share_embeddings,
        }


@register_model(
    task="translation",
    inputs=INPUTS,
    paper="Vaswani et al. 2017, Attention Is All You Need",
)
def transformer_translator(
    source_vocab_size=8000, target_vocab_size=8000, **kwargs
):
    """Transformer encoder-decoder; TF tutorial size by default."""
    kwargs.setdefault("name", "transformer_translator")
    return TransformerTranslator(source_vocab_size, target_vocab_size, **kwargs)
