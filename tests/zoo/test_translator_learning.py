"""Translators learn from the source: regression tests on real sentences.

Two failures seen on the Ding corpus: the no-attention baseline's tanh
summary saturated, so every source got the same translation; Luong's
`tanh(W_c [c; h])` attention layer saturated, so attention collapsed onto
`[START]`. Each test trains a small model on one batch of real Ding
sentence pairs (Debian package `trans-de-en`) and checks the behaviour.
"""

import pytest

from tests.zoo import translation_probe

pytestmark = pytest.mark.tf_only


@pytest.fixture(scope="module")
def pairs():
    return translation_probe.ding_batch(64)


def test_baseline_translations_depend_on_the_source(pairs):
    # With the old tanh bridge: 1 distinct output for 64 sources.
    model, source, _ = translation_probe.train_on_batch(
        "seq2seq_gru", pairs, steps=40
    )
    outputs = translation_probe.greedy_outputs(model, source)
    assert len(set(outputs)) >= 0.9 * len(outputs)


def test_luong_attention_layer_is_linear_by_default(pairs):
    model, source, target = translation_probe.train_on_batch(
        "seq2seq_luong", pairs[:8], steps=1
    )
    assert model.decoder_cell.attention_dense.activation.__name__ == "linear"


@pytest.mark.slow
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_attention_stays_off_start_token(pairs, score):
    model, source, target = translation_probe.train_on_batch(
        "seq2seq_luong", pairs, steps=300, score=score
    )
    _, alignments = translation_probe.probe_attention(model, source, target)
    # Not collapsed onto [START] (source position 0), and not uniform.
    assert alignments[:, 0].mean() < 0.3
    assert alignments.max(axis=-1).mean() > 2.0 / alignments.shape[-1]
