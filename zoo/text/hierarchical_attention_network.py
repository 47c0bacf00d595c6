"""Hierarchical attention network for documents (Yang et al. 2016).

Yang, Yang, Dyer, He, Smola & Hovy 2016, "Hierarchical Attention Networks
for Document Classification" (NAACL): each sentence is encoded by a
bidirectional GRU over its words and pooled by word attention; the sentence
vectors are encoded by a second bidirectional GRU and pooled by sentence
attention; the document vector is classified. The paper's sizes: 200-d
embeddings, 50 GRU units per direction, 100-d attention context vectors.

The model takes raw documents: `SentenceSplit` cuts them into sentences in
the TensorFlow graph, so an exported model splits text itself.
"""

import keras
from keras import ops

from layers import AttentionPooling1D
from layers.validation import check_int
from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.registry import register_model
from zoo.text.fold_sentences import FoldSentences
from zoo.text.recurrent_classifier import bigru_encoder
from zoo.text.recurrent_classifier import embed_tokens
from zoo.text.sentence_split import SentenceSplit
from zoo.text.text_inputs import classifier_head
from zoo.text.text_inputs import make_vectorizer
from zoo.text.unfold_sentences import UnfoldSentences


@register_model(
    task="text_classification",
    inputs="raw UTF-8 documents [B] (tf.string); split into sentences and "
    "vectorised inside the model",
    paper="Yang et al. 2016, Hierarchical Attention Networks for Document "
    "Classification",
)
def han(
    *,
    vocabulary=None,
    max_tokens=20000,
    max_sentences=16,
    sentence_length=32,
    num_classes=2,
    embedding_dim=200,
    word_units=50,
    sentence_units=50,
    attention_units=100,
    embedding_dropout=0.0,
    dropout=0.5,
    name="han",
):
    """Builds a hierarchical attention network over raw documents.

    Reference: Yang et al. 2016, "Hierarchical Attention Networks for
    Document Classification" (NAACL).

    Args:
        vocabulary: list of tokens (`zoo.text.build_vocabulary`), or `None`
            to adapt later: `model.get_layer("vectorizer").adapt(sentences)`.
        max_tokens: vocabulary size when `vocabulary` is `None`.
        max_sentences: sentences read per document (later ones dropped).
        sentence_length: words read per sentence (longer ones truncated).
        num_classes: number of classes (>= 2).
        embedding_dim: word embedding size.
        word_units: word-level GRU units per direction.
        sentence_units: sentence-level GRU units per direction.
        attention_units: size of both attention projections.
        embedding_dropout: word dropout rate on the embeddings.
        dropout: dropout on the GRU inputs and before the classifier.
        name: model name.

    Returns:
        A functional `keras.Model`: documents `[B]` -> probabilities
        `[B, num_classes]`. Layer `"word_attention"` holds the word weights
        `[B * S, W]` (per sentence), `"sentence_attention"` the sentence
        weights `[B, S]`.

    Example:
    >>> import numpy as np
    >>> model = han(vocabulary=["good", "bad"], max_sentences=3,
    ...             sentence_length=5)
    >>> tuple(model(np.array(["Good. Bad!", ""], dtype=object)).shape)
    (2, 2)
    """

    check_int("num_classes", num_classes, minimum=2)
    check_positive_int("max_sentences", max_sentences)
    for arg, value in (
        ("embedding_dim", embedding_dim),
        ("word_units", word_units),
        ("sentence_units", sentence_units),
        ("attention_units", attention_units),
    ):
        check_positive_int(arg, value)
    dropout = check_rate("dropout", dropout)
    embedding_dropout = check_rate("embedding_dropout", embedding_dropout)
    # === Layers ===
    vectorizer, size = make_vectorizer(vocabulary, max_tokens, sentence_length)
    # === Functional Model ===
    inputs = keras.Input(shape=(), dtype="string", name="text")
    sentences = SentenceSplit(max_sentences, name="sentence_split")(inputs)
    flat = FoldSentences(name="fold_sentences")(sentences)  # [B * S]
    token_ids = vectorizer(flat)  # [B * S, W]
    x = embed_tokens(
        token_ids, size, embedding_dim, embedding_dropout, "embedding"
    )
    h = bigru_encoder(x, word_units, dropout, "word_bigru")
    # sentence vectors [B * S, 2 * word_units]; word weights [B * S, W]
    sentence_vectors, _ = AttentionPooling1D(
        units=attention_units, name="word_attention"
    )(h, return_attention_scores=True)
    sentence_vectors = UnfoldSentences(max_sentences, name="unfold_sentences")(
        sentence_vectors
    )  # [B, S, 2 * word_units]
    # A sentence counts when it has at least one known or unknown token.
    has_tokens = UnfoldSentences(max_sentences, name="unfold_sentence_mask")(
        ops.any(ops.not_equal(token_ids, 0), axis=-1)
    )  # [B, S]
    s = keras.layers.Bidirectional(
        keras.layers.GRU(sentence_units, return_sequences=True),
        name="sentence_bigru",
    )(sentence_vectors, mask=has_tokens)
    document, _ = AttentionPooling1D(
        units=attention_units, name="sentence_attention"
    )(s, mask=has_tokens, return_attention_scores=True)
    outputs = classifier_head(document, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
