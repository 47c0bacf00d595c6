"""Tests of `layers.AttentionPooling1D` (HAN attention pooling)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

from layers import AttentionPooling1D
from tests.testing import property_settings
from tests.testing import run_layer_test


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _rand(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def reference(layer, h, mask=None):
    """NumPy HAN pooling from the layer's own weights: pooled, [B, H, T]."""
    w = {v.name: _np(v) for v in layer.weights}
    u = np.tanh(h @ w["kernel"] + w.get("bias", 0.0))
    logits = np.einsum("btu,uh->bht", u, w["context"])
    m = np.ones(h.shape[:2], bool) if mask is None else mask
    logits = np.where(m[:, None], logits, -np.inf)
    top = np.max(logits, -1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(logits - top) * m[:, None]
    s = e.sum(-1, keepdims=True)
    a = np.where(s > 0, e / np.where(s > 0, s, 1), 0.0)
    pooled = np.einsum("bht,btd->bhd", a, h)
    if layer.merge == "mean":
        return pooled.mean(1), a
    return pooled.reshape(h.shape[0], -1), a


def test_layer_contract_single_head_with_mask():
    rng = np.random.default_rng(0)
    run_layer_test(
        AttentionPooling1D,
        dict(units=4),
        _rand(rng, 2, 6, 8),
        (2, 8),
        tensor_kwargs={"mask": rng.random((2, 6)) > 0.3},
    )


def test_layer_contract_heads_concat_with_weights():
    rng = np.random.default_rng(1)
    run_layer_test(
        AttentionPooling1D,
        dict(num_heads=3, merge="concat", use_bias=False),
        _rand(rng, 2, 6, 8),
        [(2, 24), (2, 3, 6)],
        tensor_kwargs={"mask": rng.random((2, 6)) > 0.3},
        call_kwargs={"return_attention_scores": True},
    )


@pytest.mark.parametrize(
    "heads, merge", [(1, "concat"), (3, "concat"), (3, "mean")]
)
def test_matches_numpy_reference(heads, merge):
    rng = np.random.default_rng(3)
    h = _rand(rng, 3, 7, 5)
    mask = rng.random((3, 7)) > 0.3
    mask[2] = False  # a fully masked sequence
    layer = AttentionPooling1D(
        units=4, num_heads=heads, merge=merge, bias_initializer="uniform"
    )
    pooled, weights = layer(h, mask=mask, return_attention_scores=True)
    ref, ref_w = reference(layer, h, mask)
    np.testing.assert_allclose(_np(pooled), ref, atol=1e-5)
    ref_w = ref_w[:, 0] if heads == 1 else ref_w
    np.testing.assert_allclose(_np(weights), ref_w, atol=1e-6)
    assert np.all(_np(pooled)[2] == 0.0) and np.all(_np(weights)[2] == 0.0)


def test_automatic_keras_mask_is_honoured_and_not_propagated():
    tokens = np.array([[4, 2, 7, 0, 0], [1, 0, 0, 0, 0]])
    inp = keras.Input((5,), dtype="int32")
    emb = keras.layers.Embedding(10, 6, mask_zero=True)
    layer = AttentionPooling1D()
    pooled, weights = layer(emb(inp), return_attention_scores=True)
    assert getattr(pooled, "_keras_mask", None) is None
    model = keras.Model(inp, [pooled, weights])
    got, got_w = (_np(t) for t in model(tokens))
    ref, ref_w = reference(layer, _np(emb(tokens)), tokens > 0)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got_w, ref_w[:, 0], atol=1e-6)
    assert np.all(got_w[tokens == 0] == 0.0)


@property_settings(20)
@given(
    st.sampled_from([(4, 2, 1), (3, 3, 2), (5, 1, 3)]),
    st.integers(0, 2**31 - 1),
)
def test_property_distribution_and_padding_invariance(sizes, seed):
    t, extra, heads = sizes
    rng = np.random.default_rng(seed)
    h = _rand(rng, 2, t + extra, 4)
    mask = np.zeros((2, t + extra), bool)
    mask[:, :t] = rng.random((2, t)) > 0.3
    layer = AttentionPooling1D(units=3, num_heads=heads)
    pooled, w = layer(h, mask=mask, return_attention_scores=True)
    w = _np(w).reshape(2, heads, t + extra)
    # A distribution over the unmasked steps; all-masked rows are zeros.
    assert np.all(w[np.broadcast_to(~mask[:, None], w.shape)] == 0.0)
    has = mask.any(-1)
    np.testing.assert_allclose(w[has].sum(-1), 1.0, atol=1e-5)
    assert np.all(w[~has] == 0.0) and np.all(_np(pooled)[~has] == 0.0)
    # Appending masked steps changes nothing.
    short = layer(h[:, :t], mask=mask[:, :t])
    np.testing.assert_allclose(_np(pooled), _np(short), atol=1e-5)


def test_mixed_precision_weights_are_float32():
    h = _rand(np.random.default_rng(4), 2, 5, 4) * 100
    layer = AttentionPooling1D(dtype="mixed_float16")
    pooled, w = layer(h, return_attention_scores=True)
    assert keras.backend.standardize_dtype(w.dtype) == "float32"
    assert np.all(np.isfinite(_np(pooled)))
    np.testing.assert_allclose(_np(w).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units=0), "units=0"),
        (dict(num_heads=0), "num_heads=0"),
        (dict(num_heads=1.5), "num_heads=1.5"),
        (dict(merge="sum"), "merge='sum'"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionPooling1D(**kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"inputs.shape=\(2, 5\)"):
        AttentionPooling1D()(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"mask.*\(2, 4\).*\(2, 5, 3\)"):
        AttentionPooling1D()(
            np.zeros((2, 5, 3), "float32"), mask=np.ones((2, 4), bool)
        )
