"""Tests of the memory-efficient chunked attention (Rabe & Staats 2021)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras import ops

from layers import MultiHeadAttention
from layers import blockwise_attention
from layers import chunked_attention
from layers.chunked_attention import NO_KEY_LSE
from layers.masking import masked_softmax
from tests.testing import compute_gradients
from tests.testing import run_layer_test


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _rand(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def _mask(b, t, s, query_mask, value_mask, attention_mask, causal, offset):
    m = np.ones((b, t, s), bool)
    if query_mask is not None:
        m &= query_mask[:, :, None]
    if value_mask is not None:
        m &= value_mask[:, None, :]
    if attention_mask is not None:
        m &= attention_mask
    if causal:
        m &= (np.arange(t)[:, None] + offset >= np.arange(s)[None])[None]
    return m


def reference(
    q,
    k,
    v,
    query_mask=None,
    value_mask=None,
    attention_mask=None,
    is_causal=False,
    causal_offset=0,
    scale=None,
):
    """NumPy attention `[B, T, N, H]` plus the log-sum-exp `[B, N, T]`."""
    b, t, n, h = q.shape
    s, kv = k.shape[1], k.shape[2]
    k = np.repeat(k.astype("float64"), n // kv, axis=2)
    v = np.repeat(v.astype("float64"), n // kv, axis=2)
    scale = 1 / np.sqrt(h) if scale is None else scale
    logits = np.einsum("btnh,bsnh->bnts", q, k) * scale
    m = _mask(
        b,
        t,
        s,
        query_mask,
        value_mask,
        attention_mask,
        is_causal,
        causal_offset,
    )[:, None]
    logits = np.where(m, logits, -np.inf)
    top = np.max(logits, -1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(logits - top) * m
    total = e.sum(-1, keepdims=True)
    w = np.where(total > 0, e / np.where(total > 0, total, 1), 0.0)
    lse = np.where(
        total > 0, np.log(np.where(total > 0, total, 1)) + top, NO_KEY_LSE
    )[..., 0]
    return np.einsum("bnts,bsnh->btnh", w, v), lse


def standard(q, k, v, mask, scale):
    """The standard (materialising) computation in keras.ops, for gradients."""
    n, kv = q.shape[2], k.shape[2]
    k = ops.repeat(k, n // kv, axis=2)
    v = ops.repeat(v, n // kv, axis=2)
    logits = ops.einsum("btnh,bsnh->bnts", q, k) * scale
    w = masked_softmax(logits, mask[:, None])
    return ops.einsum("bnts,bsnh->btnh", w, v)


CASES = [
    # (T, S, N, K, q_chunk, k_chunk)
    (7, 7, 2, 2, 3, 2),
    (5, 9, 4, 2, 2, 4),
    (6, 4, 3, 1, 64, 64),
    (9, 6, 2, 1, 1, 5),
]


@pytest.mark.parametrize("t, s, n, kv, qc, kc", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_forward_matches_reference_with_masks(t, s, n, kv, qc, kc, causal):
    rng = np.random.default_rng(t * s + n)
    q, k, v = (
        _rand(rng, 2, t, n, 4),
        _rand(rng, 2, s, kv, 4),
        _rand(rng, 2, s, kv, 3),
    )
    qm, vm = rng.random((2, t)) > 0.2, rng.random((2, s)) > 0.3
    vm[1] = False  # a batch row without valid keys
    out = chunked_attention(
        q,
        k,
        v,
        query_mask=qm,
        value_mask=vm,
        is_causal=causal,
        query_chunk_size=qc,
        key_chunk_size=kc,
    )
    ref, _ = reference(q, k, v, qm, vm, is_causal=causal)
    np.testing.assert_allclose(_np(out), ref, atol=2e-6)
    assert np.all(_np(out)[1] == 0.0)


@pytest.mark.parametrize("t, s, n, kv, qc, kc", CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_match_the_standard_path(t, s, n, kv, qc, kc, causal):
    rng = np.random.default_rng(t + s * n)
    q, k, v = (
        _rand(rng, 2, t, n, 4),
        _rand(rng, 2, s, kv, 4),
        _rand(rng, 2, s, kv, 3),
    )
    qm, vm = rng.random((2, t)) > 0.2, rng.random((2, s)) > 0.3
    vm[1, : s // 2] = False
    probe = _rand(rng, 2, t, n, 3)
    mask = _mask(2, t, s, qm, vm, None, causal, 0)

    def chunked(q, k, v):
        out = chunked_attention(
            q,
            k,
            v,
            query_mask=qm,
            value_mask=vm,
            is_causal=causal,
            query_chunk_size=qc,
            key_chunk_size=kc,
        )
        return out * probe

    def plain(q, k, v):
        return standard(q, k, v, mask, 0.5) * probe

    for got, want in zip(
        compute_gradients(chunked, [q, k, v]),
        compute_gradients(plain, [q, k, v]),
    ):
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_attention_mask_causal_offset_and_scale():
    rng = np.random.default_rng(1)
    q, k, v = (
        _rand(rng, 2, 3, 2, 4),
        _rand(rng, 2, 8, 2, 4),
        _rand(rng, 2, 8, 2, 4),
    )
    am = rng.random((2, 3, 8)) > 0.3
    out = chunked_attention(
        q,
        k,
        v,
        attention_mask=am,
        is_causal=True,
        causal_offset=4,
        scale=0.3,
        query_chunk_size=2,
        key_chunk_size=3,
    )
    ref, _ = reference(
        q, k, v, attention_mask=am, is_causal=True, causal_offset=4, scale=0.3
    )
    np.testing.assert_allclose(_np(out), ref, atol=2e-6)
    # Broadcast attention mask [1, 1, S].
    out = chunked_attention(
        q, k, v, attention_mask=am[:1, :1], key_chunk_size=3
    )
    ref, _ = reference(q, k, v, attention_mask=am[:1, :1])
    np.testing.assert_allclose(_np(out), ref, atol=2e-6)


def test_log_sum_exp_and_its_gradient():
    rng = np.random.default_rng(2)
    q, k, v = (
        _rand(rng, 2, 5, 2, 4),
        _rand(rng, 2, 6, 2, 4),
        _rand(rng, 2, 6, 2, 4),
    )
    vm = np.ones((2, 6), bool)
    vm[1] = False
    heads_first = (
        np.transpose(q, (0, 2, 1, 3))[:, :, None] * 0.5,
        np.transpose(k, (0, 2, 3, 1)),
        np.transpose(v, (0, 2, 1, 3)),
    )
    out, lse = blockwise_attention(
        *heads_first,
        value_mask=vm,
        query_chunk_size=2,
        key_chunk_size=4,
        return_lse=True,
    )
    _, ref_lse = reference(q, k, v, value_mask=vm)
    np.testing.assert_allclose(_np(lse)[:, :, 0], ref_lse, rtol=1e-5)
    assert np.all(_np(lse)[1] == np.float32(NO_KEY_LSE))
    # d lse / d q_i = sum_j p_ij k_j * scale: check against autodiff.
    probe = rng.normal(size=(1, 2, 1, 5)).astype("float32")

    def via_chunks(qh):
        _, lse = blockwise_attention(
            qh,
            heads_first[1],
            heads_first[2],
            query_chunk_size=2,
            key_chunk_size=4,
            return_lse=True,
        )
        return lse[:1] * probe

    def via_logsumexp(qh):
        logits = ops.matmul(qh[:, :, 0], heads_first[1])
        return ops.logsumexp(logits, axis=-1)[:1, :, None] * probe

    np.testing.assert_allclose(
        compute_gradients(via_chunks, [heads_first[0]])[0],
        compute_gradients(via_logsumexp, [heads_first[0]])[0],
        atol=1e-5,
    )


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_property_equals_standard_attention(t, s, qc, kc, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (
        _rand(rng, 2, t, 2, 3),
        _rand(rng, 2, s, 1, 3),
        _rand(rng, 2, s, 1, 2),
    )
    qm, vm = rng.random((2, t)) > 0.3, rng.random((2, s)) > 0.3
    out = _np(
        chunked_attention(
            q,
            k,
            v,
            query_mask=qm,
            value_mask=vm,
            is_causal=causal,
            query_chunk_size=qc,
            key_chunk_size=kc,
        )
    )
    ref, _ = reference(q, k, v, qm, vm, is_causal=causal)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    # Rows without any valid key are exactly zero, never NaN.
    valid = _mask(2, t, s, qm, vm, None, causal, 0).any(-1)
    assert np.all(out[~valid] == 0.0) and np.all(np.isfinite(out))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_property_padding_invariance(s, extra, seed):
    rng = np.random.default_rng(seed)
    q = _rand(rng, 1, 4, 2, 3)
    k, v = _rand(rng, 1, s + extra, 2, 3), _rand(rng, 1, s + extra, 2, 3)
    vm = np.zeros((1, s + extra), bool)
    vm[:, :s] = True
    long = chunked_attention(
        q, k, v, value_mask=vm, query_chunk_size=3, key_chunk_size=2
    )
    short = chunked_attention(
        q, k[:, :s], v[:, :s], query_chunk_size=3, key_chunk_size=2
    )
    np.testing.assert_allclose(_np(long), _np(short), atol=2e-6)


def test_mixed_precision_inputs_stay_finite():
    rng = np.random.default_rng(3)
    q = ops.cast(_rand(rng, 1, 6, 2, 4) * 30, "float16")
    k = ops.cast(_rand(rng, 1, 6, 2, 4) * 30, "float16")
    v = ops.cast(_rand(rng, 1, 6, 2, 4), "float16")
    out = chunked_attention(
        ops.cast(q, "float32"), ops.cast(k, "float32"), v, key_chunk_size=4
    )
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert np.all(np.isfinite(_np(out)))


@pytest.mark.tf_only
def test_unknown_lengths_inside_tf_function():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    q, k = _rand(rng, 2, 7, 2, 4), _rand(rng, 2, 5, 2, 4)
    spec = tf.TensorSpec((None, None, 2, 4), "float32")

    @tf.function(input_signature=[spec, spec])
    def run(q, k):
        return chunked_attention(
            q, k, k, is_causal=True, query_chunk_size=3, key_chunk_size=2
        )

    ref, _ = reference(q, k, k, is_causal=True)
    np.testing.assert_allclose(_np(run(q, k)), ref, atol=2e-6)


def test_layer_contract_of_the_chunked_path():
    x = _rand(np.random.default_rng(5), 2, 6, 8)
    run_layer_test(
        MultiHeadAttention,
        dict(
            num_heads=2,
            key_dim=4,
            num_key_value_heads=1,
            attention_impl="chunked",
            query_chunk_size=4,
            key_chunk_size=4,
        ),
        [x, x],
        (2, 6, 8),
        tensor_kwargs={
            "value_mask": np.array([[True] * 6, [True] * 3 + [False] * 3])
        },
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(query_chunk_size=0), "query_chunk_size=0"),
        (dict(key_chunk_size=-2), "key_chunk_size=-2"),
        (dict(key_chunk_size=True), "key_chunk_size=True"),
        (dict(query_chunk_size="8"), "query_chunk_size='8'"),
    ],
)
def test_bad_chunk_sizes_raise(kwargs, match):
    x = np.zeros((1, 4, 2, 3), "float32")
    with pytest.raises(ValueError, match=match):
        chunked_attention(x, x, x, **kwargs)


def test_bad_shapes_raise_naming_both_shapes():
    q = np.zeros((1, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match=r"rank 4.*query.shape=\(4, 4, 3\)"):
        chunked_attention(q[0], q, q)
    with pytest.raises(ValueError, match=r"key.shape=\(1, 4, 3, 3\)"):
        chunked_attention(q, q[:, :, :3], q[:, :, :3])
    with pytest.raises(
        ValueError,
        match=r"query.shape=\(1, 4, 4, 3\) and "
        r"key.shape=\(1, 4, 4, 2\)",
    ):
        chunked_attention(q, q[..., :2], q)
    with pytest.raises(
        ValueError,
        match=r"key.shape=\(1, 4, 4, 3\) and "
        r"value.shape=\(1, 5, 4, 3\)",
    ):
        chunked_attention(q, q, np.zeros((1, 5, 4, 3), "float32"))
