"""The WordPiece vocabulary learner (HuggingFace `tokenizers`) and the
core-TensorFlow tokeniser that applies its vocabulary: same ids."""

import pytest
import tensorflow as tf

from experiments.wordpiece import RESERVED_TOKENS
from experiments.wordpiece import WordPieceTokenizer
from experiments.wordpiece import learn_vocabulary
from experiments.wordpiece import pretokenize

pytestmark = pytest.mark.tf_only

TEXTS = [
    "Die Datei wurde gespeichert.",
    "Die Dateien wurden nicht gespeichert!",
    "Speichern Sie die Änderungen, bevor Sie das Dokument schließen?",
    "Zeilen und Spalten einfügen",
    "Schifffahrtsgesellschaften „Straße“ (Kopf-/Fußzeilen)",
    "Don’t save the changes; close the document.",
] * 5


def _hf_ids(vocab, words):
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers

    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(vocab)},
            unk_token="[UNK]",
            max_input_chars_per_word=100,
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return [tokenizer.encode(word).ids for word in words]


def test_learnt_vocabulary_has_reserved_tokens_first_and_pieces():
    vocab = learn_vocabulary(TEXTS, vocab_size=120)
    assert vocab[: len(RESERVED_TOKENS)] == list(RESERVED_TOKENS)
    assert len(vocab) == len(set(vocab)) <= 120
    assert any(token.startswith("##") for token in vocab)
    # Every character of the (normalised) corpus is covered.
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer.tokenize(TEXTS).flat_values.numpy()
    assert 1 not in ids  # no [UNK]


def test_tokeniser_gives_the_learners_ids():
    vocab = learn_vocabulary(tf.data.Dataset.from_tensor_slices(TEXTS), 90)
    sentences = TEXTS[:6] + ["Gespeicherte Zeilen, unbekannt: xyzq 😀!"]
    words = [
        w.decode()
        for w in tf.strings.split(pretokenize(sentences)).flat_values.numpy()
    ]
    ours = WordPieceTokenizer(vocab).tokenize_words(words).to_list()
    assert ours == _hf_ids(vocab, words)
    assert any(len(pieces) > 1 for pieces in ours)  # subwords exercised
