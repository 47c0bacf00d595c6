"""Trains a small translator on a real batch and probes what it learnt.

Shared by the learning regression tests: a few dozen Ding German->English
sentence pairs (the Debian package `trans-de-en`), word-level ids, a few
hundred Adam steps on that one batch, then the decoder is stepped with
teacher forcing (the `encode` / `decode_step` path the searches use) to
read its attentional states and alignments.
"""

import re

import keras
import numpy as np
import tensorflow as tf

import zoo
from experiments.datasets import ding_de_en

PAD, UNK, START, END = 0, 1, 2, 3
_WORDS = re.compile(r"\w+|[^\w\s]")


def ding_batch(size=64, offset=0):
    """`size` real Ding sentence pairs (fails with the apt-get line)."""
    import os

    if not os.path.isfile(ding_de_en.DEFAULT_PATH):
        raise FileNotFoundError(
            ding_de_en.missing_source_message(ding_de_en.DEFAULT_PATH)
        )
    pairs = []
    with open(ding_de_en.DEFAULT_PATH, encoding="utf-8") as lines:
        for line in lines:
            for de, en in ding_de_en.parse_line(line):
                if len(de.split()) <= 10 and len(en.split()) <= 10:
                    pairs.append((de, en))
            if len(pairs) >= offset + size:
                break
    return pairs[offset : offset + size]


def _ids(texts):
    words = [_WORDS.findall(t.lower()) for t in texts]
    vocab = {
        w: i + 4 for i, w in enumerate(sorted({w for s in words for w in s}))
    }
    width = max(len(s) for s in words) + 2
    ids = np.zeros((len(texts), width), "int32")
    for row, sentence in enumerate(words):
        tokens = [START] + [vocab[w] for w in sentence] + [END]
        ids[row, : len(tokens)] = tokens
    return ids, len(vocab) + 4


def train_on_batch(model_name, pairs, steps, learning_rate=5e-3, **kwargs):
    """Builds `model_name`, trains `steps` Adam steps on `pairs`.

    Returns `(model, source_ids, target_ids)`.
    """
    keras.utils.set_random_seed(1)
    source, source_vocab = _ids([de for de, _ in pairs])
    target, target_vocab = _ids([en for _, en in pairs])
    model = zoo.build(
        model_name,
        source_vocab_size=source_vocab,
        target_vocab_size=target_vocab,
        embedding_dim=32,
        units=64,
        dropout=0.0,
        **kwargs,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=PAD
        ),
    )
    inputs = {"source": source, "target_in": target[:, :-1]}
    data = tf.data.Dataset.from_tensors((inputs, target[:, 1:])).repeat(steps)
    model.fit(data, epochs=1, verbose=0)
    return model, source, target


def probe_attention(model, source, target):
    """Teacher-forced decoder states and alignments at the real targets.

    Returns `(attentional [N, D], alignments [N, S])` over the target
    positions that are not padding.
    """
    state, context = model.encode(source, None)
    cell = model.decoder_cell
    outputs, alignments, valid = [], [], []
    for t in range(target.shape[1] - 1):
        embedded = model.target_embedding(target[:, t])
        (output, weights), state = cell(
            embedded,
            state,
            memory=context["memory"],
            memory_mask=context["memory_mask"],
            projected_memory=context["projected_memory"],
            return_alignments=True,
        )
        outputs.append(keras.ops.convert_to_numpy(output))
        alignments.append(keras.ops.convert_to_numpy(weights))
        valid.append(target[:, t + 1] != PAD)
    valid = np.stack(valid, 1)
    return np.stack(outputs, 1)[valid], np.stack(alignments, 1)[valid]


def greedy_outputs(model, source, max_length=16):
    """The greedy translations' token-id tuples."""
    result = model.generate(source, method="greedy", max_length=max_length)
    tokens = keras.ops.convert_to_numpy(result.tokens)
    tokens = tokens.reshape(tokens.shape[0], -1)
    return [tuple(row[row != PAD]) for row in tokens]
