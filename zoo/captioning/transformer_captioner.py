"""Transformer-decoder image captioner over the Show, Attend and Tell CNN.

The decoder of Vaswani et al. 2017 (causal self-attention, cross-attention,
feed-forward) reading the CNN's grid of annotation vectors, as in the
Transformer captioners that followed Xu et al. 2015 (e.g. Cornia et al.
2020, "Meshed-Memory Transformer for Image Captioning").
"""

import keras
from keras import ops

from layers import PositionEmbedding
from layers.validation import check_positive_int
from layers.validation import check_rate
from layers.validation import check_seed
from zoo.captioning.captioner import Captioner
from zoo.captioning.show_attend_tell import INPUTS
from zoo.captioning.show_attend_tell import annotation_grid
from zoo.captioning.show_attend_tell import check_encoder
from zoo.captioning.show_attend_tell import cnn_encoder
from zoo.registry import register_model
from zoo.tokens import END_ID
from zoo.tokens import START_ID
from zoo.translation.token_position_embedding import TokenPositionEmbedding
from zoo.translation.transformer_decoder_block import TransformerDecoderBlock


@keras.saving.register_keras_serializable(package="attention_zoo")
class TransformerCaptioner(Captioner):
    """A Transformer decoder captioning the CNN's grid of annotation vectors.

    The encoder is Show, Attend and Tell's (`cnn_encoder`: a small
    VGG-style CNN whose `h x w` feature map is the annotation vectors),
    projected to `model_dim` with a learned position embedding per
    location. `num_layers` Transformer decoder blocks (pre-LN causal
    self-attention, cross-attention over the annotation vectors,
    feed-forward) over the scaled word embeddings plus sinusoidal positions
    predict the next word. Decoding runs one word at a time with the
    `MultiHeadAttention` key/value cache; the attention map of a word is
    the last block's cross-attention averaged over the heads.

    References:
        Vaswani et al. 2017, "Attention Is All You Need",
        https://arxiv.org/abs/1706.03762.
        Xu et al. 2015, "Show, Attend and Tell",
        https://arxiv.org/abs/1502.03044 (the encoder and the task).

    Args:
        vocab_size: caption vocabulary size (id 0 = padding).
        input_shape: `(H, W, C)` of the uint8 images.
        encoder_filters: filters of each CNN stage (each halves the size).
        convs_per_stage: 3x3 convolutions per stage.
        num_layers: decoder blocks.
        model_dim: `d_model`.
        num_heads: attention heads (must divide `model_dim`).
        ff_dim: feed-forward hidden size.
        dropout: dropout rate.
        seed: seed of the dropout masks.
        start_id, end_id, max_caption_length: see `Captioner`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
    ```python
    import numpy as np
    import zoo

    model = zoo.build("transformer_captioner", vocab_size=14,
                      input_shape=(16, 16, 1), encoder_filters=(8, 8),
                      num_layers=1, model_dim=16, num_heads=2, ff_dim=32)
    images = np.zeros((2, 16, 16, 1), "uint8")
    logits = model({"images": images,
                    "target_in": np.array([[2, 5, 6], [2, 7, 0]], "int32")})
    assert logits.shape == (2, 3, 14)
    result = model.generate(images, method="greedy", max_length=4)
    assert result.attention.shape == (2, 4, 16)  # a 4x4 map per word
    ```
    """

    def __init__(
        self,
        vocab_size,
        input_shape=(48, 48, 1),
        encoder_filters=(32, 64, 128),
        convs_per_stage=2,
        num_layers=2,
        model_dim=128,
        num_heads=4,
        ff_dim=256,
        dropout=0.1,
        seed=None,
        start_id=START_ID,
        end_id=END_ID,
        max_caption_length=24,
        **kwargs,
    ):
        input_shape, encoder_filters = check_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        for name, value in (
            ("vocab_size", vocab_size),
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
        check_seed("seed", seed)
        rows, cols = annotation_grid(input_shape, encoder_filters)

        # === Layers ===
        self.encoder = cnn_encoder(
            input_shape, encoder_filters, convs_per_stage
        )
        self.to_annotations = keras.layers.Reshape(
            (rows * cols, encoder_filters[-1]), name="annotations"
        )
        self.projection = keras.layers.Dense(model_dim, name="projection")
        self.position_embedding = PositionEmbedding(name="position_embedding")
        self.memory_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="memory_norm"
        )
        self.word_embedding = TokenPositionEmbedding(
            vocab_size, model_dim, name="word_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout, seed=seed, name="embedding_dropout"
        )
        self.decoder_blocks = [
            TransformerDecoderBlock(
                num_heads, ff_dim, dropout, True, name=f"decoder_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="decoder_norm"
        )
        self.output_dense = keras.layers.Dense(vocab_size, name="logits")

        # === Functional Model ===
        images = keras.Input(input_shape, dtype="uint8", name="images")
        target_in = keras.Input((None,), dtype="int32", name="target_in")
        memory = self._memory(images)
        x = self.embedding_dropout(self.word_embedding(target_in))
        for block in self.decoder_blocks:
            x = block(x, memory)
        logits = self.output_dense(self.decoder_norm(x))
        super().__init__(
            inputs={"images": images, "target_in": target_in},
            outputs=logits,
            start_id=start_id,
            end_id=end_id,
            max_caption_length=max_caption_length,
            **kwargs,
        )

        # === Config ===
        self.vocab_size = vocab_size
        self.image_shape = input_shape
        self.encoder_filters = encoder_filters
        self.convs_per_stage = convs_per_stage
        self.num_layers = num_layers
        self.model_dim = model_dim
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.seed = seed
        self._grid = (rows, cols)

    def _memory(self, images, training=None):
        """`[B, rows * cols, model_dim]` annotation vectors."""
        annotations = self.to_annotations(
            self.encoder(images, training=training)
        )
        return self.memory_norm(
            self.position_embedding(self.projection(annotations))
        )

    # === Decoding (zoo.decoding step function) ===

    @property
    def feature_grid(self):
        return self._grid

    def encode(self, images, max_length):
        memory = self._memory(images, training=False)
        batch = ops.shape(images)[0]
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
        return state, context

    def decode_step(self, tokens, state, context, step):
        x = self.word_embedding(tokens[:, None], start_index=step)
        new_state = []
        weights = None
        for block, cache, cross in zip(
            self.decoder_blocks, state, context["cross_caches"]
        ):
            x, cache, weights = block.step(x, cache, cross, None, step)
            new_state.append(cache)
        logits = self.output_dense(self.decoder_norm(x))[:, 0]
        # Last block's cross-attention, mean over heads: [N, rows * cols].
        attention = ops.mean(weights[:, :, 0, :], axis=1)
        return logits, new_state, attention

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "input_shape": list(self.image_shape),
            "encoder_filters": list(self.encoder_filters),
            "convs_per_stage": self.convs_per_stage,
            "num_layers": self.num_layers,
            "model_dim": self.model_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
            "seed": self.seed,
        }


@register_model(
    task="image_captioning",
    inputs=INPUTS,
    paper=(
        "Vaswani et al. 2017, Attention Is All You Need; encoder and task "
        "of Xu et al. 2015, Show, Attend and Tell"
    ),
)
def transformer_captioner(vocab_size=1000, input_shape=(48, 48, 1), **kwargs):
    """Transformer decoder over Show, Attend and Tell's CNN grid."""
    kwargs.setdefault("name", "transformer_captioner")
    return TransformerCaptioner(vocab_size, input_shape=input_shape, **kwargs)
