"""Tests of CBAM (channel then spatial attention)."""

import numpy as np
import pytest

from layers import CBAM
from layers import ChannelAttention
from layers import SpatialAttention
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import run_layer_test


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_battery():
    run_layer_test(
        CBAM,
        {"reduction": 2, "kernel_size": 3},
        _images((2, 5, 4, 8)),
        [(2, 5, 4, 8), (2, 1, 1, 8), (2, 5, 4, 1)],
        call_kwargs={"return_attention_scores": True},
        expected_num_trainable_weights=6,
    )


def test_layer_battery_channels_first():
    run_layer_test(
        CBAM,
        {
            "channels": 8,
            "hidden_channels": 2,
            "kernel_size": 3,
            "use_batch_norm": True,
            "data_format": "channels_first",
        },
        _images((2, 8, 5, 4)),
        (2, 8, 5, 4),
    )


def test_is_channel_then_spatial_attention():
    layer = CBAM(reduction=2, kernel_size=3)
    assert isinstance(layer.channel_attention, ChannelAttention)
    assert isinstance(layer.spatial_attention, SpatialAttention)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_maps_match_numpy(data_format):
    x = _images((2, 6, 5, 8)) * 2
    layer = CBAM(reduction=4, kernel_size=3, data_format=data_format)
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer, seed=7)
    out, (gate, attn) = layer(feed, return_attention_scores=True)
    out, gate, attn = map(ref.to_numpy, (out, gate, attn))
    if data_format == "channels_first":
        out, gate, attn = (t.transpose(0, 2, 3, 1) for t in (out, gate, attn))
    x64 = x.astype("float64")
    ca = layer.channel_attention
    expected_gate = ref.se_gate(x64, ca.reduce, ca.expand, use_max=True)
    refined = x64 * expected_gate[:, None, None]
    expected_map = ref.spatial_map(refined, layer.spatial_attention.conv)
    np.testing.assert_allclose(gate[:, 0, 0], expected_gate, atol=1e-5)
    np.testing.assert_allclose(attn, expected_map, atol=1e-5)
    np.testing.assert_allclose(out, refined * expected_map, atol=1e-5)


def test_inside_small_cnn():
    check_block_in_small_cnn(CBAM(reduction=4, kernel_size=3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 6}, "kernel_size=6"),
        ({"reduction": -2}, "reduction=-2"),
        ({"channels": 8, "reduction": 9}, "reduction=9"),
        ({"gate": "swish"}, "gate='swish'"),
        ({"data_format": "last"}, "data_format='last'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CBAM(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (1, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        CBAM(reduction=2)(np.zeros(shape, "float32"))


def test_reduction_larger_than_inferred_channels():
    with pytest.raises(ValueError, match="reduction=16"):
        CBAM()(np.zeros((1, 4, 4, 8), "float32"))


def _plain_cbam(layer, x):
    """CBAM written with plain ops (Keras's own max/mean and Conv2D)."""
    from keras import ops

    ca = layer.channel_attention

    def mlp(descriptor):
        return ca.expand(ca.reduce(descriptor))

    gate = ops.sigmoid(mlp(ops.mean(x, (1, 2))) + mlp(ops.max(x, (1, 2))))
    refined = x * gate[:, None, None, :]
    descriptor = ops.concatenate(
        [
            ops.mean(refined, -1, keepdims=True),
            ops.max(refined, -1, keepdims=True),
        ],
        axis=-1,
    )
    return refined * ops.sigmoid(layer.spatial_attention.conv(descriptor))


def test_gradients_match_plain_ops():
    # The block's lean pooling gradient and depthwise form of the spatial
    # convolution give the gradients of the plain formulation.
    from tests.testing import compute_gradients
    from tests.testing import layer_gradients

    x = _images((2, 9, 7, 16), seed=3) * 2
    layer = CBAM(reduction=4, kernel_size=7)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=5)
    weights = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    np.testing.assert_allclose(
        ref.to_numpy(layer(x)), ref.to_numpy(_plain_cbam(layer, x)), atol=1e-5
    )
    (grad,) = compute_gradients(lambda t: layer(t) * weights, [x])
    (expected,) = compute_gradients(
        lambda t: _plain_cbam(layer, t) * weights, [x]
    )
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    grads = layer_gradients(layer, lambda: layer(x) * weights)
    expected = layer_gradients(layer, lambda: _plain_cbam(layer, x) * weights)
    for g, e, v in zip(grads, expected, layer.trainable_variables):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5, err_msg=v.path)
