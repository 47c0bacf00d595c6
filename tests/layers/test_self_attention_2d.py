"""Tests of SelfAttention2D (BoTNet-style MHSA over feature-map positions)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import MultiHeadAttention
from layers import SelfAttention2D
from tests.layers import vision_reference as ref
from tests.testing import check_block_in_small_cnn
from tests.testing import property_settings
from tests.testing import run_layer_test


def _images(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np_mhsa(x, layer):
    """NumPy reference from the layer's weights (fused q|k|v kernel)."""
    b, h, w, c = x.shape
    heads = layer.num_heads
    key_dim = layer.attention.key_dim
    tokens = x.reshape(b, h * w, c)
    keys = tokens
    if layer.position_encoding == "absolute":
        pos = (
            ref.weight(layer.row_embedding)[:, None]
            + ref.weight(layer.column_embedding)[None]
        )
        keys = tokens + pos.reshape(1, h * w, c)
    kernel = ref.weight(layer.attention.qkv_kernel)
    wq, wk, wv = np.split(kernel, 3, axis=-1)

    def split_heads(t):  # [B, T, N*H] -> [B, N, T, H]
        return t.reshape(b, -1, heads, key_dim).transpose(0, 2, 1, 3)

    q, k, v = (
        split_heads(tokens @ wq),
        split_heads(keys @ wk),
        split_heads(tokens @ wv),
    )
    scores = ref.softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(key_dim))
    context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, h * w, -1)
    out = context @ ref.weight(layer.attention.output_kernel)
    return out.reshape(b, h, w, c), scores


@pytest.mark.parametrize(
    "kwargs,shape,expected",
    [
        ({"num_heads": 2}, (2, 3, 4, 8), [(2, 3, 4, 8), (2, 2, 12, 12)]),
        (
            {
                "num_heads": 2,
                "key_dim": 3,
                "value_dim": 5,
                "position_encoding": None,
                "use_bias": True,
                "dropout": 0.1,
                "data_format": "channels_first",
            },
            (2, 6, 3, 2),
            [(2, 6, 3, 2), (2, 2, 6, 6)],
        ),
    ],
)
def test_layer_battery(kwargs, shape, expected):
    run_layer_test(
        SelfAttention2D,
        kwargs,
        _images(shape),
        expected,
        call_kwargs={"return_attention_scores": True},
    )


def test_layer_battery_plain_call():
    run_layer_test(
        SelfAttention2D,
        {"channels": 8, "num_heads": 4},
        _images((2, 3, 3, 8)),
        (2, 3, 3, 8),
        expected_num_trainable_weights=4,
    )


def test_reuses_the_sequence_multi_head_attention():
    layer = SelfAttention2D(num_heads=2)
    layer.build((None, 3, 4, 8))
    assert isinstance(layer.attention, MultiHeadAttention)
    assert layer.attention.key_dim == 4  # channels // num_heads


@pytest.mark.parametrize("position_encoding", ["absolute", None])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_output_and_scores_match_numpy(position_encoding, data_format):
    x = _images((2, 3, 4, 8))
    layer = SelfAttention2D(
        num_heads=2,
        position_encoding=position_encoding,
        data_format=data_format,
    )
    feed = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    layer.build(feed.shape)
    ref.randomize_weights(layer, seed=3, scale=0.4)
    out, scores = layer(feed, return_attention_scores=True)
    out = ref.to_numpy(out)
    if data_format == "channels_first":
        out = out.transpose(0, 2, 3, 1)
    expected_out, expected_scores = _np_mhsa(x.astype("float64"), layer)
    np.testing.assert_allclose(ref.to_numpy(scores), expected_scores, atol=1e-5)
    np.testing.assert_allclose(out, expected_out, atol=1e-4)


@pytest.mark.filterwarnings("ignore:You are using a softmax")
@property_settings(15)
@given(
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    heads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_scores_are_distributions_and_shape_is_kept(h, w, heads, seed):
    x = _images((2, h, w, 4), seed=seed)
    out, scores = SelfAttention2D(num_heads=heads)(
        x, return_attention_scores=True
    )
    scores = ref.to_numpy(scores)
    assert tuple(out.shape) == x.shape
    assert scores.shape == (2, heads, h * w, h * w)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


def test_positions_break_permutation_equivariance():
    # Without position encodings, permuting the positions permutes the
    # output; the learned 2-D encodings make the block position-aware.
    x = _images((1, 2, 3, 4))
    perm = np.random.default_rng(0).permutation(6)
    x_perm = x.reshape(1, 6, 4)[:, perm].reshape(1, 2, 3, 4)
    for position_encoding, equivariant in (("absolute", False), (None, True)):
        layer = SelfAttention2D(
            num_heads=2, position_encoding=position_encoding
        )
        layer.build(x.shape)
        ref.randomize_weights(layer, seed=1)
        y = ref.to_numpy(layer(x)).reshape(1, 6, 4)[:, perm]
        y_perm = ref.to_numpy(layer(x_perm)).reshape(1, 6, 4)
        assert np.allclose(y, y_perm, atol=1e-5) == equivariant


def test_without_positions_any_map_size_works():
    inputs = keras.Input((None, None, 8))
    layer = SelfAttention2D(num_heads=2, position_encoding=None)
    model = keras.Model(inputs, layer(inputs))
    for shape in ((2, 2, 3, 8), (1, 4, 4, 8)):
        assert model.predict(_images(shape), verbose=0).shape == shape


def test_inside_small_cnn():
    check_block_in_small_cnn(SelfAttention2D(num_heads=2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_heads": 0}, "num_heads=0"),
        ({"key_dim": -1}, "key_dim=-1"),
        ({"value_dim": 0}, "value_dim=0"),
        ({"position_encoding": "relative"}, "position_encoding='relative'"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"data_format": "NHWC"}, "data_format='NHWC'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelfAttention2D(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 8), (1, 2, 2, 2, 8)])
def test_bad_rank(shape):
    with pytest.raises(ValueError, match=r"rank-4.*inputs.shape"):
        SelfAttention2D()(np.zeros(shape, "float32"))


def test_absolute_positions_need_a_fixed_map_size():
    with pytest.raises(ValueError, match=r"inputs.shape=\(None, None, None, 8"):
        SelfAttention2D(num_heads=2)(keras.Input((None, None, 8)))
    layer = SelfAttention2D(num_heads=2)
    layer(np.zeros((1, 3, 3, 8), "float32"))
    with pytest.raises(ValueError, match="3"):
        layer(np.zeros((1, 4, 4, 8), "float32"))
