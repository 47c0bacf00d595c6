"""Splits raw documents into sentences inside the TensorFlow graph (HAN)."""

import keras
import tensorflow as tf

from layers.validation import check_positive_int

_SEPARATOR = "\x1e"  # ASCII record separator: never in real text
# A sentence ends after . ! ? (optionally followed by closing quotes or
# brackets) and whitespace; line breaks and HTML line breaks end one too.
_END = r"([.!?]+[\"'”’)\]]*)\s+"
_BREAK = r"(?i)(\s*<br\s*/?>\s*)+|\s*[\r\n]+\s*"


@keras.saving.register_keras_serializable(package="attention_zoo")
class SentenceSplit(keras.layers.Layer):
    """Raw documents `[B]` -> their first `max_sentences` sentences `[B, S]`.

    The document side of a hierarchical attention network (Yang et al.
    2016, "Hierarchical Attention Networks for Document Classification"):
    a sentence ends at `.`, `!` or `?` (plus closing quotes/brackets)
    followed by whitespace, at a line break or at an HTML `<br />`. Empty
    pieces are dropped, documents with fewer sentences are padded with empty
    strings, extra sentences are dropped. It runs in the TensorFlow graph
    (string ops, TensorFlow backend only), so an exported model splits raw
    text itself. Invalid UTF-8 bytes are replaced by U+FFFD first.

    Args:
        max_sentences: number `S` of sentences kept per document.
        **kwargs: base layer arguments (`name`, ...).

    Call arguments:
        inputs: string tensor `[B]` (or `[B, 1]`).

    Returns:
        String tensor `[B, max_sentences]`, `""` for missing sentences.

    Example:

    >>> split = SentenceSplit(max_sentences=3)
    >>> split(tf.constant(["Great cast. Dull plot!", ""])).numpy().tolist()
    [[b'Great cast.', b'Dull plot!', b''], [b'', b'', b'']]
    """

    def __init__(self, max_sentences=16, **kwargs):
        super().__init__(**kwargs)
        self.max_sentences = check_positive_int("max_sentences", max_sentences)

    def call(self, inputs):
        texts = tf.convert_to_tensor(inputs)
        if texts.dtype != tf.string:
            raise ValueError(
                "`SentenceSplit` expects strings. Received: "
                f"inputs.dtype={texts.dtype.name}"
            )
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, -1)
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        texts = tf.strings.regex_replace(texts, _BREAK, _SEPARATOR)
        texts = tf.strings.regex_replace(texts, _END, r"\1" + _SEPARATOR)
        pieces = tf.strings.split(texts, sep=_SEPARATOR)  # ragged [B, (S)]
        pieces = tf.strings.strip(pieces)
        pieces = tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)
        pieces = pieces[:, : self.max_sentences]
        return pieces.to_tensor(
            default_value="", shape=[None, self.max_sentences]
        )

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            (inputs.shape[0], self.max_sentences), dtype="string"
        )

    def get_config(self):
        return {**super().get_config(), "max_sentences": self.max_sentences}
