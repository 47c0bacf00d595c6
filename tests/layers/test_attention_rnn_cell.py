"""Tests of `AttentionRNNCell` and `AttentionRNN` (attention decoders)."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import AttentionRNN
from layers import AttentionRNNCell
from layers import BahdanauAttention
from layers import LuongAttention
from tests.layers.attention_checks import np_additive
from tests.layers.attention_checks import np_masked_softmax
from tests.layers.attention_checks import randomize_weights
from tests.layers.attention_checks import to_numpy
from tests.testing import check_config_round_trip
from tests.testing import run_docstring_example
from tests.testing import run_layer_test

RNG = np.random.default_rng(0)
MEMORY = RNG.normal(size=(2, 5, 6)).astype("float32")
MEMORY_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
SEQUENCES = RNG.normal(size=(2, 4, 3)).astype("float32")
STEP = SEQUENCES[:, 0]


def _cell_config(style="bahdanau", cell="gru", **kwargs):
    inner = (
        keras.layers.GRUCell(4) if cell == "gru" else keras.layers.LSTMCell(4)
    )
    attention = (
        BahdanauAttention(3)
        if style == "bahdanau"
        else LuongAttention(score=kwargs.pop("score", "general"))
    )
    cell = AttentionRNNCell(inner, attention, attention_style=style, **kwargs)
    return keras.saving.serialize_keras_object(cell)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gru(x, h, cell):
    kernel, recurrent, bias = (to_numpy(w) for w in cell.weights)
    units = h.shape[-1]
    xz = x @ kernel + bias[0]
    hz = h @ recurrent + bias[1]
    z = _sigmoid(xz[:, :units] + hz[:, :units])
    r = _sigmoid(xz[:, units : 2 * units] + hz[:, units : 2 * units])
    candidate = np.tanh(xz[:, 2 * units :] + r * hz[:, 2 * units :])
    return z * h + (1 - z) * candidate


def np_lstm(x, h, c, cell):
    kernel, recurrent, bias = (to_numpy(w) for w in cell.weights)
    units = h.shape[-1]
    gates = x @ kernel + h @ recurrent + bias
    i = _sigmoid(gates[:, :units])
    f = _sigmoid(gates[:, units : 2 * units])
    g = np.tanh(gates[:, 2 * units : 3 * units])
    o = _sigmoid(gates[:, 3 * units :])
    c = f * c + i * g
    return o * np.tanh(c), c


# === Layer contract (shared helper) ===


@pytest.mark.parametrize(
    "cell_config",
    [
        _cell_config("bahdanau", "gru"),
        _cell_config("luong", "lstm", score="general", input_feeding=True),
    ],
    ids=["bahdanau_gru", "luong_lstm_feeding"],
)
def test_attention_rnn_layer_contract(cell_config):
    style = cell_config["config"]["attention_style"]
    size = 4 + 6 if style == "bahdanau" else 4
    run_layer_test(
        AttentionRNN,
        {"cell": cell_config, "return_alignments": True},
        [SEQUENCES, MEMORY],
        expected_output_shape=[(2, 4, size), (2, 4, 5)],
        tensor_kwargs={"memory_mask": MEMORY_MASK},
        check_compute_output_shape=False,
    )


def test_attention_rnn_without_alignments_and_with_states():
    layer = AttentionRNN(
        AttentionRNNCell.from_config(_cell_config("luong", "gru")["config"]),
        return_sequences=False,
    )
    assert tuple(layer(SEQUENCES, MEMORY).shape) == (2, 4)
    assert layer.compute_output_shape(SEQUENCES.shape, MEMORY.shape) == (2, 4)
    layer = AttentionRNN(
        AttentionRNNCell.from_config(_cell_config("luong", "lstm")["config"]),
        return_state=True,
    )
    outputs = layer(SEQUENCES, MEMORY)
    # output, h, c, attentional state (input feeding).
    assert [tuple(o.shape) for o in outputs] == [
        (2, 4, 4),
        (2, 4),
        (2, 4),
        (2, 4),
    ]
    np.testing.assert_allclose(
        to_numpy(outputs[0][:, -1]), to_numpy(outputs[3])
    )


def test_cell_config_round_trip():
    cell = check_config_round_trip(
        AttentionRNNCell,
        {
            "cell": keras.layers.LSTMCell(4),
            "attention": LuongAttention(score="concat", units=3),
            "attention_style": "luong",
            "attention_units": 5,
            "input_feeding": False,
            "attention_activation": "tanh",
            "output_attention": False,
        },
    )
    revived = AttentionRNNCell.from_config(cell.get_config())
    assert isinstance(revived.cell, keras.layers.LSTMCell)
    assert isinstance(revived.attention, LuongAttention)
    assert revived.attention.score == "concat"
    assert revived.state_size == [4, 4]
    assert revived.attention_dense.activation is keras.activations.tanh
    assert not revived.output_attention


def test_docstring_examples_run():
    run_docstring_example(AttentionRNNCell)
    run_docstring_example(AttentionRNN)


# === Numeric tests: one step against NumPy ===


def test_bahdanau_step_matches_numpy():
    cell = AttentionRNNCell(keras.layers.GRUCell(4), BahdanauAttention(3))
    cell.build(STEP.shape, MEMORY.shape)
    randomize_weights(cell)
    h = RNG.normal(size=(2, 4)).astype("float32")
    (output, weights), states = cell(
        STEP,
        [h],
        memory=MEMORY,
        memory_mask=MEMORY_MASK,
        return_alignments=True,
    )
    score = cell.attention.score_layer
    logits = np_additive(
        h[:, None],
        MEMORY,
        to_numpy(score.query_dense.kernel),
        to_numpy(score.key_dense.kernel),
        to_numpy(score.v),
    )[:, 0]
    expected_weights = np_masked_softmax(logits, MEMORY_MASK)
    context = np.einsum("bk,bkd->bd", expected_weights, MEMORY)
    h_new = np_gru(np.concatenate([STEP, context], -1), h, cell.cell)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-5)
    np.testing.assert_allclose(to_numpy(states[0]), h_new, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(output), np.concatenate([h_new, context], -1), atol=1e-5
    )


@pytest.mark.parametrize(
    "input_feeding, activation",
    [(True, None), (False, None), (True, "tanh")],
    ids=["feeding_linear", "no_feeding_linear", "feeding_tanh"],
)
def test_luong_step_matches_numpy(input_feeding, activation):
    cell = AttentionRNNCell(
        keras.layers.LSTMCell(4),
        LuongAttention(score="general", scale=True),
        attention_style="luong",
        attention_units=5,
        input_feeding=input_feeding,
        attention_activation=activation,
    )
    cell.build(STEP.shape, MEMORY.shape)
    randomize_weights(cell)
    h, c, feed = (RNG.normal(size=(2, n)).astype("float32") for n in (4, 4, 5))
    states = [h, c, feed] if input_feeding else [h, c]
    (output, weights), new_states = cell(
        STEP,
        states,
        memory=MEMORY,
        memory_mask=MEMORY_MASK,
        return_alignments=True,
    )
    x = np.concatenate([STEP, feed], -1) if input_feeding else STEP
    h_new, c_new = np_lstm(x, h, c, cell.cell)
    kernel = to_numpy(cell.attention.score_layer.kernel)
    scale = to_numpy(cell.attention.scale_weight)
    logits = scale * np.einsum("bq,qk,btk->bt", h_new, kernel, MEMORY)
    expected_weights = np_masked_softmax(logits, MEMORY_MASK)
    context = np.einsum("bt,btd->bd", expected_weights, MEMORY)
    attentional = np.concatenate([context, h_new], -1) @ to_numpy(
        cell.attention_dense.kernel
    )
    if activation == "tanh":
        attentional = np.tanh(attentional)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-5)
    np.testing.assert_allclose(to_numpy(output), attentional, atol=1e-5)
    np.testing.assert_allclose(to_numpy(new_states[0]), h_new, atol=1e-5)
    np.testing.assert_allclose(to_numpy(new_states[1]), c_new, atol=1e-5)
    assert len(new_states) == (3 if input_feeding else 2)
    if input_feeding:
        np.testing.assert_allclose(
            to_numpy(new_states[2]), attentional, atol=1e-5
        )


def test_sequence_equals_step_by_step():
    cell = AttentionRNNCell(
        keras.layers.GRUCell(4), LuongAttention(), attention_style="luong"
    )
    layer = AttentionRNN(cell, return_alignments=True)
    memory = MEMORY[..., :4]
    outputs, alignments = layer(SEQUENCES, memory, memory_mask=MEMORY_MASK)
    states = cell.get_initial_state(batch_size=2)
    for t in range(SEQUENCES.shape[1]):
        (out, weights), states = cell(
            SEQUENCES[:, t],
            states,
            memory=memory,
            memory_mask=MEMORY_MASK,
            return_alignments=True,
        )
        np.testing.assert_allclose(
            to_numpy(out), to_numpy(outputs[:, t]), atol=1e-5
        )
        np.testing.assert_allclose(
            to_numpy(weights), to_numpy(alignments[:, t]), atol=1e-6
        )


# === Masking ===


@pytest.mark.parametrize("style", ["bahdanau", "luong"])
def test_source_padding_mask_is_honoured(style):
    config = _cell_config(style, "gru")
    layer = AttentionRNN(
        AttentionRNNCell.from_config(config["config"]), return_alignments=True
    )
    outputs, alignments = layer(SEQUENCES, MEMORY, memory_mask=MEMORY_MASK)
    alignments = to_numpy(alignments)
    # No weight on padding; weights are a distribution over the rest.
    assert np.all(alignments[0, :, 3:] == 0.0)
    np.testing.assert_allclose(alignments.sum(-1), 1.0, atol=1e-5)
    # The padded memory positions do not matter.
    garbage = MEMORY.copy()
    garbage[0, 3:] = 1e3
    outputs2, _ = layer(SEQUENCES, garbage, memory_mask=MEMORY_MASK)
    np.testing.assert_allclose(to_numpy(outputs2), to_numpy(outputs), atol=1e-5)


def test_keras_masks_flow_from_embeddings():
    source = keras.Input((None,), dtype="int32")
    target = keras.Input((None,), dtype="int32")
    memory = keras.layers.Embedding(10, 6, mask_zero=True)(source)
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(target)
    cell = AttentionRNNCell(keras.layers.GRUCell(4), BahdanauAttention(3))
    outputs, alignments = AttentionRNN(cell, return_alignments=True)(
        embedded, memory
    )
    model = keras.Model([source, target], alignments)
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 6]], "int32")
    weights = to_numpy(model([ids, np.array([[1, 2], [3, 0]], "int32")]))
    assert np.all(weights[0, :, 2:] == 0.0)  # source padding
    assert np.all(weights[1, 0] > 0.0)
    assert np.all(weights[1, 1] == 0.0)  # target padding step


def test_fully_masked_memory_gives_finite_outputs():
    layer = AttentionRNN(
        AttentionRNNCell.from_config(_cell_config("bahdanau")["config"]),
        return_alignments=True,
    )
    mask = np.zeros((2, 5), bool)
    outputs, alignments = layer(SEQUENCES, MEMORY, memory_mask=mask)
    assert np.all(np.isfinite(to_numpy(outputs)))
    assert np.all(to_numpy(alignments) == 0.0)


def test_local_monotonic_attention_follows_the_step():
    cell = AttentionRNNCell(
        keras.layers.GRUCell(6),
        LuongAttention(window=1, local_mode="monotonic"),
        attention_style="luong",
    )
    assert cell.state_size == [6, 6, 1]
    _, alignments = AttentionRNN(cell, return_alignments=True)(
        SEQUENCES, MEMORY
    )
    alignments = to_numpy(alignments)
    for t in range(4):
        outside = [s for s in range(5) if abs(s - t) > 1]
        assert np.all(alignments[:, t, outside] == 0.0)


# === The three ways of passing the memory ===


def test_bind_memory_with_a_plain_keras_rnn():
    cell = AttentionRNNCell(keras.layers.GRUCell(4), BahdanauAttention(3))
    expected = AttentionRNN(cell)(SEQUENCES, MEMORY, memory_mask=MEMORY_MASK)
    plain = keras.layers.RNN(cell, return_sequences=True)
    with cell.bind_memory(MEMORY, MEMORY_MASK):
        got = plain(SEQUENCES)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)
    with pytest.raises(ValueError, match="has no memory"):
        cell(STEP, cell.get_initial_state(batch_size=2))


def test_projected_memory_is_reused():
    cell = AttentionRNNCell(keras.layers.GRUCell(4), BahdanauAttention(3))
    states = cell.get_initial_state(batch_size=2)
    direct, _ = cell(STEP, states, memory=MEMORY)
    projected = cell.project_memory(MEMORY)
    reused, _ = cell(STEP, states, memory=MEMORY, projected_memory=projected)
    np.testing.assert_allclose(to_numpy(reused), to_numpy(direct), atol=1e-6)


def test_initial_state_of_the_wrapped_cell_is_completed():
    cell = AttentionRNNCell(
        keras.layers.LSTMCell(4), LuongAttention(), attention_style="luong"
    )
    h = ops.ones((2, 4))
    states = cell.complete_state([h, h])
    assert len(states) == 3
    assert np.all(to_numpy(states[2]) == 0.0)
    with pytest.raises(ValueError, match="state tensors"):
        cell.complete_state([h])


# === Errors ===


def test_invalid_arguments():
    gru, bahdanau = keras.layers.GRUCell(4), BahdanauAttention(3)
    with pytest.raises(ValueError, match="Keras RNN cell"):
        AttentionRNNCell(keras.layers.Dense(3), bahdanau)
    with pytest.raises(ValueError, match="attention layer"):
        AttentionRNNCell(gru, keras.layers.Dense(3))
    with pytest.raises(ValueError, match="attention_style"):
        AttentionRNNCell(gru, bahdanau, attention_style="vaswani")
    with pytest.raises(ValueError, match="attention_units"):
        AttentionRNNCell(gru, bahdanau, attention_units=0)
    with pytest.raises(ValueError, match="input_feeding"):
        AttentionRNNCell(gru, bahdanau, input_feeding="yes")
    with pytest.raises(ValueError, match="output_attention"):
        AttentionRNNCell(gru, bahdanau, output_attention=1)
    with pytest.raises(ValueError, match="attention_style='bahdanau'"):
        AttentionRNNCell(gru, bahdanau, attention_activation="tanh")
    with pytest.raises(ValueError, match="attention_activation='nope'"):
        AttentionRNNCell(
            gru, bahdanau, attention_style="luong", attention_activation="nope"
        )
    with pytest.raises(ValueError, match="attention_units=4"):
        AttentionRNNCell(
            gru,
            bahdanau,
            attention_style="luong",
            use_attention_layer=False,
            attention_units=4,
        )
    cell = AttentionRNNCell(gru, bahdanau)
    with pytest.raises(ValueError, match="stateful"):
        AttentionRNN(cell, stateful=True)
    with pytest.raises(ValueError, match="AttentionRNNCell"):
        AttentionRNN(keras.layers.GRUCell(3))
    with pytest.raises(ValueError, match="memory's shape"):
        AttentionRNNCell(gru, bahdanau).build((2, 3))
    with pytest.raises(ValueError, match=r"memory.shape=\(2, 5\)"):
        AttentionRNNCell(gru, bahdanau).build((2, 3), (2, 5))
