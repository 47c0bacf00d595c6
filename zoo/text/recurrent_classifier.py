"""Bidirectional-GRU text classifiers with attention, hard-attention or max
pooling (Yang et al. 2016; Luong et al. 2015; Xu et al. 2015).

All four share one network, embedding -> bidirectional GRU -> pooling ->
classifier, and differ only in the pooling step, so they form an ablation:

- `bigru_attention`: `AttentionPooling1D`, the word-level attention of Yang
  et al. 2016 ("Hierarchical Attention Networks for Document
  Classification"): `a_t = softmax(tanh(W h_t + b) . u_w)`.
- `bigru_luong`: `LuongAttention` (Luong et al. 2015) of a learned query
  over the GRU states, with the score selectable (`"dot"`, `"general"`,
  `"concat"`), so score functions can be compared on the same task.
- `bigru_hard_attention`: `HardAttention` (Xu et al. 2015) of a learned
  query: the top-`k` words at inference, straight-through Gumbel-softmax
  (Jang et al. 2017) in training.
- `bigru_maxpool`: masked max-over-time pooling, no attention (baseline).

Each model takes raw strings (the `TextVectorization` layer is inside) and
keeps its per-word weights in the graph (layer `"word_attention"`, or
`"word_max_pool"` for the baseline), read by `zoo.text.word_attention`.
"""

import keras

from layers import AttentionPooling1D
from layers import HardAttention
from layers import LuongAttention
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.registry import register_model
from zoo.text.learned_query import LearnedQuery
from zoo.text.masked_global_pooling_1d import MaskedGlobalPooling1D
from zoo.text.text_inputs import classifier_head
from zoo.text.text_inputs import text_inputs

POOLINGS = ("attention", "luong", "hard", "max")
LUONG_SCORES = ("dot", "general", "concat")
_INPUTS = "raw UTF-8 strings [B] (tf.string); vectorised inside the model"


def embed_tokens(token_ids, vocabulary_size, embedding_dim, dropout, name):
    """Embedding with `mask_zero` and word dropout (whole words dropped).

    Returns `[B, T, E]` carrying the Keras padding mask.
    """
    x = keras.layers.Embedding(
        vocabulary_size, embedding_dim, mask_zero=True, name=name
    )(token_ids)
    if dropout:
        # Word dropout: one draw per token, shared by its features.
        x = keras.layers.Dropout(
            dropout,
            noise_shape=(None, token_ids.shape[1], 1),
            name=f"{name}_dropout",
        )(x)
    return x


def bigru_encoder(x, units, dropout, name):
    """Bidirectional GRU over `[B, T, E]` -> `[B, T, 2 * units]` (masked)."""
    return keras.layers.Bidirectional(
        keras.layers.GRU(units, return_sequences=True, dropout=dropout),
        name=name,
    )(x)


def _pool(
    h, pooling, *, attention_units, num_heads, score, k, temperature, seed
):
    """`(pooled, word_weights)` of the GRU states `h` `[B, T, D]`."""

    width = h.shape[-1]
    if pooling == "attention":
        return AttentionPooling1D(
            units=attention_units, num_heads=num_heads, name="word_attention"
        )(h, return_attention_scores=True)
    if pooling == "max":
        return MaskedGlobalPooling1D("max", name="word_max_pool")(
            h, return_attention_scores=True
        )
    # The query is one trained vector of the GRU states' width, so even the
    # weight-free "dot" score applies.
    query = LearnedQuery(width, name="attention_query")(h)
    if pooling == "luong":
        return LuongAttention(
            score=score,
            units=attention_units if score == "concat" else None,
            name="word_attention",
        )(query, h, return_attention_scores=True)
    return HardAttention(
        units=attention_units,
        score="scaled_dot",
        mode="gumbel",
        k=k,
        temperature=temperature,
        seed=seed,
        name="word_attention",
    )(query, h, return_attention_scores=True)


def bigru_classifier(
    *,
    pooling="attention",
    vocabulary=None,
    max_tokens=20000,
    sequence_length=64,
    num_classes=2,
    embedding_dim=128,
    rnn_units=64,
    attention_units=None,
    num_heads=1,
    score="general",
    k=1,
    temperature=1.0,
    embedding_dropout=0.0,
    dropout=0.5,
    seed=None,
    name=None,
):
    """Builds a bidirectional-GRU classifier of raw strings (see module doc).

    References: Yang et al. 2016, "Hierarchical Attention Networks for
    Document Classification" (NAACL); Luong et al. 2015, "Effective
    Approaches to Attention-based Neural Machine Translation"; Xu et al.
    2015, "Show, Attend and Tell".

    Args:
        pooling: `"attention"`, `"luong"`, `"hard"` or `"max"`.
        vocabulary: list of tokens (`zoo.text.build_vocabulary`), or `None`
            to adapt later: `model.get_layer("vectorizer").adapt(texts)`.
        max_tokens: vocabulary size when `vocabulary` is `None`.
        sequence_length: tokens read per text (longer texts truncated).
        num_classes: number of classes (>= 2).
        embedding_dim: word embedding size.
        rnn_units: GRU units per direction.
        attention_units: attention projection size (`"attention"`,
            `"hard"`, and Luong `"concat"`); default `2 * rnn_units`.
        num_heads: context vectors of `"attention"` pooling.
        score: Luong score of `"luong"` pooling: `"dot"`, `"general"` or
            `"concat"`.
        k: words selected by `"hard"` pooling.
        temperature: Gumbel-softmax temperature of `"hard"` pooling.
        embedding_dropout: word dropout rate on the embeddings.
        dropout: dropout on the GRU inputs and before the classifier.
        seed: seed of the hard-attention sampling noise.
        name: model name (default: the registry name).

    Returns:
        A functional `keras.Model`: strings `[B]` -> probabilities
        `[B, num_classes]`.

    Example:
    >>> import numpy as np
    >>> model = bigru_classifier(vocabulary=["good", "bad"],
    ...                          sequence_length=8)
    >>> tuple(model(np.array(["good film", ""], dtype=object)).shape)
    (2, 2)
    """
    check_choice("pooling", pooling, POOLINGS)
    if pooling == "luong" and score not in LUONG_SCORES:
        raise ValueError(
            f"`score` must be one of {LUONG_SCORES} (a learned query has no "
            f"position for the 'location' score). Received: score={score!r}"
        )
    check_positive_int("embedding_dim", embedding_dim)
    check_positive_int("rnn_units", rnn_units)
    check_positive_int("num_heads", num_heads)
    check_positive_int("k", k)
    dropout = check_rate("dropout", dropout)
    embedding_dropout = check_rate("embedding_dropout", embedding_dropout)
    if attention_units is None:
        attention_units = 2 * rnn_units
    check_positive_int("attention_units", attention_units)
    default_names = {
        "attention": "bigru_attention",
        "luong": "bigru_luong",
        "hard": "bigru_hard_attention",
        "max": "bigru_maxpool",
    }
    # === Functional Model ===
    inputs, token_ids, size = text_inputs(
        vocabulary, max_tokens, sequence_length, num_classes
    )
    x = embed_tokens(
        token_ids, size, embedding_dim, embedding_dropout, "embedding"
    )
    h = bigru_encoder(x, rnn_units, dropout, "bigru")  # [B, T, 2 * units]
    pooled, _ = _pool(
        h,
        pooling,
        attention_units=attention_units,
        num_heads=num_heads,
        score=score,
        k=k,
        temperature=temperature,
        seed=seed,
    )
    outputs = classifier_head(pooled, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name or default_names[pooling])


def _register(name, paper, **defaults):
    register_model(
        name,
        task="text_classification",
        inputs=_INPUTS,
        paper=paper,
        pooling=defaults.pop("pooling"),
        **defaults,
    )(bigru_classifier)


_register(
    "bigru_attention",
    "Yang et al. 2016, Hierarchical Attention Networks for Document "
    "Classification (word-level attention)",
    pooling="attention",
)
_register(
    "bigru_luong",
    "Luong et al. 2015, Effective Approaches to Attention-based NMT "
    "(scores), pooled with a learned query as Yang et al. 2016",
    pooling="luong",
)
_register(
    "bigru_hard_attention",
    "Xu et al. 2015, Show, Attend and Tell (hard attention); "
    "straight-through Gumbel-softmax, Jang et al. 2017",
    pooling="hard",
)
_register(
    "bigru_maxpool",
    "Collobert et al. 2011 / Kim 2014 max-over-time pooling (the "
    "no-attention baseline)",
    pooling="max",
)
