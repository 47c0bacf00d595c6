"""`AttentionRNNCell` reproduces tensorflow-addons' `AttentionWrapper` tests.

tensorflow-addons (end-of-life, never ran on Keras 3) tested its wrapper by
decoding 3 steps of an LSTM(9) with attention over an 8-step memory and
publishing the means of the outputs and final states. Its data: NumPy's
legacy generator seeded with 87654321 (after drawing a larger fixture of
the same test module), every kernel `"ones"` except the attention layer's,
which comes from a Glorot-uniform initializer seeded with 1337 under the
TensorFlow global seed 87654321.

Here a NumPy reference of that computation (written from the wrapper's
documented semantics: the new cell output queries the memory, the
attention vector starts at zero and is fed with the next input, the
attention layer is linear) reproduces the published means, and
`AttentionRNNCell` with the same weights reproduces the reference. So the
migration rows of the layers docs are checked, not asserted.
"""

import keras
import numpy as np
import pytest

from layers import AttentionRNN
from layers import AttentionRNNCell
from layers import BahdanauAttention
from layers import LuongAttention
from tests.layers.attention_checks import to_numpy

BATCH, INPUT_DEPTH, MEMORY_DEPTH, CELL_DEPTH = 5, 7, 10, 9
MEMORY_TIME, DECODER_TIME, STEPS = 8, 4, 3
MEMORY_LENGTHS = np.array([3, 2, 3, 1, 1])
LAYER_SIZE = 6

# tensorflow-addons' published expected values (attention_wrapper_test.py):
# mean of the outputs, of the argmax ids ("sample_id"), of the final LSTM
# h and c, and of the final attention vector.
PUBLISHED = {
    "bahdanau": (-0.003204414, 3.2, 0.40868404, 0.89017969, 0.041453815),
    "bahdanau_normalized": (
        -0.008089137,
        2.8,
        0.49166861,
        1.01068615,
        0.042427111,
    ),
    "luong": (-0.06124732, 2.73333333, 0.52021580, 1.0964939, -0.0318060),
    "luong_scaled": (
        -0.06124732,
        2.73333333,
        0.52021580,
        1.0964939,
        -0.0318060,
    ),
    "no_attention_layer": (
        0.078317143,
        4.2,
        0.89382392,
        1.722382,
        0.026356646,
    ),
}
CASES = {
    # name: (mechanism, mechanism depth, option, attention layer size)
    "bahdanau": ("bahdanau", 3, False, LAYER_SIZE),
    "bahdanau_normalized": ("bahdanau", 3, True, LAYER_SIZE),
    "luong": ("luong", CELL_DEPTH, False, LAYER_SIZE),
    "luong_scaled": ("luong", CELL_DEPTH, True, LAYER_SIZE),
    "no_attention_layer": ("bahdanau", 3, False, None),
}


def tfa_fixture():
    """The decoder inputs and memory the tensorflow-addons test draws."""
    rng = np.random.RandomState(87654321)
    # The test module's larger fixture is drawn first (and discarded).
    rng.randn(64, 10, 256)
    rng.randint(1, high=10, size=(64,))
    rng.randn(64, 12, 128)
    rng.randint(12, size=(64,))
    inputs = rng.randn(BATCH, DECODER_TIME, INPUT_DEPTH).astype("float32")
    memory = rng.randn(BATCH, MEMORY_TIME, MEMORY_DEPTH).astype("float32")
    return inputs, memory


def tfa_attention_kernel():
    """The seeded Glorot-uniform kernel of the wrapper's attention layer.

    TensorFlow's op-seeded uniform (seed 1337, global seed 87654321), what
    `GlorotUniform(seed=1337)` drew in the TensorFlow 2 releases the
    expected values were recorded with. Rows: `[h_t; c_t]`.
    """
    import tensorflow as tf

    shape = (CELL_DEPTH + MEMORY_DEPTH, LAYER_SIZE)
    limit = np.sqrt(6.0 / sum(shape))
    tf.random.set_seed(87654321)
    return tf.random.uniform(shape, -limit, limit, seed=1337).numpy()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_wrapper(mechanism, depth, option, layer_size, kernel):
    """NumPy `AttentionWrapper(LSTMCell, mechanism)`, 3 teacher-forced steps.

    Returns the outputs `[B, 3, D]`, final `h`, `c`, attention vector and
    the alignments of every step `[B, 3, Tk]` (float64).
    """
    inputs, memory = tfa_fixture()
    inputs, memory = inputs.astype("float64"), memory.astype("float64")
    mask = np.arange(MEMORY_TIME)[None, :] < MEMORY_LENGTHS[:, None]
    keys = memory @ np.ones((MEMORY_DEPTH, depth))  # memory layer: ones
    units = CELL_DEPTH
    forget_bias = np.concatenate(
        [np.zeros(units), np.ones(units), np.zeros(2 * units)]
    )
    h = np.zeros((BATCH, units))
    c = np.zeros((BATCH, units))
    attention = np.zeros((BATCH, layer_size or MEMORY_DEPTH))
    outputs, history = [], []
    for t in range(STEPS):
        x = np.concatenate([inputs[:, t], attention], -1)
        # All-ones kernels: every gate pre-activation is the input sum
        # plus the state sum (plus the forget gate's unit bias).
        gates = x.sum(-1, keepdims=True) + h.sum(-1, keepdims=True)
        i, f, g, o = np.split(gates + forget_bias, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        if mechanism == "bahdanau":
            query = h @ np.ones((units, depth))
            v = np.ones(depth)
            if option:  # normalize: v = g v / |v|, g = sqrt(1 / depth)
                v = np.sqrt(1.0 / depth) * v / np.linalg.norm(v)
            logits = np.tanh(keys + query[:, None, :]) @ v
        else:
            logits = np.einsum("bd,btd->bt", h, keys)  # scale g = 1
        logits = np.where(mask, logits, -np.inf)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
        context = np.einsum("bt,btd->bd", weights, memory)
        attention = context
        if layer_size is not None:
            attention = np.concatenate([h, context], -1) @ kernel
        outputs.append(attention)
        history.append(weights)
    return np.stack(outputs, 1), h, c, attention, np.stack(history, 1)


def _summary(outputs, h, c, attention):
    return (
        outputs.mean(),
        outputs.argmax(-1).mean(),
        h.mean(),
        c.mean(),
        attention.mean(),
    )


def _our_wrapper(mechanism, depth, option, layer_size, kernel, **kwargs):
    lstm = keras.layers.LSTMCell(
        CELL_DEPTH,
        recurrent_activation="sigmoid",
        kernel_initializer="ones",
        recurrent_initializer="ones",
    )
    if mechanism == "bahdanau":
        attention = BahdanauAttention(
            depth, normalize=option, kernel_initializer="ones"
        )
    else:
        attention = LuongAttention(
            score="general", scale=option, kernel_initializer="ones"
        )
    cell = AttentionRNNCell(
        lstm,
        attention,
        attention_style="luong",
        attention_units=layer_size,
        use_attention_layer=layer_size is not None,
        input_feeding=True,
        **kwargs,
    )
    cell.build((BATCH, INPUT_DEPTH), (BATCH, MEMORY_TIME, MEMORY_DEPTH))
    if layer_size is not None:
        # Ours reads [c_t; h_t] (Luong's order), the wrapper [h_t; c_t].
        cell.attention_dense.kernel.assign(
            np.concatenate([kernel[CELL_DEPTH:], kernel[:CELL_DEPTH]])
        )
    return cell


def _run(cell):
    inputs, memory = tfa_fixture()
    mask = np.arange(MEMORY_TIME)[None, :] < MEMORY_LENGTHS[:, None]
    outputs, alignments, h, c, attention = AttentionRNN(
        cell, return_alignments=True, return_state=True
    )(inputs[:, :STEPS], memory, memory_mask=mask)
    return [to_numpy(t) for t in (outputs, alignments, h, c, attention)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_numpy_reference_reproduces_the_published_values(case):
    outputs, h, c, attention, _ = numpy_wrapper(
        *CASES[case], tfa_attention_kernel()
    )
    np.testing.assert_allclose(
        _summary(outputs, h, c, attention), PUBLISHED[case], atol=1e-6
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_rnn_cell_reproduces_attention_wrapper(case):
    kernel = tfa_attention_kernel()
    expected_outputs, h, c, attention, history = numpy_wrapper(
        *CASES[case], kernel
    )
    outputs, alignments, our_h, our_c, our_attention = _run(
        _our_wrapper(*CASES[case], kernel)
    )
    np.testing.assert_allclose(outputs, expected_outputs, atol=1e-5)
    np.testing.assert_allclose(alignments, history, atol=1e-5)
    np.testing.assert_allclose(our_h, h, atol=1e-5)
    np.testing.assert_allclose(our_c, c, atol=1e-5)
    np.testing.assert_allclose(our_attention, attention, atol=1e-5)
    np.testing.assert_allclose(
        _summary(outputs, our_h, our_c, our_attention),
        PUBLISHED[case],
        atol=1e-5,
    )


def test_output_attention_false_emits_the_cell_output():
    kernel = tfa_attention_kernel()
    case = CASES["bahdanau"]
    outputs, alignments, h, c, attention = _run(
        _our_wrapper(*case, kernel, output_attention=False)
    )
    _, ref_h, ref_c, ref_attention, _ = numpy_wrapper(*case, kernel)
    # The states are the wrapper's; the output is h_t, not the attention.
    assert outputs.shape == (BATCH, STEPS, CELL_DEPTH)
    np.testing.assert_allclose(outputs[:, -1], ref_h, atol=1e-5)
    np.testing.assert_allclose(attention, ref_attention, atol=1e-5)
    np.testing.assert_allclose(c, ref_c, atol=1e-5)
