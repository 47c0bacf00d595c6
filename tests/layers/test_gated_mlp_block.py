"""Tests of GatedMLPBlock (gMLP with a Spatial Gating Unit)."""

import keras
import numpy as np
import pytest

from layers import GatedMLPBlock
from tests.layers import vision_reference as ref
from tests.testing import run_layer_test


def _tokens(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np_gmlp(x, layer):
    def norm(t, ln):
        return ref.layer_norm(
            t, ref.weight(ln.gamma), ref.weight(ln.beta), layer.epsilon
        )

    z = ref.dense(norm(x, layer.norm), layer.proj_in, ref.gelu)
    u, v = np.split(z, 2, axis=-1)
    v = norm(v, layer.gate_norm).transpose(0, 2, 1)  # [B, F/2, N]
    gate = ref.dense(v, layer.spatial_proj).transpose(0, 2, 1)
    return x + ref.dense(u * gate, layer.proj_out)


def test_layer_battery():
    run_layer_test(
        GatedMLPBlock,
        {"ffn_dim": 8, "dropout": 0.1},
        _tokens((2, 6, 4)),
        (2, 6, 4),
        expected_num_trainable_weights=10,
    )


def test_spatial_projection_starts_near_zero_with_bias_one():
    layer = GatedMLPBlock()
    layer.build((None, 7, 4))
    assert tuple(layer.proj_in.kernel.shape) == (4, 24)  # 6 * C
    kernel = ref.weight(layer.spatial_proj.kernel)
    assert kernel.shape == (7, 7) and np.abs(kernel).max() < 1e-4
    np.testing.assert_array_equal(ref.weight(layer.spatial_proj.bias), 1.0)
    # Hence the gate is ~1 and the block starts as a plain channel MLP.
    v = _tokens((2, 7, 12))
    np.testing.assert_allclose(
        ref.to_numpy(layer.spatial_gate(v)), 1.0, atol=1e-4
    )


def test_output_matches_numpy():
    x = _tokens((2, 5, 6))
    layer = GatedMLPBlock(ffn_dim=10)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=4)
    np.testing.assert_allclose(
        ref.to_numpy(layer(x)), _np_gmlp(x.astype("float64"), layer), atol=1e-4
    )


def test_tokens_interact_only_through_the_spatial_gate():
    x = _tokens((1, 5, 6))
    x2 = x.copy()
    x2[0, 0, 0] += 1.0  # one channel: LayerNorm ignores uniform shifts
    layer = GatedMLPBlock(ffn_dim=8, spatial_init_std=0.0)
    diff = np.abs(ref.to_numpy(layer(x2)) - ref.to_numpy(layer(x)))
    assert np.all(diff[0, 1:] == 0.0)  # W = 0: no token mixing
    ref.randomize_weights(layer, seed=2)
    diff = np.abs(ref.to_numpy(layer(x2)) - ref.to_numpy(layer(x)))
    assert np.all(diff[0, 1:].max(-1) > 1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ffn_dim": 7}, "ffn_dim=7"),
        ({"ffn_dim": 0}, "ffn_dim=0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
        ({"epsilon": -1.0}, "epsilon=-1.0"),
        ({"spatial_init_std": -1.0}, "spatial_init_std=-1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedMLPBlock(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 2, 4, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-3.*inputs.shape"):
        GatedMLPBlock()(np.zeros(shape, "float32"))


def test_unknown_number_of_tokens():
    with pytest.raises(ValueError, match=r"tokens.*inputs.shape=\(None, None"):
        GatedMLPBlock()(keras.Input((None, 8)))
