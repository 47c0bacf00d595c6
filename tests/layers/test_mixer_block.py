"""Tests of MixerBlock (MLP-Mixer)."""

import keras
import numpy as np
import pytest

from layers import MixerBlock
from tests.layers import vision_reference as ref
from tests.testing import run_layer_test


def _tokens(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np_mixer(x, layer):
    def norm(t, ln):
        return ref.layer_norm(
            t, ref.weight(ln.gamma), ref.weight(ln.beta), layer.epsilon
        )

    mixed = norm(x, layer.token_norm).transpose(0, 2, 1)  # [B, C, N]
    mixed = ref.dense(
        ref.dense(mixed, layer.token_dense1, ref.gelu), layer.token_dense2
    )
    x = x + mixed.transpose(0, 2, 1)
    mixed = ref.dense(
        ref.dense(norm(x, layer.channel_norm), layer.channel_dense1, ref.gelu),
        layer.channel_dense2,
    )
    return x + mixed


def test_layer_battery():
    run_layer_test(
        MixerBlock,
        {"tokens_mlp_dim": 5, "channels_mlp_dim": 12, "dropout": 0.1},
        _tokens((2, 6, 4)),
        (2, 6, 4),
        expected_num_trainable_weights=12,
    )


def test_default_widths():
    layer = MixerBlock()
    layer.build((None, 9, 16))
    assert tuple(layer.token_dense1.kernel.shape) == (9, 8)
    assert tuple(layer.token_dense2.kernel.shape) == (8, 9)
    assert tuple(layer.channel_dense1.kernel.shape) == (16, 64)


def test_output_matches_numpy():
    x = _tokens((2, 5, 6))
    layer = MixerBlock(tokens_mlp_dim=7, channels_mlp_dim=9)
    layer.build(x.shape)
    ref.randomize_weights(layer, seed=3)
    np.testing.assert_allclose(
        ref.to_numpy(layer(x)), _np_mixer(x.astype("float64"), layer), atol=1e-4
    )


def test_tokens_are_mixed():
    # Changing token 0 changes every other token's output (token MLP).
    x = _tokens((1, 5, 6))
    layer = MixerBlock(tokens_mlp_dim=4, channels_mlp_dim=8)
    x2 = x.copy()
    x2[0, 0, 0] += 1.0  # one channel: LayerNorm ignores uniform shifts
    diff = np.abs(ref.to_numpy(layer(x2)) - ref.to_numpy(layer(x)))
    assert np.all(diff[0, 1:].max(-1) > 1e-6)


def test_inside_functional_model_after_patch_embedding():
    from layers import PatchEmbedding

    inputs = keras.Input((8, 8, 3))
    x = PatchEmbedding(embed_dim=8, patch_size=4)(inputs)
    x = MixerBlock(tokens_mlp_dim=4, channels_mlp_dim=16)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    assert tuple(model.output.shape) == (None, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tokens_mlp_dim": 0}, "tokens_mlp_dim=0"),
        ({"channels_mlp_dim": -4}, "channels_mlp_dim=-4"),
        ({"dropout": 1.5}, "dropout=1.5"),
        ({"epsilon": 0}, "epsilon=0"),
        ({"act": "nope"}, "act='nope'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixerBlock(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 2, 4, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-3.*inputs.shape"):
        MixerBlock()(np.zeros(shape, "float32"))


def test_unknown_or_changed_number_of_tokens():
    with pytest.raises(ValueError, match=r"tokens.*inputs.shape=\(None, None"):
        MixerBlock()(keras.Input((None, 8)))
    layer = MixerBlock()
    layer(np.zeros((1, 4, 8), "float32"))
    with pytest.raises(ValueError, match="4"):
        layer(np.zeros((1, 5, 8), "float32"))
