"""Tests of EfficientChannelAttention (ECA-Net)."""

import math

import numpy as np
import pytest

from layers import EfficientChannelAttention
from layers import eca_kernel_size
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import run_layer_test


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# C -> k with gamma=2, b=1: t = int(|(log2 C + 1) / 2|), odd-rounded up.
KERNEL_TABLE = [
    (1, 1),
    (2, 1),
    (4, 1),
    (8, 3),
    (16, 3),
    (32, 3),
    (64, 3),
    (128, 5),
    (256, 5),
    (512, 5),
    (1024, 5),
    (2048, 7),
]


@pytest.mark.parametrize("channels,kernel", KERNEL_TABLE)
def test_adaptive_kernel_size_table(channels, kernel):
    assert eca_kernel_size(channels) == kernel
    layer = EfficientChannelAttention()
    layer.build((None, 2, 2, channels))
    assert layer.kernel_size_ == kernel
    assert tuple(layer.conv.kernel.shape) == (kernel, 1, 1)


def test_kernel_size_rule_for_other_gamma_and_beta():
    for channels in (3, 24, 100, 640, 4096):
        for gamma, beta in ((2, 1), (1, 0), (3, 2), (1.5, 0.5)):
            t = int(abs(math.log2(channels) / gamma + beta / gamma))
            expected = t if t % 2 else t + 1
            got = eca_kernel_size(channels, gamma, beta)
            assert got == expected and got % 2 == 1


def test_explicit_kernel_size_and_channels_set_it_at_construction():
    assert EfficientChannelAttention(64).kernel_size_ == 3
    assert EfficientChannelAttention(64, kernel_size=9).kernel_size_ == 9


@pytest.mark.parametrize("return_scores", [False, True])
def test_layer_battery(return_scores):
    shapes = [(2, 3, 4, 16), (2, 1, 1, 16)] if return_scores else (2, 3, 4, 16)
    run_layer_test(
        EfficientChannelAttention,
        {"kernel_size": 5, "gamma": 2, "beta": 1},
        _images((2, 3, 4, 16)),
        shapes,
        call_kwargs={"return_attention_scores": return_scores},
        expected_num_trainable_weights=1,
    )


def test_layer_battery_channels_first():
    run_layer_test(
        EfficientChannelAttention,
        {
            "channels": 16,
            "gate": "hard_sigmoid",
            "data_format": "channels_first",
        },
        _images((2, 16, 3, 4)),
        (2, 16, 3, 4),
    )


@pytest.mark.parametrize("kernel_size", [None, 1, 5, 7])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_gate_and_output_match_numpy(kernel_size, data_format):
    x = _images((2, 3, 4, 16)) * 3
    layer = EfficientChannelAttention(
        kernel_size=kernel_size, data_format=data_format
    )
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer, seed=5, scale=1.0)
    out, gate = layer(feed, return_attention_scores=True)
    out, gate = ref.to_numpy(out), ref.to_numpy(gate)
    if data_format == "channels_first":
        out, gate = out.transpose(0, 2, 3, 1), gate.transpose(0, 2, 3, 1)
    kernel = ref.weight(layer.conv.kernel)[:, 0, 0]
    expected = ref.sigmoid(
        ref.conv1d_same(x.astype("float64").mean(axis=(1, 2)), kernel)
    )
    np.testing.assert_allclose(gate[:, 0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(out, x * expected[:, None, None], atol=1e-5)


def test_gate_depends_only_on_neighbouring_channels():
    # With k = 3, perturbing channel 0 can change the gates of channels 0
    # and 1 only.
    x = _images((1, 2, 2, 16))
    layer = EfficientChannelAttention(kernel_size=3)
    _, gate = layer(x, return_attention_scores=True)
    x2 = x.copy()
    x2[..., 0] += 5.0
    _, gate2 = layer(x2, return_attention_scores=True)
    changed = ~np.isclose(ref.to_numpy(gate), ref.to_numpy(gate2))[0, 0, 0]
    assert changed[:2].all() and not changed[2:].any()


def test_inside_small_cnn():
    check_block_in_small_cnn(EfficientChannelAttention())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 4}, "kernel_size=4"),
        ({"kernel_size": 0}, "kernel_size=0"),
        ({"gamma": 0}, "gamma=0"),
        ({"gamma": "2"}, "gamma='2'"),
        ({"beta": None}, "beta=None"),
        ({"channels": -1}, "channels=-1"),
        ({"gate": "linear"}, "gate='linear'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EfficientChannelAttention(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (1, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        EfficientChannelAttention()(np.zeros(shape, "float32"))


def test_banded_matmul_gives_the_convolution_and_its_gradients():
    # The layer computes its 1-D convolution as a banded matmul: outputs
    # and gradients equal those of the Conv1D it holds the weights of.
    from keras import ops

    from tests.testing import compute_gradients
    from tests.testing import layer_gradients

    x = np.random.default_rng(2).normal(size=(2, 5, 4, 12)).astype("float32")
    layer = EfficientChannelAttention(kernel_size=5)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=3)

    def plain(t):
        descriptor = ops.expand_dims(ops.mean(t, axis=(1, 2)), -1)
        logits = ops.squeeze(layer.conv(descriptor), -1)
        return t * ops.sigmoid(logits)[:, None, None, :]

    weights = np.random.default_rng(4).normal(size=x.shape).astype("float32")
    np.testing.assert_allclose(
        ref.to_numpy(layer(x)), ref.to_numpy(plain(x)), atol=1e-6
    )
    (grad,) = compute_gradients(lambda t: layer(t) * weights, [x])
    (expected,) = compute_gradients(lambda t: plain(t) * weights, [x])
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    (kernel_grad,) = layer_gradients(layer, lambda: layer(x) * weights)
    (expected,) = layer_gradients(layer, lambda: plain(x) * weights)
    np.testing.assert_allclose(kernel_grad, expected, atol=1e-5)
