"""Tests of SpatialAttention (CBAM's spatial gate)."""

import numpy as np
import pytest

from layers import SpatialAttention
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import run_layer_test


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_battery():
    run_layer_test(
        SpatialAttention,
        {"kernel_size": 3},
        _images((2, 5, 4, 6)),
        [(2, 5, 4, 6), (2, 5, 4, 1)],
        call_kwargs={"return_attention_scores": True},
        expected_num_trainable_weights=2,
    )


def test_layer_battery_channels_first_batch_norm():
    run_layer_test(
        SpatialAttention,
        {
            "kernel_size": 5,
            "use_bias": False,
            "use_batch_norm": True,
            "gate": "hard_sigmoid",
            "data_format": "channels_first",
        },
        _images((2, 6, 5, 4)),
        (2, 6, 5, 4),
        expected_num_trainable_weights=3,
    )


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_map_matches_numpy(kernel_size, data_format):
    x = _images((2, 6, 5, 3), seed=kernel_size)
    layer = SpatialAttention(kernel_size=kernel_size, data_format=data_format)
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer, seed=1)
    out, attn = layer(feed, return_attention_scores=True)
    out, attn = ref.to_numpy(out), ref.to_numpy(attn)
    if data_format == "channels_first":
        out, attn = out.transpose(0, 2, 3, 1), attn.transpose(0, 2, 3, 1)
    expected = ref.spatial_map(x.astype("float64"), layer.conv)
    np.testing.assert_allclose(attn, expected, atol=1e-5)
    np.testing.assert_allclose(out, x * expected, atol=1e-5)


def test_inside_small_cnn():
    check_block_in_small_cnn(SpatialAttention(kernel_size=3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 4}, "kernel_size=4"),
        ({"kernel_size": 0}, "kernel_size=0"),
        ({"kernel_size": -3}, "kernel_size=-3"),
        ({"gate": "relu"}, "gate='relu'"),
        ({"data_format": "nchw"}, "data_format='nchw'"),
        ({"channels": 0}, "channels=0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpatialAttention(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (1, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        SpatialAttention(kernel_size=3)(np.zeros(shape, "float32"))


def _plain_spatial(layer, x):
    """The layer written with plain ops (mean, max, Keras's Conv2D)."""
    from keras import ops

    axis = -1 if layer.data_format == "channels_last" else 1
    descriptor = ops.concatenate(
        [ops.mean(x, axis, keepdims=True), ops.max(x, axis, keepdims=True)],
        axis=axis,
    )
    if layer.data_format == "channels_first":
        descriptor = ops.transpose(descriptor, (0, 2, 3, 1))
    attention = ops.sigmoid(layer.conv(descriptor))
    if layer.data_format == "channels_first":
        attention = ops.transpose(attention, (0, 3, 1, 2))
    return x * attention


@pytest.mark.parametrize(
    "shape,kernel_size",
    [
        # Small maps: the convolution runs as two matmuls.
        ((3, 9, 7, 5), 7),
        ((2, 32, 32, 4), 7),
        ((2, 1, 6, 3), 7),
        ((2, 5, 4, 3), 3),
        # Larger maps: the depthwise convolution.
        ((2, 33, 6, 3), 7),
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_values_and_gradients_match_plain_ops(shape, kernel_size, data_format):
    from tests.testing import compute_gradients
    from tests.testing import layer_gradients

    x = _images(shape, seed=2) * 2
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = SpatialAttention(kernel_size=kernel_size, data_format=data_format)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=4)
    weights = np.random.default_rng(3).normal(size=x.shape).astype("float32")
    np.testing.assert_allclose(
        ref.to_numpy(layer(x)),
        ref.to_numpy(_plain_spatial(layer, x)),
        atol=1e-5,
    )
    (grad,) = compute_gradients(lambda t: layer(t) * weights, [x])
    (expected,) = compute_gradients(
        lambda t: _plain_spatial(layer, t) * weights, [x]
    )
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    grads = layer_gradients(layer, lambda: layer(x) * weights)
    expected = layer_gradients(
        layer, lambda: _plain_spatial(layer, x) * weights
    )
    for g, e, v in zip(grads, expected, layer.trainable_variables):
        # A kernel tap's gradient sums over every position: compare to
        # 1e-5 of the largest, the float32 rounding of either order.
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, atol=1e-5 * scale, err_msg=v.path)
