"""Which words a text classifier attended to: per-word weights of raw texts.

`word_attention(model, texts)` returns, for each text, its tokens (as the
model read them) and one weight per token, for every text model of the zoo:

- recurrent models: the pooling weights of layer `"word_attention"`
  (`AttentionPooling1D`, heads averaged; `LuongAttention`; the 0/1
  selection of `HardAttention`) or, for the max-pool baseline, each word's
  share of the max-pooled features (layer `"word_max_pool"`);
- `han`: word weight x the weight of its sentence (Yang et al. 2016's
  hierarchical weights; they sum to one over the document);
- `transformer_classifier`: the attention pooling's weights, or with mean
  pooling the attention each token receives in the last block, averaged
  over heads and (unpadded) queries.

`attention_function(model)` builds the same computation as a TensorFlow
function of a string tensor (tokens `[B, T]`, weights `[B, T]`), which the
exported SavedModel serves as extra outputs.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from layers import MultiHeadAttention
from zoo.text.text_inputs import VECTORIZER_NAME
from zoo.text.text_inputs import standardize_text
from zoo.text.text_inputs import token_array

WORD_LAYERS = ("word_attention", "word_max_pool")


@dataclasses.dataclass
class TextAttention:
    """Attention of a model over one text.

    Attributes:
        text: the raw text.
        tokens: the tokens the model read (standardised, truncated).
        weights: one float weight per token.
        sentence_ids: sentence index of each token (`han`), else `None`.
        probabilities: the model's class probabilities.
    """

    text: str
    tokens: list
    weights: np.ndarray
    sentence_ids: list | None
    probabilities: np.ndarray


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _sequence_length(vectorizer):
    return int(vectorizer.get_config()["output_sequence_length"])


def _tokens(texts, length):
    """`[B, length]` string tokens of `texts` as the vectorizer splits them."""
    tokens = tf.strings.split(standardize_text(texts))
    return tokens[..., :length].to_tensor(
        default_value="", shape=[*texts.shape, length]
    )


def _weights_tensor(model):
    """`(kind, symbolic weights)` of the model's per-word weights."""

    for name in WORD_LAYERS:
        layer = _layer(model, name)
        if layer is not None:
            return name, layer.output[1]
    blocks = [
        layer for layer in model.layers if isinstance(layer, MultiHeadAttention)
    ]
    if blocks:
        return "self_attention", blocks[-1].output[1]
    raise ValueError(
        f"Model {model.name!r} exposes no word weights (no layer named "
        f"{' or '.join(WORD_LAYERS)}, no MultiHeadAttention)."
    )


def attention_function(model):
    """A function `texts [B] -> {"tokens", "attention_weights",
    "probabilities"}` (TensorFlow tensors) for a zoo text model.

    `tokens` and `attention_weights` are `[B, T]` (`han`: `[B, S * W]`,
    sentence by sentence, plus `"sentence_ids"` `[B, S * W]`); padding
    tokens are `""` with weight 0.

    Raises:
        ValueError: the model has no text vectorizer or word weights.
    """
    vectorizer = _layer(model, VECTORIZER_NAME)
    if vectorizer is None:
        raise ValueError(
            f"Model {model.name!r} has no {VECTORIZER_NAME!r} layer: not a "
            "zoo text model."
        )
    length = _sequence_length(vectorizer)
    splitter = _layer(model, "sentence_split")
    kind, weights = _weights_tensor(model)
    outputs = [model.outputs[0], weights]
    if splitter is not None:
        outputs.append(model.get_layer("sentence_attention").output[1])
    probe = keras.Model(model.inputs, outputs, name=f"{model.name}_probe")

    def compute(texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        values = probe(texts, training=False)
        probabilities, word = values[0], tf.cast(values[1], tf.float32)
        extra = {}
        if splitter is not None:
            sentences = splitter(texts)  # [B, S]
            count = splitter.max_sentences
            tokens = tf.reshape(
                _tokens(sentences, length), [-1, count * length]
            )
            sentence = tf.cast(values[2], tf.float32)  # [B, S]
            word = tf.reshape(word, [-1, count, length]) * sentence[..., None]
            word = tf.reshape(word, [-1, count * length])
            sentence_ids = tf.repeat(tf.range(count), length)  # [S * W]
            extra = {
                "sentence_ids": tf.tile(
                    sentence_ids[None], [tf.shape(tokens)[0], 1]
                )
            }
        else:
            tokens = _tokens(texts, length)
            if kind == "self_attention":
                # [B, N, T, T] -> attention received per key, averaged over
                # heads and the unpadded queries.
                valid = tf.cast(tokens != "", tf.float32)  # [B, T]
                received = tf.reduce_sum(
                    tf.reduce_mean(word, axis=1) * valid[:, :, None], axis=1
                )
                word = received / tf.maximum(
                    tf.reduce_sum(valid, -1, keepdims=True), 1.0
                )
            elif word.shape.rank == 3:  # heads of AttentionPooling1D
                word = tf.reduce_mean(word, axis=1)
        return {
            "tokens": tokens,
            "attention_weights": word,
            "probabilities": tf.cast(probabilities, tf.float32),
            **extra,
        }

    return compute


def word_attention(model, texts):
    """Per-word weights of `model` for raw `texts` (see module doc).

    Args:
        model: a zoo text classifier (in memory or reloaded `.keras`).
        texts: sequence of `str`/`bytes`.

    Returns:
        A list of `TextAttention`, one per text.
    """
    texts = list(texts)
    values = attention_function(model)(tf.constant(token_array(texts)))
    return from_outputs(texts, values)


def from_outputs(texts, outputs):
    """`TextAttention`s from the outputs of `attention_function` or of the
    exported model's serving signature (same keys)."""
    tokens = np.asarray(outputs["tokens"])
    weights = np.asarray(outputs["attention_weights"], "float32")
    probabilities = np.asarray(outputs["probabilities"], "float32")
    sentence_ids = outputs.get("sentence_ids")
    results = []
    for i, text in enumerate(texts):
        row = [t.decode("utf-8", "replace") for t in tokens[i]]
        keep = [j for j, t in enumerate(row) if t]
        results.append(
            TextAttention(
                text=text.decode("utf-8", "replace")
                if isinstance(text, bytes)
                else text,
                tokens=[row[j] for j in keep],
                weights=weights[i][keep],
                sentence_ids=None
                if sentence_ids is None
                else [int(s) for s in np.asarray(sentence_ids)[i][keep]],
                probabilities=probabilities[i],
            )
        )
    return results
