"""Tests of PatchEmbedding."""

import keras
import numpy as np
import pytest

from layers import PatchEmbedding
from tests.layers import vision_reference as ref
from tests.testing import run_layer_test


def _images(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_battery():
    run_layer_test(
        PatchEmbedding,
        {"embed_dim": 5, "patch_size": 2},
        _images((2, 4, 6, 3)),
        (2, 6, 5),
        expected_num_trainable_weights=2,
    )


def test_layer_battery_grid_channels_first_rectangular_patches():
    run_layer_test(
        PatchEmbedding,
        {
            "embed_dim": 5,
            "patch_size": (2, 3),
            "flatten": False,
            "data_format": "channels_first",
        },
        _images((2, 3, 4, 6)),
        (2, 2, 2, 5),
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_tokens_are_linear_maps_of_row_major_patches(data_format):
    x = _images((2, 4, 6, 3))
    layer = PatchEmbedding(embed_dim=5, patch_size=2, data_format=data_format)
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer)
    kernel = ref.weight(layer.projection.kernel).reshape(-1, 5)
    bias = ref.weight(layer.projection.bias)
    # [B, H/p, p, W/p, p, C] -> [B, (H/p)(W/p), p * p * C], row-major.
    patches = (
        x.astype("float64")
        .reshape(2, 2, 2, 3, 2, 3)
        .transpose(0, 1, 3, 2, 4, 5)
        .reshape(2, 6, 12)
    )
    np.testing.assert_allclose(
        ref.to_numpy(layer(feed)), patches @ kernel + bias, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"embed_dim": 0}, "embed_dim=0"),
        ({"embed_dim": 4, "patch_size": 0}, "patch_size=0"),
        ({"embed_dim": 4, "patch_size": (2, 0)}, r"patch_size=\(2, 0\)"),
        ({"embed_dim": 4, "data_format": "NHWC"}, "data_format='NHWC'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchEmbedding(**kwargs)


def test_bad_rank_and_indivisible_image():
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        PatchEmbedding(4, patch_size=2)(np.zeros((2, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"patch_size=4.*\(None, 6, 8, 3\)"):
        PatchEmbedding(4, patch_size=4)(keras.Input((6, 8, 3)))
