"""Shared input stem of the text models: raw strings in, token ids inside.

Every text classifier takes a batch of raw UTF-8 strings `[B]` and turns
them into token ids with a `keras.layers.TextVectorization` layer that is
part of the model, so a saved or exported model serves raw text. The
standardisation (`standardize_text`) is one registered function shared by
the model, the vocabulary builder and the attention visualisation, so the
words a user sees are exactly the tokens the model read.
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from layers.validation import check_int
from layers.validation import check_positive_int

PAD, OOV = "", "[UNK]"
VECTORIZER_NAME = "vectorizer"

# Punctuation other than `!` and `?` (kept as tokens: they carry sentiment)
# becomes a space; letters and digits of every script are kept.
_STRIP = r"[^\p{L}\p{N}\p{M}\s!?]+"


@keras.saving.register_keras_serializable(package="attention_zoo")
def standardize_text(texts):
    """Normalises a string tensor before whitespace tokenisation.

    Invalid UTF-8 bytes become U+FFFD (then dropped), HTML tags such as
    IMDB's `<br />` become spaces, letters are lower-cased (all scripts),
    apostrophes are removed (`don't` -> `dont`), `!` and `?` become
    separate tokens and other punctuation becomes a space.
    Runs in the TensorFlow graph, so it is part of exported models.

    Args:
        texts: string tensor of any shape.

    Returns:
        The standardised string tensor (same shape).
    """
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    texts = tf.strings.regex_replace(texts, r"<[^>]{0,40}>", " ")
    texts = tf.strings.lower(texts, encoding="utf-8")
    # Apostrophes join ("don't" -> "dont"), other punctuation separates.
    texts = tf.strings.regex_replace(texts, r"['’`]", "")
    texts = tf.strings.regex_replace(texts, r"([!?])", r" \1 ")
    return tf.strings.regex_replace(texts, _STRIP, " ")


def tokenize(texts):
    """Tokens of each text as the models see them (before truncation).

    Args:
        texts: a sequence of `str`/`bytes` or a 1-D string tensor.

    Returns:
        A list (one per text) of lists of `str` tokens.
    """
    texts = tf.constant(_as_bytes(texts), tf.string)
    tokens = tf.strings.split(standardize_text(texts))
    return [[t.decode("utf-8") for t in row] for row in tokens.to_list()]


def _as_bytes(texts):
    return [
        t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts
    ]


def build_vocabulary(texts, max_tokens=20000, min_count=1, batch_size=1024):
    """Vocabulary of a training corpus, most frequent tokens first.

    Deterministic (ties broken alphabetically), so a resumed run rebuilds
    exactly the vocabulary its checkpoint was trained with.

    Args:
        texts: iterable of `str`/`bytes` training texts.
        max_tokens: vocabulary size including padding and `[UNK]`.
        min_count: drop tokens seen fewer times.
        batch_size: texts standardised per TensorFlow call.

    Returns:
        A list of tokens (without the padding and `[UNK]` entries, which
        `TextVectorization` adds itself).
    """
    if max_tokens < 3:
        raise ValueError(
            f"`max_tokens` must be >= 3. Received: max_tokens={max_tokens}"
        )
    counts = collections.Counter()
    batch = []

    def flush():
        tokens = tf.strings.split(standardize_text(tf.constant(batch)))
        counts.update(tokens.flat_values.numpy().tolist())
        batch.clear()

    for text in texts:
        batch.append(text.encode("utf-8") if isinstance(text, str) else text)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    ranked = sorted(
        (item for item in counts.items() if item[1] >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    return [token.decode("utf-8") for token, _ in ranked[: max_tokens - 2]]


def make_vectorizer(vocabulary=None, max_tokens=20000, sequence_length=64):
    """The model's `TextVectorization` layer (`[N]` strings -> `[N, L]`).

    Args:
        vocabulary: list of tokens (e.g. from `build_vocabulary`), or `None`
            to adapt the layer later:
            `model.get_layer("vectorizer").adapt(texts)`.
        max_tokens: vocabulary size (padding and `[UNK]` included) when
            `vocabulary` is `None`.
        sequence_length: tokens kept per text (longer texts are truncated,
            shorter ones padded with 0).

    Returns:
        `(layer, vocabulary_size)`; the embedding needs `vocabulary_size`
        rows.
    """
    check_positive_int("sequence_length", sequence_length)
    if vocabulary is not None:
        vocabulary = [str(t) for t in vocabulary if str(t) not in (PAD, OOV)]
        if not vocabulary:
            raise ValueError("`vocabulary` is empty. Received: vocabulary=[]")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("`vocabulary` holds duplicate tokens.")
        size = len(vocabulary) + 2
    else:
        check_int("max_tokens", max_tokens, minimum=3)
        size = max_tokens
    layer = keras.layers.TextVectorization(
        max_tokens=None if vocabulary is not None else max_tokens,
        standardize=standardize_text,
        split="whitespace",
        output_mode="int",
        output_sequence_length=sequence_length,
        vocabulary=vocabulary,
        name=VECTORIZER_NAME,
    )
    return layer, size


def text_inputs(vocabulary, max_tokens, sequence_length, num_classes):
    """Returns `(inputs, token_ids, vocabulary_size)` of a text model.

    `inputs` is a `keras.Input` of raw strings `[B]`; `token_ids` the
    `[B, sequence_length]` int ids (0 = padding).

    Raises:
        ValueError: on a malformed argument.
    """
    check_int("num_classes", num_classes, 2)
    vectorizer, size = make_vectorizer(vocabulary, max_tokens, sequence_length)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return inputs, vectorizer(inputs), size


def classifier_head(x, num_classes, dropout, hidden=0, name="logits"):
    """Dropout -> (optional ReLU layer) -> dense -> float32 softmax."""
    if hidden:
        x = keras.layers.Dropout(dropout, name="head_dropout_hidden")(x)
        x = keras.layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, name=name)(x)
    return keras.layers.Activation(
        "softmax", dtype="float32", name="probabilities"
    )(x)


def token_array(texts):
    """`texts` as a 1-D NumPy object array of bytes (a model's input)."""
    return np.asarray(_as_bytes(texts), dtype=object)
