"""Tests of the memory-efficient chunked attention (Rabe & Staats 2021)."""

import functools

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

from layers import MultiHeadAttention
from layers import blockwise_attention
from layers import chunked_attention
from layers.chunked_attention import NO_KEY_LSE
from layers.masking import masked_softmax
from tests.testing import compute_gradients
from tests.testing import property_settings
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


@functools.cache
def runner(causal, q_chunk, k_chunk):
    """`chunked_attention` with masks; compiled once per shape under JAX.

    JAX's eager mode compiles each `fori_loop` anew at every call; a cached
    `jax.jit` keeps the many calls of the property tests fast.
    """

    def run(q, k, v, query_mask, value_mask):
        return chunked_attention(
            q,
            k,
            v,
            query_mask=query_mask,
            value_mask=value_mask,
            is_causal=causal,
            query_chunk_size=q_chunk,
            key_chunk_size=k_chunk,
        )

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(run)
    return run


# JAX compiles each distinct (shape, causal, chunks) program once (~1-3 s);
# fewer examples there, 20 on TensorFlow.
SETTINGS = property_settings(20)

CASES = [
    # (T, S, N, K, q_chunk, k_chunk)
    (7, 7, 2, 2, 3, 2),
    (5, 9, 4, 2, 2, 4),
    (6, 4, 3, 1, 64, 64),
    (9, 6, 2, 1, 1, 5),
]
GRADIENT_CASES = CASES[:2]


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


@pytest.mark.parametrize("t, s, n, kv, qc, kc", GRADIENT_CASES)
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


@SETTINGS
@given(
    st.sampled_from([(7, 5), (3, 8)]),
    st.sampled_from([(2, 3), (3, 8)]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_property_equals_standard_attention(lengths, chunks, causal, seed):
    (t, s), (qc, kc) = lengths, chunks
    rng = np.random.default_rng(seed)
    q, k, v = (
        _rand(rng, 2, t, 2, 3),
        _rand(rng, 2, s, 1, 3),
        _rand(rng, 2, s, 1, 2),
    )
    qm, vm = rng.random((2, t)) > 0.3, rng.random((2, s)) > 0.3
    out = _np(runner(causal, qc, kc)(q, k, v, qm, vm))
    ref, _ = reference(q, k, v, qm, vm, is_causal=causal)
    np.testing.assert_allclose(out, ref, atol=2e-6)
    # Rows without any valid key are exactly zero, never NaN.
    valid = _mask(2, t, s, qm, vm, None, causal, 0).any(-1)
    assert np.all(out[~valid] == 0.0) and np.all(np.isfinite(out))


@SETTINGS
@given(
    st.sampled_from([(3, 2), (5, 4)]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_property_padding_invariance(lengths, causal, seed):
    s, extra = lengths
    rng = np.random.default_rng(seed)
    q = _rand(rng, 2, 4, 2, 3)
    k, v = _rand(rng, 2, s + extra, 2, 3), _rand(rng, 2, s + extra, 2, 3)
    qm = rng.random((2, 4)) > 0.2
    vm = np.zeros((2, s + extra), bool)
    vm[:, :s] = rng.random((2, s)) > 0.3
    run = runner(causal, 3, 2)
    long = run(q, k, v, qm, vm)
    short = run(q, k[:, :s], v[:, :s], qm, vm[:, :s])
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


@pytest.mark.parametrize("causal", [False, True])
def test_layer_chunked_and_standard_paths_agree_with_every_mask(causal):
    """Selected per layer: the same weights through `attention_impl=
    "chunked"` and `"standard"` give the same outputs and gradients (inputs
    and weights) with query, value and attention masks, GQA and causal."""
    rng = np.random.default_rng(11)
    x, y = _rand(rng, 2, 7, 8), _rand(rng, 2, 5, 8)
    qm, vm = rng.random((2, 7)) > 0.2, rng.random((2, 5)) > 0.3
    am = rng.random((2, 7, 5)) > 0.2
    vm[1] = False  # a batch row without any valid key
    probe = _rand(rng, 2, 7, 8)
    layers = {
        impl: MultiHeadAttention(
            4,
            3,
            num_key_value_heads=2,
            attention_impl=impl,
            query_chunk_size=3,
            key_chunk_size=2,
            bias_initializer="uniform",
        )
        for impl in ("standard", "chunked")
    }
    for layer in layers.values():
        layer(x, y)
    layers["chunked"].set_weights(layers["standard"].get_weights())
    masks = dict(
        query_mask=qm, value_mask=vm, attention_mask=am, use_causal_mask=causal
    )

    def loss_of(layer):
        def fn(x, y, *weights):
            out, _ = layer.stateless_call(list(weights), [], x, y, **masks)
            return out * probe

        return fn

    weights = [np.asarray(w) for w in layers["standard"].get_weights()]
    results = {
        impl: (
            _np(layer(x, y, **masks)),
            compute_gradients(loss_of(layer), [x, y, *weights]),
        )
        for impl, layer in layers.items()
    }
    out_s, grads_s = results["standard"]
    out_c, grads_c = results["chunked"]
    np.testing.assert_allclose(out_c, out_s, atol=2e-5)
    assert np.all(out_c[1] == 0.0)
    assert len(grads_c) == 2 + len(weights)
    for got, want in zip(grads_c, grads_s):
        np.testing.assert_allclose(got, want, atol=5e-5, rtol=1e-4)
