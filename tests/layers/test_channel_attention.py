"""Tests of ChannelAttention (CBAM's channel gate)."""

import numpy as np
import pytest

from layers import ChannelAttention
from layers import SqueezeExcite
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import run_layer_test


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_battery():
    run_layer_test(
        ChannelAttention,
        {"reduction": 2, "min_channels": 2},
        _images((2, 3, 4, 8)),
        [(2, 3, 4, 8), (2, 1, 1, 8)],
        call_kwargs={"return_attention_scores": True},
        expected_num_trainable_weights=4,
    )


def test_layer_battery_channels_first():
    run_layer_test(
        ChannelAttention,
        {"reduction": 2, "data_format": "channels_first"},
        _images((2, 8, 3, 4)),
        (2, 8, 3, 4),
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_gate_matches_numpy(data_format):
    x = _images((2, 3, 5, 8)) * 2
    layer = ChannelAttention(reduction=2, data_format=data_format)
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer, seed=3)
    out, gate = layer(feed, return_attention_scores=True)
    out, gate = ref.to_numpy(out), ref.to_numpy(gate)
    if data_format == "channels_first":
        out, gate = out.transpose(0, 2, 3, 1), gate.transpose(0, 2, 3, 1)
    expected = ref.se_gate(
        x.astype("float64"), layer.reduce, layer.expand, use_max=True
    )
    np.testing.assert_allclose(gate[:, 0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(out, x * expected[:, None, None], atol=1e-5)


def test_max_descriptor_changes_the_gate():
    # Same weights as an SE block, but the max-pooled path must contribute.
    x = _images((2, 3, 5, 8))
    ca, se = ChannelAttention(reduction=2), SqueezeExcite(reduction=2)
    ca.build(x.shape)
    se.build(x.shape)
    ref.randomize_weights(ca)
    for a, b in zip(se.weights, ca.weights):
        a.assign(b)
    _, ca_gate = ca(x, return_attention_scores=True)
    _, se_gate = se(x, return_attention_scores=True)
    assert not np.allclose(ref.to_numpy(ca_gate), ref.to_numpy(se_gate))


def test_inside_small_cnn():
    check_block_in_small_cnn(ChannelAttention(reduction=4))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reduction": 0}, "reduction=0"),
        ({"channels": 4, "reduction": 8}, "reduction=8"),
        ({"gate": "softmax"}, "gate='softmax'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChannelAttention(**kwargs)


def test_bad_rank_and_reduction_at_build():
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape=\(2, 4, 8\)"):
        ChannelAttention(reduction=2)(np.zeros((2, 4, 8), "float32"))
    with pytest.raises(ValueError, match="reduction=16"):
        ChannelAttention()(np.zeros((1, 2, 2, 8), "float32"))
