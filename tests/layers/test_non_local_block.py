"""Tests of NonLocalBlock."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import NonLocalBlock
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import property_settings
from tests.testing import run_layer_test

MODES = ["embedded_gaussian", "dot", "concat", "gaussian"]


def _images(shape, seed=1):
    # Not seed 0: run_layer_test draws its regression target from
    # default_rng(0), which would equal the input of an identity block.
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np_non_local(x, layer):
    """NumPy forward pass from the layer's own weights: (output, affinity)."""
    b, h, w, _ = x.shape
    mode = layer.mode
    if mode == "gaussian":
        query, key = x, x
    else:
        query, key = ref.dense(x, layer.theta), ref.dense(x, layer.phi)
    value = ref.dense(x, layer.g)
    if layer.sub_sample:
        key = ref.max_pool_same(key, layer.pool_size)
        value = ref.max_pool_same(value, layer.pool_size)
    query = query.reshape(b, h * w, -1)
    key = key.reshape(b, -1, key.shape[-1])
    value = value.reshape(b, -1, value.shape[-1])
    if mode == "concat":
        kernel = ref.weight(layer.concat_kernel)
        d = query.shape[-1]
        logits = ref.relu(
            (query @ kernel[:d])[:, :, None] + (key @ kernel[d:])[:, None, :]
        )
    else:
        logits = query @ key.transpose(0, 2, 1)
    if mode in ("embedded_gaussian", "gaussian"):
        if layer.use_scale:
            logits = logits / math.sqrt(query.shape[-1])
        affinity = ref.softmax(logits)
    else:
        affinity = logits / key.shape[1]
    context = (affinity @ value).reshape(b, h, w, -1)
    return x + ref.dense(context, layer.output_projection), affinity


@pytest.mark.parametrize(
    "kwargs,input_shape,expected",
    [
        (
            {"sub_sample": True},
            (2, 4, 5, 8),
            [(2, 4, 5, 8), (2, 20, 6)],
        ),
        (
            {"mode": "dot", "hidden_channels": 3},
            (2, 3, 3, 6),
            [(2, 3, 3, 6), (2, 9, 9)],
        ),
        (
            {"mode": "concat", "data_format": "channels_first"},
            (2, 6, 3, 4),
            [(2, 6, 3, 4), (2, 12, 12)],
        ),
        (
            {"mode": "gaussian", "use_batch_norm": True, "use_scale": True},
            (2, 3, 4, 6),
            [(2, 3, 4, 6), (2, 12, 12)],
        ),
    ],
)
def test_layer_battery(kwargs, input_shape, expected):
    run_layer_test(
        NonLocalBlock,
        kwargs,
        _images(input_shape),
        expected,
        call_kwargs={"return_attention_scores": True},
    )


def test_layer_battery_plain_call():
    run_layer_test(
        NonLocalBlock,
        {"reduction": 2, "zero_init": False, "kernel_regularizer": "l2"},
        _images((2, 3, 4, 8)),
        (2, 3, 4, 8),
        expected_num_trainable_weights=8,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sub_sample", [False, True])
def test_affinity_and_output_match_numpy(mode, sub_sample):
    x = _images((2, 5, 3, 6), seed=len(mode))
    layer = NonLocalBlock(
        mode=mode, sub_sample=sub_sample, zero_init=False, hidden_channels=4
    )
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=2, scale=0.3)
    out, affinity = layer(x, return_attention_scores=True)
    expected_out, expected_affinity = _np_non_local(x.astype("float64"), layer)
    keys = 6 if sub_sample else 15
    assert tuple(affinity.shape) == (2, 15, keys)
    np.testing.assert_allclose(
        ref.to_numpy(affinity), expected_affinity, atol=1e-5
    )
    np.testing.assert_allclose(ref.to_numpy(out), expected_out, atol=1e-4)
    if mode in ("embedded_gaussian", "gaussian"):
        np.testing.assert_allclose(
            ref.to_numpy(affinity).sum(-1), 1.0, atol=1e-5
        )


def test_use_scale_matches_numpy():
    x = _images((1, 3, 3, 4))
    layer = NonLocalBlock(use_scale=True, zero_init=False)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=4)
    _, affinity = layer(x, return_attention_scores=True)
    _, expected = _np_non_local(x.astype("float64"), layer)
    np.testing.assert_allclose(ref.to_numpy(affinity), expected, atol=1e-5)


def test_channels_first_matches_channels_last():
    x = _images((2, 4, 3, 6))
    last = NonLocalBlock(sub_sample=True, zero_init=False)
    first = NonLocalBlock(
        sub_sample=True, zero_init=False, data_format="channels_first"
    )
    last.build(x.shape)
    first.build((2, 6, 4, 3))
    ref.randomize_weights(last)
    for a, b in zip(first.weights, last.weights):
        a.assign(b)
    y_last, a_last = last(x, return_attention_scores=True)
    y_first, a_first = first(
        x.transpose(0, 3, 1, 2), return_attention_scores=True
    )
    np.testing.assert_allclose(
        ref.to_numpy(y_first).transpose(0, 2, 3, 1),
        ref.to_numpy(y_last),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        ref.to_numpy(a_first), ref.to_numpy(a_last), atol=1e-6
    )


@pytest.mark.filterwarnings("ignore:You are using a softmax")
@property_settings(15)
@given(
    mode=st.sampled_from(MODES),
    sub_sample=st.booleans(),
    use_batch_norm=st.booleans(),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    c=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_zero_initialised_block_is_identity(
    mode, sub_sample, use_batch_norm, h, w, c, seed
):
    x = _images((2, h, w, c), seed=seed) * 3
    layer = NonLocalBlock(
        mode=mode, sub_sample=sub_sample, use_batch_norm=use_batch_norm
    )
    y, affinity = layer(x, return_attention_scores=True)
    np.testing.assert_array_equal(ref.to_numpy(y), x)
    assert np.all(np.isfinite(ref.to_numpy(affinity)))


@pytest.mark.parametrize("mode", MODES)
def test_inside_small_cnn(mode):
    block = NonLocalBlock(mode=mode, sub_sample=True)
    check_block_in_small_cnn(block)
    # The residual branch starts at zero but learns.
    assert np.any(ref.to_numpy(block.output_projection.kernel) != 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "softmax"}, "mode='softmax'"),
        ({"mode": "Embedded_Gaussian"}, "mode='Embedded_Gaussian'"),
        ({"reduction": 0}, "reduction=0"),
        ({"hidden_channels": 0}, "hidden_channels=0"),
        ({"pool_size": 0}, "pool_size=0"),
        ({"channels": 4, "reduction": 8}, "reduction=8"),
        ({"mode": "dot", "use_scale": True}, "use_scale=True"),
        ({"data_format": "NCHW"}, "data_format='NCHW'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (1, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        NonLocalBlock()(np.zeros(shape, "float32"))


def test_reduction_larger_than_inferred_channels():
    with pytest.raises(ValueError, match="reduction=8"):
        NonLocalBlock(reduction=8)(np.zeros((1, 2, 2, 4), "float32"))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_variable_spatial_size_in_a_compiled_model(data_format):
    block = NonLocalBlock(sub_sample=True, data_format=data_format)
    first = data_format == "channels_first"
    inputs = keras.Input((6, None, None) if first else (None, None, 6))
    outputs, affinity = block(inputs, return_attention_scores=True)
    assert tuple(affinity.shape) == (None, None, None)
    model = keras.Model(inputs, [outputs, affinity])
    for h, w in ((3, 5), (4, 4)):
        shape = (2, 6, h, w) if first else (2, h, w, 6)
        y, a = model.predict(_images(shape), verbose=0)
        assert y.shape == shape
        assert a.shape == (2, h * w, -(-h // 2) * -(-w // 2))
