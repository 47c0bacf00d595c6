"""The Transformer decoder side of a sequence generator (Vaswani et al. 2017).

One implementation of the target embedding, the decoder blocks, the output
layer and their step-by-step decoding, for every model that generates with
a Transformer decoder over some encoder's output (the translator's
encoder, the captioner's grid of image features).
"""

import keras
from keras import ops

from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.translation.token_position_embedding import TokenPositionEmbedding
from zoo.translation.transformer_decoder_block import TransformerDecoderBlock


def check_transformer_sizes(num_layers, model_dim, num_heads, ff_dim, dropout):
    """Checks the size arguments every Transformer model takes.

    Raises:
        ValueError: a size is not a positive integer, `num_heads` does not
            divide `model_dim`, or `dropout` is outside `[0, 1)`.
    """
    for name, value in (
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


class TransformerDecoding:
    """Mixin of a `zoo.SequenceGenerator` with a Transformer decoder.

    The model's encoder gives a `memory` `[B, S, model_dim]`;
    `build_decoder` makes the decoder layers as attributes
    (`target_embedding`, `embedding_dropout`, `decoder_blocks`,
    `decoder_norm` and, unless the output layer is the target embedding
    itself (`tie_embeddings`), `output_dense`), `decode` runs them
    teacher-forced in the functional model, and `start_decoding` +
    `decode_step` decode one token at a time with the `MultiHeadAttention`
    key/value caches (the `zoo.decoding` step contract). The attention a
    step reports is the last block's cross-attention averaged over the
    heads, `[N, S]`.
    """

    def build_decoder(
        self,
        vocab_size,
        *,
        num_layers,
        model_dim,
        num_heads,
        ff_dim,
        dropout,
        norm_first=True,
        tie_embeddings=False,
        seed=None,
        embedding_name="target_embedding",
    ):
        """Makes the decoder layers (call before `super().__init__`).

        `tie_embeddings=True` shares the target embedding matrix with the
        output layer (Vaswani et al. 2017, §3.4): logits are the final
        states times the embeddings' transpose plus a bias.
        """
        self.target_embedding = TokenPositionEmbedding(
            vocab_size,
            model_dim,
            output_bias=tie_embeddings,
            name=embedding_name,
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, seed=seed, name="embedding_dropout"
        )
        self.decoder_blocks = [
            TransformerDecoderBlock(
                num_heads, ff_dim, dropout, norm_first, name=f"decoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="decoder_norm"
        )
        self.output_dense = None
        if not tie_embeddings:
            self.output_dense = keras.layers.Dense(vocab_size, name="logits")

    def logits(self, hidden):
        """Output logits `[..., V]` of the decoder's final states."""
        hidden = self.decoder_norm(hidden)
        if self.output_dense is None:
            return self.target_embedding(hidden, reverse=True)
        return self.output_dense(hidden)

    def decode(self, target_in, memory):
        """Teacher-forced logits `[B, T, V]` of `target_in` over `memory`."""
        x = self.embedding_dropout(self.target_embedding(target_in))
        for block in self.decoder_blocks:
            x = block(x, memory)
        return self.logits(x)

    def start_decoding(self, memory, max_length, memory_mask=None):
        """`(state, context)` of `decode_step` over `memory` `[B, S, D]`.

        The state holds each block's empty self-attention cache; the
        context each block's cross-attention keys/values and, when given,
        the boolean `memory_mask` `[B, S]`.
        """
        batch = ops.shape(memory)[0]
        state = [
            block.initialize_cache(batch, max_length)
            for block in self.decoder_blocks
        ]
        context = {
            "cross_caches": [
                block.cross_attention_cache(memory)
                for block in self.decoder_blocks
            ]
        }
        if memory_mask is not None:
            context["memory_mask"] = memory_mask
        return state, context

    def decode_step(self, tokens, state, context, step):
        x = self.target_embedding(tokens[:, None], start_index=step)
        memory_mask = context.get("memory_mask")
        new_state = []
        weights = None
        for block, cache, cross in zip(
            self.decoder_blocks, state, context["cross_caches"]
        ):
            x, cache, weights = block.step(x, cache, cross, memory_mask, step)
            new_state.append(cache)
        logits = self.logits(x)[:, 0]
        # Last block's cross-attention, mean over heads: [N, S].
        attention = ops.mean(weights[:, :, 0, :], axis=1)
        return logits, new_state, attention
