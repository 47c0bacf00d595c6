"""Tests of the shared mask/normalisation primitives."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

from layers import masking
from tests.testing import property_settings


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _np_softmax(x, mask):
    x = np.where(mask, x, -np.inf)
    m = np.max(x, -1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m) * mask
    s = e.sum(-1, keepdims=True)
    return np.where(s > 0, e / np.where(s > 0, s, 1), 0.0)


@property_settings(25)
@given(
    st.integers(1, 3),
    st.integers(1, 6),
    st.integers(0, 2**31 - 1),
)
def test_masked_softmax_matches_reference_and_never_nan(b, t, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, 2, t)).astype("float32") * 5
    mask = rng.random((b, 2, t)) > 0.4
    mask[0, 0] = False  # one fully-masked row
    got = _np(masking.masked_softmax(x, mask))
    np.testing.assert_allclose(got, _np_softmax(x, mask), atol=1e-6)
    assert np.all(np.isfinite(got))
    assert np.all(got[0, 0] == 0.0)
    sums = got.sum(-1)
    np.testing.assert_allclose(sums[mask.any(-1)], 1.0, atol=1e-5)


def test_masked_softmax_is_float32_for_half_inputs():
    x = ops.cast(np.array([[60000.0, 0.0]]), "float16")
    out = masking.masked_softmax(x, np.array([[True, True]]))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert np.all(np.isfinite(_np(out)))


def _np_sparsemax(z):
    z_sorted = np.sort(z)[::-1]
    k = np.arange(1, len(z) + 1)
    cs = np.cumsum(z_sorted)
    support = 1 + k * z_sorted > cs
    kz = k[support][-1]
    tau = (cs[kz - 1] - 1) / kz
    return np.maximum(z - tau, 0)


@property_settings(25)
@given(st.integers(2, 8), st.integers(0, 2**31 - 1))
def test_sparsemax_matches_reference_and_is_sparse(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(3, n)).astype("float32") * 3
    got = _np(masking.masked_sparsemax(z))
    want = np.stack([_np_sparsemax(row) for row in z])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_sparsemax_gives_exact_zeros_and_honours_mask():
    z = np.array([[3.0, 0.0, -2.0, 2.9]], "float32")
    got = _np(masking.masked_sparsemax(z))
    assert got[0, 2] == 0.0 and got[0, 1] == 0.0
    mask = np.array([[False, True, True, True]])
    got = _np(masking.masked_sparsemax(z, mask))
    assert got[0, 0] == 0.0
    np.testing.assert_allclose(got.sum(), 1.0, atol=1e-6)
    none = _np(masking.masked_sparsemax(z, np.zeros_like(mask)))
    assert np.all(none == 0.0)


def test_sparsemax_on_other_axis():
    z = np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32")
    a = _np(masking.masked_sparsemax(z, axis=1))
    b = np.moveaxis(_np(masking.masked_sparsemax(np.moveaxis(z, 1, -1))), -1, 1)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_causal_mask_with_offset():
    m = _np(masking.causal_mask(2, 4, offset=2))
    np.testing.assert_array_equal(
        m[0], [[True, True, True, False], [True, True, True, True]]
    )


def test_merge_masks_combines_all_sources():
    q = np.zeros((2, 3, 4), "float32")
    k = np.zeros((2, 5, 4), "float32")
    qm = np.array([[1, 1, 0], [1, 1, 1]], bool)
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    am = np.ones((2, 3, 5), bool)
    am[1, 0, 0] = False
    m = _np(
        masking.merge_attention_masks(q, k, qm, vm, am, use_causal_mask=True)
    )
    assert m.shape == (2, 3, 5)
    want = (
        qm[:, :, None]
        & vm[:, None, :]
        & am
        & np.tril(np.ones((3, 5), bool))[None]
    )
    np.testing.assert_array_equal(m, want)
    assert masking.merge_attention_masks(q, k) is None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"query_mask": np.ones((2, 4), bool)}, "query_mask"),
        ({"value_mask": np.ones((2, 3), bool)}, "value_mask"),
        ({"attention_mask": np.ones((2, 3, 4), bool)}, "attention_mask"),
        ({"value_mask": np.ones((2, 5, 1), bool)}, "value_mask"),
    ],
)
def test_merge_masks_rejects_wrong_shapes(kwargs, name):
    q = np.zeros((2, 3, 4), "float32")
    k = np.zeros((2, 5, 4), "float32")
    with pytest.raises(ValueError, match=name) as err:
        masking.merge_attention_masks(q, k, **kwargs)
    assert "query.shape=(2, 3, 4)" in str(err.value)


def test_normalize_scores_rejects_unknown_name():
    with pytest.raises(ValueError, match="probability_fn='relu'"):
        masking.normalize_scores(np.zeros((1, 2)), probability_fn="relu")


@pytest.mark.tf_only
def test_masked_softmax_gradient_is_finite_for_fully_masked_rows():
    import tensorflow as tf

    x = tf.Variable(np.zeros((1, 2, 3), "float32"))
    mask = np.array([[[False] * 3, [True, False, True]]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(masking.masked_softmax(x, mask) * [1.0, 2.0, 3.0])
    g = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(g))
    assert np.all(g[0, 0] == 0)
