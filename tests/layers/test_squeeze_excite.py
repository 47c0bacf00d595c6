"""Tests of SqueezeExcite."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import SqueezeExcite
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import property_settings
from tests.testing import run_layer_test


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("return_scores", [False, True])
def test_layer_battery(return_scores):
    x = _images((2, 4, 5, 8))
    shapes = [(2, 4, 5, 8), (2, 1, 1, 8)] if return_scores else (2, 4, 5, 8)
    run_layer_test(
        SqueezeExcite,
        {"reduction": 4, "act": "relu", "gate": "sigmoid"},
        x,
        shapes,
        call_kwargs={"return_attention_scores": return_scores},
        expected_num_trainable_weights=4,
    )


def test_layer_battery_channels_first_hard_sigmoid():
    x = _images((2, 8, 4, 5))
    run_layer_test(
        SqueezeExcite,
        {
            "channels": 8,
            "hidden_channels": 3,
            "gate": "hard_sigmoid",
            "data_format": "channels_first",
            "use_bias": False,
            "kernel_regularizer": "l2",
        },
        x,
        [(2, 8, 4, 5), (2, 8, 1, 1)],
        call_kwargs={"return_attention_scores": True},
        expected_num_trainable_weights=2,
    )


@pytest.mark.parametrize(
    "gate,np_gate",
    [("sigmoid", ref.sigmoid), ("hard_sigmoid", ref.hard_sigmoid)],
)
def test_gate_and_output_match_numpy(gate, np_gate):
    x = _images((2, 3, 4, 8)) * 2
    layer = SqueezeExcite(reduction=2, gate=gate)
    layer.build(x.shape)
    ref.randomize_weights(layer)
    out, gate_map = layer(x, return_attention_scores=True)
    expected_gate = ref.se_gate(
        x.astype("float64"), layer.reduce, layer.expand, np_gate
    )
    np.testing.assert_allclose(
        ref.to_numpy(gate_map)[:, 0, 0], expected_gate, atol=1e-5
    )
    np.testing.assert_allclose(
        ref.to_numpy(out), x * expected_gate[:, None, None], atol=1e-5
    )


def test_channels_first_matches_channels_last():
    x = _images((2, 3, 4, 8))
    last = SqueezeExcite(reduction=2)
    first = SqueezeExcite(reduction=2, data_format="channels_first")
    last.build(x.shape)
    first.build((2, 8, 3, 4))
    ref.randomize_weights(last)
    for a, b in zip(first.weights, last.weights):
        a.assign(b)
    y_last = ref.to_numpy(last(x))
    y_first = ref.to_numpy(first(np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(
        np.transpose(y_first, (0, 2, 3, 1)), y_last, atol=1e-6
    )


def test_hidden_width_rule():
    for channels, kwargs, hidden in [
        (64, {}, 4),
        (64, {"reduction": 4}, 16),
        (16, {"min_channels": 8}, 8),
        (64, {"hidden_channels": 5}, 5),
    ]:
        layer = SqueezeExcite(**kwargs)
        layer.build((None, 2, 2, channels))
        assert tuple(layer.reduce.kernel.shape) == (channels, hidden)


@property_settings(15)
@given(
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    c=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_ratio_is_constant_over_positions_and_gate_in_unit_interval(
    h, w, c, seed
):
    rng = np.random.default_rng(seed)
    # Inputs bounded away from zero so output / input is well defined.
    sign = np.where(rng.random((2, h, w, c)) < 0.5, -1.0, 1.0)
    x = (sign * rng.uniform(0.5, 3.0, size=(2, h, w, c))).astype("float32")
    layer = SqueezeExcite(reduction=1)
    out, gate = layer(x, return_attention_scores=True)
    out, gate = ref.to_numpy(out), ref.to_numpy(gate)
    assert out.shape == x.shape
    assert np.all((gate >= 0) & (gate <= 1))
    ratio = out / x
    np.testing.assert_allclose(
        ratio, np.broadcast_to(ratio[:, :1, :1], ratio.shape), atol=1e-5
    )
    np.testing.assert_allclose(ratio[:, 0, 0], gate[:, 0, 0], atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_inside_small_cnn(data_format):
    check_block_in_small_cnn(
        SqueezeExcite(reduction=2, data_format=data_format)
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reduction": 0}, "reduction=0"),
        ({"reduction": 2.5}, "reduction=2.5"),
        ({"hidden_channels": 0}, "hidden_channels=0"),
        ({"min_channels": -1}, "min_channels=-1"),
        ({"channels": 0}, "channels=0"),
        ({"channels": 8, "reduction": 16}, "reduction=16"),
        ({"gate": "tanh"}, "gate='tanh'"),
        ({"act": "no_such_act"}, "act='no_such_act'"),
        ({"data_format": "NHWC"}, "data_format='NHWC'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SqueezeExcite(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (2, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        SqueezeExcite(reduction=2)(np.zeros(shape, "float32"))


def test_reduction_larger_than_inferred_channels():
    with pytest.raises(ValueError, match="reduction=16"):
        SqueezeExcite(reduction=16)(np.zeros((1, 2, 2, 8), "float32"))


def test_declared_channels_must_match_input():
    with pytest.raises(ValueError, match=r"channels=4.*inputs.shape"):
        SqueezeExcite(4, reduction=2)(np.zeros((1, 2, 2, 8), "float32"))
