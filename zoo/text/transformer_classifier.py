"""Transformer-encoder text classifier (Vaswani et al. 2017).

Token embeddings plus learned (`layers.PositionEmbedding`) or sinusoidal
(`SinusoidalPositionEncoding`) positions, `num_layers` pre-LayerNorm
encoder blocks built on this project's `layers.MultiHeadAttention` with
the padding mask passed to every block, a masked pooling (mean, or learned
attention pooling) and a classifier. The keras.io "Text classification with
Transformer" example (one block, mean pooling) reports 87.45% test accuracy
on IMDB after 2 epochs.
"""

import keras
from keras import ops

from layers import AttentionPooling1D
from layers import PositionEmbedding
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.encoder_block import encoder_block
from zoo.registry import register_model
from zoo.text.masked_global_pooling_1d import MaskedGlobalPooling1D
from zoo.text.sinusoidal_position_encoding import SinusoidalPositionEncoding
from zoo.text.text_inputs import classifier_head
from zoo.text.text_inputs import text_inputs

POSITIONS = ("learned", "sinusoidal")
POOLINGS = ("mean", "attention", "max")


@register_model(
    task="text_classification",
    inputs="raw UTF-8 strings [B] (tf.string); vectorised inside the model",
    paper="Vaswani et al. 2017, Attention Is All You Need (encoder); "
    "keras.io Text classification with Transformer",
)
def transformer_classifier(
    *,
    vocabulary=None,
    max_tokens=20000,
    sequence_length=64,
    num_classes=2,
    embedding_dim=128,
    num_heads=4,
    ff_dim=256,
    num_layers=2,
    positions="learned",
    pooling="mean",
    embedding_dropout=0.0,
    dropout=0.1,
    attention_dropout=0.1,
    name="transformer_classifier",
):
    """Builds a Transformer-encoder classifier of raw strings.

    Reference: Vaswani et al. 2017, "Attention Is All You Need" (NeurIPS).

    Args:
        vocabulary: list of tokens (`zoo.text.build_vocabulary`), or `None`
            to adapt later: `model.get_layer("vectorizer").adapt(texts)`.
        max_tokens: vocabulary size when `vocabulary` is `None`.
        sequence_length: tokens read per text (longer texts truncated).
        num_classes: number of classes (>= 2).
        embedding_dim: model width `D` (divisible by `num_heads`, even).
        num_heads: attention heads per block.
        ff_dim: hidden width of the feed-forward layers.
        num_layers: number of encoder blocks.
        positions: `"learned"` (a trained table) or `"sinusoidal"`.
        pooling: `"mean"` (masked), `"attention"` (`AttentionPooling1D`)
            or `"max"` (masked).
        embedding_dropout: word dropout rate on the embeddings.
        dropout: dropout on residual branches and before the classifier.
        attention_dropout: dropout on the attention weights.
        name: model name.

    Returns:
        A functional `keras.Model`: strings `[B]` -> probabilities
        `[B, num_classes]`. The last block's attention weights stay in the
        graph (`zoo.text.word_attention` reads them for `"mean"` pooling).

    Example:
    >>> import numpy as np
    >>> model = transformer_classifier(vocabulary=["good", "bad"],
    ...                                sequence_length=8, embedding_dim=16,
    ...                                num_layers=1, ff_dim=16)
    >>> tuple(model(np.array(["good film", ""], dtype=object)).shape)
    (2, 2)
    """

    check_choice("positions", positions, POSITIONS)
    check_choice("pooling", pooling, POOLINGS)
    for arg, value in (
        ("embedding_dim", embedding_dim),
        ("num_heads", num_heads),
        ("ff_dim", ff_dim),
        ("num_layers", num_layers),
    ):
        check_positive_int(arg, value)
    if embedding_dim % num_heads or embedding_dim % 2:
        raise ValueError(
            "`embedding_dim` must be even and divisible by `num_heads`. "
            f"Received: embedding_dim={embedding_dim}, num_heads={num_heads}"
        )
    dropout = check_rate("dropout", dropout)
    attention_dropout = check_rate("attention_dropout", attention_dropout)
    embedding_dropout = check_rate("embedding_dropout", embedding_dropout)
    # === Functional Model ===
    inputs, token_ids, size = text_inputs(
        vocabulary, max_tokens, sequence_length, num_classes
    )
    mask = ops.not_equal(token_ids, 0)  # [B, T], True = token
    x = keras.layers.Embedding(size, embedding_dim, name="embedding")(token_ids)
    if positions == "learned":
        x = PositionEmbedding(name="position_embedding")(x)
    else:
        x = SinusoidalPositionEncoding(name="position_encoding")(x)
    if embedding_dropout:
        x = keras.layers.Dropout(
            embedding_dropout,
            noise_shape=(None, sequence_length, 1),
            name="embedding_dropout",
        )(x)
    x = keras.layers.Dropout(dropout, name="embedding_drop")(x)
    for i in range(num_layers):
        x, _ = encoder_block(
            x,
            mask,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            name=f"block{i + 1}",
            return_attention_scores=True,
        )
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    if pooling == "attention":
        pooled, _ = AttentionPooling1D(name="word_attention")(
            x, mask=mask, return_attention_scores=True
        )
    else:
        pooled = MaskedGlobalPooling1D(pooling, name="pool")(x, mask=mask)
    outputs = classifier_head(pooled, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
