"""Registry-driven tests of every translation model in the zoo.

Each registered translator, at a tiny size: build, forward pass without
NaN, one training step, `.keras` round trip with equal outputs, and the
decoding invariant -- the step-by-step decoder (`encode` + `decode_step`,
which greedy and beam search use) gives the teacher-forced logits.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.testing import run_docstring_example
from zoo.metrics import MaskedSparseCrossentropy

pytestmark = pytest.mark.tf_only

TRANSLATORS = zoo.list_models(task="translation")
# Every registered translator as registered, plus the non-default
# Bahdanau readout (logits from [s_t; c_t]).
VARIANTS = [(name, {}) for name in TRANSLATORS] + [
    ("seq2seq_bahdanau", {"readout": "state"})
]
TINY = {
    "seq2seq_gru": {"embedding_dim": 8, "units": 8},
    "seq2seq_bahdanau": {"embedding_dim": 8, "units": 8},
    "seq2seq_luong": {"embedding_dim": 8, "units": 8},
    "transformer_translator": {
        "num_layers": 2,
        "model_dim": 16,
        "num_heads": 4,
        "ff_dim": 32,
    },
}
SOURCE = np.array([[5, 6, 7, 8, 9], [10, 11, 0, 0, 0]], "int32")
TARGET_IN = np.array([[2, 5, 6, 7], [2, 8, 9, 0]], "int32")
TARGET_OUT = np.array([[5, 6, 7, 3], [8, 9, 3, 0]], "int32")


def _build(name, source_vocab_size=20, **kwargs):
    return zoo.build(
        name,
        source_vocab_size=source_vocab_size,
        target_vocab_size=16,
        **{**TINY.get(name, {}), **kwargs},
    )


def _inputs():
    return {"source": SOURCE, "target_in": TARGET_IN}


def test_registry_lists_the_translators():
    assert set(TRANSLATORS) >= {
        "seq2seq_gru",
        "seq2seq_bahdanau",
        "seq2seq_luong",
        "transformer_translator",
    }
    for name in TRANSLATORS:
        assert name in TINY, f"add tiny sizes for {name}"
        info = zoo.get_model_info(name)
        assert info.task == "translation"
        assert "source" in info.inputs and info.paper


@pytest.mark.parametrize(
    "name, kwargs",
    VARIANTS,
)
def test_full_battery(name, kwargs, tmp_path):
    model = _build(name, **kwargs)
    logits = np.asarray(model(_inputs()))
    assert logits.shape == (2, 4, 16)
    assert np.all(np.isfinite(logits))

    # Eager: tracing the training step would cost more than the step (the
    # compiled path is exercised by the experiment tests).
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
        run_eagerly=True,
    )
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(_inputs(), TARGET_OUT)
    assert np.isfinite(loss)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))

    expected = np.asarray(model(_inputs(), training=False))
    path = os.path.join(tmp_path, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(
        np.asarray(reloaded(_inputs(), training=False)), expected, atol=1e-5
    )
    # The reloaded model decodes too.
    result = reloaded.generate(SOURCE, method="beam", max_length=5)
    assert result.tokens.shape == (2, 4, 5)


@pytest.mark.parametrize(
    "name, kwargs",
    VARIANTS
    + [
        ("transformer_translator", {"tie_embeddings": True}),
        (
            "transformer_translator",
            {
                "tie_embeddings": True,
                "share_embeddings": True,
                "source_vocab_size": 16,
            },
        ),
    ],
)
def test_step_decoder_reproduces_teacher_forcing(name, kwargs):
    model = _build(name, dropout=0.3, **kwargs)
    expected = np.asarray(model(_inputs(), training=False))
    state, context = model.encode(tf.constant(SOURCE), 4)
    for t in range(TARGET_IN.shape[1]):
        logits, state, attention = model.decode_step(
            tf.constant(TARGET_IN[:, t]), state, context, tf.constant(t)
        )
        # Padded target positions (no loss there) may differ.
        real = TARGET_IN[:, t] != 0
        np.testing.assert_allclose(
            np.asarray(logits)[real],
            expected[real, t],
            atol=1e-5,
            err_msg=f"step {t}",
        )
        if model.has_attention:
            weights = np.asarray(attention)
            assert weights.shape == (2, 5)
            assert np.all(weights[1, 2:] == 0.0)  # source padding
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        else:
            assert attention is None


@pytest.mark.parametrize("name", ["seq2seq_bahdanau", "transformer_translator"])
def test_generate_greedy_and_beam(name):
    model = _build(name)
    greedy = model.generate(SOURCE, method="greedy", max_length=6)
    beam = model.generate(SOURCE, method="beam", max_length=6, beam_width=1)
    np.testing.assert_array_equal(beam.tokens.numpy()[:, 0], greedy.tokens)
    assert greedy.attention.shape == (2, 6, 5)
    compiled = tf.function(
        lambda s: model.generate(s, method="beam", max_length=6, beam_width=3)
    )
    result = compiled(tf.constant(SOURCE))
    assert result.tokens.shape == (2, 3, 6)
    assert np.all(np.diff(result.scores.numpy(), axis=-1) <= 1e-6)
    with pytest.raises(ValueError, match="method"):
        model.generate(SOURCE, method="sampling")


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_scores(score):
    model = _build("seq2seq_luong", score=score)
    assert model.decoder_cell.attention.score == score
    assert np.all(np.isfinite(np.asarray(model(_inputs()))))


def test_docstring_examples_run():
    run_docstring_example(zoo.translation.RNNTranslator)
    run_docstring_example(zoo.translation.DeepOutput)
    run_docstring_example(zoo.translation.TransformerTranslator)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="attention"):
        zoo.translation.RNNTranslator(10, 10, attention="vaswani")
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        zoo.translation.RNNTranslator(
            10, 10, attention="luong", score="dot", merge_mode="concat"
        )
    with pytest.raises(ValueError, match="units"):
        _build("seq2seq_gru", units=0)
    with pytest.raises(ValueError, match="Received: readout='maxout'"):
        _build("seq2seq_bahdanau", readout="maxout")
    with pytest.raises(ValueError, match="attention='luong'"):
        _build("seq2seq_luong", readout="deep")
    with pytest.raises(ValueError, match="divisible"):
        _build("transformer_translator", model_dim=18)
    with pytest.raises(KeyError, match="transformer_translator"):
        zoo.build("transformer_translater")


@pytest.mark.parametrize(
    "name, kwargs",
    VARIANTS,
)
def test_masked_loss_in_fit_equals_keras_ignore_class(name, kwargs):
    # The logits carry no Keras mask that the loss would apply a second
    # time: compiled, the project's loss gives Keras's padded loss.
    losses = {}
    for key, loss in {
        "ours": MaskedSparseCrossentropy(),
        "keras": keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    }.items():
        keras.utils.set_random_seed(0)
        model = _build(name, **kwargs)
        model.compile(loss=loss)
        losses[key] = model.evaluate(_inputs(), TARGET_OUT, verbose=0)
    np.testing.assert_allclose(losses["ours"], losses["keras"], rtol=1e-5)


def test_tied_embeddings_share_the_target_matrix(tmp_path):
    untied = _build("transformer_translator")
    tied = _build("transformer_translator", tie_embeddings=True)
    # The output kernel [16 dims, 16 words] is gone; its bias stays.
    assert untied.count_params() - tied.count_params() == 16 * 16

    # The logits are the final states times the embedding's transpose.
    hidden = tied.get_layer("decoder_norm").output
    states = keras.Model(tied.inputs, hidden)(_inputs(), training=False)
    embedding = tied.get_layer("target_embedding")
    expected = np.asarray(states) @ np.asarray(
        embedding.embedding.embeddings
    ).T + np.asarray(embedding.bias)
    logits = np.asarray(tied(_inputs(), training=False))
    np.testing.assert_allclose(logits, expected, atol=1e-5)

    # Training moves the shared matrix; the model reloads.
    tied.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=MaskedSparseCrossentropy(),
        run_eagerly=True,
    )
    matrix = np.array(embedding.embedding.embeddings)
    tied.train_on_batch(_inputs(), TARGET_OUT)
    assert not np.allclose(embedding.embedding.embeddings, matrix)
    path = os.path.join(tmp_path, "tied.keras")
    tied.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.tie_embeddings
    np.testing.assert_allclose(
        np.asarray(reloaded(_inputs(), training=False)),
        np.asarray(tied(_inputs(), training=False)),
        atol=1e-5,
    )


def test_shared_embeddings_are_one_matrix_for_both_sides(tmp_path):
    def build(**kwargs):
        return _build("transformer_translator", source_vocab_size=16, **kwargs)

    # The source embedding matrix [16 words, 16 dims] is gone; with the
    # output layer tied too, all three share one matrix.
    assert build().count_params() - build(
        share_embeddings=True
    ).count_params() == (16 * 16)
    model = build(share_embeddings=True, tie_embeddings=True)
    assert model.source_embedding is model.target_embedding
    assert build().count_params() - model.count_params() == 2 * 16 * 16

    # Training moves the one matrix; the model reloads shared and decodes.
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=MaskedSparseCrossentropy(),
        run_eagerly=True,
    )
    matrix = np.array(model.target_embedding.embedding.embeddings)
    model.train_on_batch(_inputs(), TARGET_OUT)
    assert not np.allclose(model.target_embedding.embedding.embeddings, matrix)
    path = os.path.join(tmp_path, "shared.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.share_embeddings
    assert reloaded.source_embedding is reloaded.target_embedding
    np.testing.assert_allclose(
        np.asarray(reloaded(_inputs(), training=False)),
        np.asarray(model(_inputs(), training=False)),
        atol=1e-5,
    )
    result = reloaded.generate(SOURCE, method="beam", max_length=5)
    assert result.tokens.shape == (2, 4, 5)


def test_shared_embeddings_need_one_vocabulary():
    with pytest.raises(
        ValueError, match="source_vocab_size=20.*target_vocab_size=16"
    ):
        _build("transformer_translator", share_embeddings=True)


def test_reverse_embedding_needs_its_output_bias():
    from zoo.translation.token_position_embedding import TokenPositionEmbedding

    embed = TokenPositionEmbedding(10, 4)
    hidden = embed(np.array([[3, 4]], "int32"))
    with pytest.raises(ValueError, match="output_bias=False"):
        embed(hidden, reverse=True)


def test_deep_output_reads_the_state_before_each_step():
    # Word t is read from s_{t-1}: the initial state for the first word,
    # and never the last state s_T.
    rng = np.random.default_rng(0)
    states, words, contexts = (
        rng.normal(size=(2, 3, width)).astype("float32") for width in (5, 6, 7)
    )
    initial = rng.normal(size=(2, 5)).astype("float32")
    readout = zoo.translation.DeepOutput(4)
    out = np.asarray(readout(states, words, contexts, initial_state=initial))
    moved = states.copy()
    moved[:, -1] += 1.0
    np.testing.assert_array_equal(
        np.asarray(readout(moved, words, contexts, initial_state=initial)), out
    )
    first = np.asarray(readout(initial, words[:, 0], contexts[:, 0]))
    np.testing.assert_allclose(out[:, 0], first, atol=1e-6)
    second = np.asarray(readout(states[:, 0], words[:, 1], contexts[:, 1]))
    np.testing.assert_allclose(out[:, 1], second, atol=1e-6)
