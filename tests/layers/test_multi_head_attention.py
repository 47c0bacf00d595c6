"""Tests of `layers.MultiHeadAttention` (fused QKV, GQA, cache, chunking)."""

import warnings

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

import layers.attention_kernels as kernels_module
from layers import MultiHeadAttention
from layers import masked_softmax
from layers.attention_kernels import dense_attention
from tests.testing import layer_gradients
from tests.testing import property_settings
from tests.testing import run_layer_test

# Shapes are drawn from small fixed sets so compiled kernels are reused. JAX
# runs fewer examples: its eager mode recompiles every `fori_loop` (chunked
# path) at each call; the TensorFlow run explores 20 examples per property.
SETTINGS = property_settings(20)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _rand(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def _projections(layer):
    """The layer's own q/k/v/out weights as NumPy (kernel, bias) pairs."""
    w = {v.name: _np(v) for v in layer.weights}
    nq, nk = layer._q_width, layer._k_width
    if "qkv_kernel" in w:
        kern = w["qkv_kernel"]
        bias = w.get("qkv_bias", np.zeros(kern.shape[1]))
        split = (
            (kern[:, :nq], bias[:nq]),
            (kern[:, nq : nq + nk], bias[nq : nq + nk]),
            (kern[:, nq + nk :], bias[nq + nk :]),
        )
    else:
        split = tuple(
            (
                w[f"{n}_kernel"],
                w.get(f"{n}_bias", np.zeros(w[f"{n}_kernel"].shape[1])),
            )
            for n in ("query", "key", "value")
        )
    out = (
        w["output_kernel"],
        w.get("output_bias", np.zeros(w["output_kernel"].shape[1])),
    )
    return split, out


def reference_mha(layer, query, value, key=None, mask=None):
    """NumPy multi-head attention from `layer`'s weights.

    `mask`: boolean `[B, Tq, Tk]` (everything merged) or None. Returns the
    output `[B, Tq, out]` and the weights `[B, N, Tq, Tk]`.
    """
    key = value if key is None else key
    (wq, bq), (wk, bk), (wv, bv) = _projections(layer)[0]
    wo, bo = _projections(layer)[1]
    n, kv, h = layer.num_heads, layer._kv_heads, layer.key_dim
    hv = layer._head_value_dim
    b, tq, tk = query.shape[0], query.shape[1], key.shape[1]
    q = (query @ wq + bq).reshape(b, tq, n, h)
    k = (key @ wk + bk).reshape(b, tk, kv, h)
    v = (value @ wv + bv).reshape(b, tk, kv, hv)
    k = np.repeat(k, n // kv, axis=2)
    v = np.repeat(v, n // kv, axis=2)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(h)
    full = np.ones((b, tq, tk), bool) if mask is None else mask
    m = full[:, None]
    logits = np.where(m, logits, -np.inf)
    top = np.max(logits, -1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(logits - top) * m
    s = e.sum(-1, keepdims=True)
    weights = np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)
    ctx = np.einsum("bnts,bsnh->btnh", weights, v).reshape(b, tq, n * hv)
    out = ctx @ wo + bo
    out = out * full.any(-1, keepdims=True)
    return out, weights


def _causal(tq, tk, offset=0):
    return (np.arange(tq)[:, None] + offset) >= np.arange(tk)[None, :]


def _copy_from_keras(layer, keras_layer, features):
    """Loads a keras MultiHeadAttention/GroupQueryAttention's weights."""
    qk, qb, kk, kb, vk, vb, ok, ob = [_np(w) for w in keras_layer.weights]
    layer.set_weights(
        [
            np.concatenate(
                [
                    qk.reshape(features, -1),
                    kk.reshape(features, -1),
                    vk.reshape(features, -1),
                ],
                axis=1,
            ),
            np.concatenate([qb.ravel(), kb.ravel(), vb.ravel()]),
            ok.reshape(-1, ok.shape[-1]),
            ob,
        ]
    )


# === Shared layer contract ===


def test_layer_contract_self_attention_gqa_causal():
    x = _rand(np.random.default_rng(0), 2, 6, 8)
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=4, key_dim=3, num_key_value_heads=2),
        [x, x],
        (2, 6, 8),
        call_kwargs={"use_causal_mask": True},
    )


def test_layer_contract_cross_attention_masks_dropout_scores():
    rng = np.random.default_rng(1)
    x, y = _rand(rng, 2, 6, 8), _rand(rng, 2, 5, 12)
    run_layer_test(
        MultiHeadAttention,
        dict(
            num_heads=2,
            key_dim=3,
            value_dim=5,
            dropout=0.1,
            seed=1,
            output_shape=(3, 2),
        ),
        [x, y],
        [(2, 6, 3, 2), (2, 2, 6, 5)],
        tensor_kwargs={
            "query_mask": rng.random((2, 6)) > 0.2,
            "value_mask": rng.random((2, 5)) > 0.3,
        },
        call_kwargs={"use_causal_mask": True, "return_attention_scores": True},
    )


def test_layer_contract_4d_inputs():
    rng = np.random.default_rng(4)
    x = _rand(rng, 2, 3, 4, 8)
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=2, key_dim=4, attention_axes=(2,)),
        [x, x],
        [(2, 3, 4, 8), (2, 3, 2, 4, 4)],
        tensor_kwargs={"query_mask": rng.random((2, 3, 4)) > 0.2},
        call_kwargs={"return_attention_scores": True},
    )


# === Numeric tests against NumPy references ===


@pytest.mark.parametrize("impl", ["standard", "chunked"])
@pytest.mark.parametrize("kv_heads", [None, 2, 1])
def test_self_attention_matches_numpy_reference(impl, kv_heads):
    rng = np.random.default_rng(5)
    x = _rand(rng, 2, 7, 8)
    qmask, vmask = rng.random((2, 7)) > 0.2, rng.random((2, 7)) > 0.3
    vmask[1] = False  # one batch row without any valid key
    layer = MultiHeadAttention(
        4,
        3,
        num_key_value_heads=kv_heads,
        attention_impl=impl,
        query_chunk_size=3,
        key_chunk_size=2,
        bias_initializer="uniform",
    )
    out = layer(x, x, query_mask=qmask, value_mask=vmask, use_causal_mask=True)
    assert hasattr(layer, "qkv_kernel")  # fused layout
    mask = qmask[:, :, None] & vmask[:, None, :] & _causal(7, 7)[None]
    ref, _ = reference_mha(layer, x, x, mask=mask)
    np.testing.assert_allclose(_np(out), ref, atol=2e-5)
    assert np.all(_np(out)[1] == 0.0)


@pytest.mark.parametrize("same_dims", [True, False])
def test_cross_attention_matches_numpy_reference(same_dims):
    rng = np.random.default_rng(6)
    x = _rand(rng, 2, 5, 8)
    dv = 8 if same_dims else 6
    y, k = _rand(rng, 2, 4, dv), _rand(rng, 2, 4, dv)
    am = rng.random((2, 5, 4)) > 0.3
    layer = MultiHeadAttention(
        2, 3, value_dim=4, output_shape=7, bias_initializer="uniform"
    )
    out, scores = layer(
        x, y, key=k, attention_mask=am, return_attention_scores=True
    )
    assert hasattr(layer, "qkv_kernel") == same_dims
    ref, ref_w = reference_mha(layer, x, y, key=k, mask=am)
    np.testing.assert_allclose(_np(out), ref, atol=2e-5)
    np.testing.assert_allclose(_np(scores), ref_w, atol=2e-6)
    # The same layer (and weights) serves key=None cross-attention too.
    out2 = layer(x, y)
    np.testing.assert_allclose(
        _np(out2), reference_mha(layer, x, y)[0], atol=2e-5
    )


def test_fused_layer_serves_self_and_cross_attention_and_reloads(tmp_path):
    rng = np.random.default_rng(7)
    x, enc = _rand(rng, 2, 5, 8), _rand(rng, 2, 3, 8)
    inp, src = keras.Input((5, 8)), keras.Input((3, 8))
    layer = MultiHeadAttention(2, 4, name="shared")
    out = layer(layer(inp, inp, use_causal_mask=True), src)
    model = keras.Model([inp, src], out)
    expected = _np(model([x, enc]))
    h = reference_mha(layer, x, x, mask=_causal(5, 5)[None])[0]
    np.testing.assert_allclose(
        expected, reference_mha(layer, h, enc)[0], atol=2e-5
    )
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(reloaded([x, enc])), expected, atol=1e-5)


@pytest.mark.parametrize("axes", [None, (2,), (1,)])
def test_4d_inputs_match_keras_with_masks(axes):
    rng = np.random.default_rng(8)
    x = _rand(rng, 2, 3, 4, 8)
    ours = MultiHeadAttention(2, 4, attention_axes=axes)
    theirs = keras.layers.MultiHeadAttention(2, 4, attention_axes=axes)
    ours(x, x)
    theirs(x, x)
    _copy_from_keras(ours, theirs, 8)
    a, sa = ours(x, x, return_attention_scores=True)
    b, sb = theirs(x, x, return_attention_scores=True)
    np.testing.assert_allclose(_np(a), _np(b), atol=2e-5)
    np.testing.assert_allclose(_np(sa), _np(sb), atol=2e-6)
    # Masked key positions get zero weight in every 4-D path.
    vmask = rng.random((2, 3, 4)) > 0.4
    vmask[:, 0, 0] = True
    for impl in ("standard", "chunked"):
        layer = MultiHeadAttention(
            2, 4, attention_axes=axes, attention_impl=impl, key_chunk_size=2
        )
        layer(x, x)
        layer.set_weights(ours.get_weights())
        out = layer(x, x, value_mask=vmask)
        x2 = np.where(vmask[..., None], x, 100.0 * x)  # change masked keys
        out2 = layer(x, x2, value_mask=vmask)
        np.testing.assert_allclose(_np(out), _np(out2), atol=1e-4)
    _, scores = layer(x, x, value_mask=vmask, return_attention_scores=True)
    if axes == (2,):
        # scores: [B, T1, N, T2, S2]; keys of row (b, t1) are vmask[b, t1]
        masked = ~vmask[:, :, None, None, :]
        assert np.all(_np(scores)[np.broadcast_to(masked, scores.shape)] == 0)


@pytest.mark.parametrize("impl", ["standard", "chunked"])
def test_matches_keras_multi_head_attention_outputs_scores_gradients(impl):
    rng = np.random.default_rng(9)
    x, y = _rand(rng, 2, 6, 16), _rand(rng, 2, 6, 16)
    vmask = rng.random((2, 6)) > 0.3
    vmask[:, 0] = True
    theirs = keras.layers.MultiHeadAttention(4, 4)
    theirs(x, y)
    ours = MultiHeadAttention(
        4, 4, attention_impl=impl, query_chunk_size=4, key_chunk_size=4
    )
    ours(x, y)
    _copy_from_keras(ours, theirs, 16)
    for args, kw in (
        ((x, x), dict(value_mask=vmask, use_causal_mask=True)),
        ((x, y), dict(value_mask=vmask)),
    ):
        np.testing.assert_allclose(
            _np(ours(*args, **kw)), _np(theirs(*args, **kw)), atol=2e-5
        )
        g_ours = layer_gradients(ours, lambda a=args, k=kw: ours(*a, **k) ** 2)
        g_theirs = layer_gradients(
            theirs, lambda a=args, k=kw: theirs(*a, **k) ** 2
        )
        qk, qb, kk, kb, vk, vb, ok, ob = g_theirs
        mapped = [
            np.concatenate(
                [qk.reshape(16, -1), kk.reshape(16, -1), vk.reshape(16, -1)],
                1,
            ),
            np.concatenate([qb.ravel(), kb.ravel(), vb.ravel()]),
            ok.reshape(16, 16),
            ob,
        ]
        for got, want in zip(g_ours, mapped):
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    _, s_ours = ours(x, y, use_causal_mask=True, return_attention_scores=True)
    _, s_theirs = theirs(
        x, y, use_causal_mask=True, return_attention_scores=True
    )
    np.testing.assert_allclose(_np(s_ours), _np(s_theirs), atol=2e-6)


def test_gqa_matches_keras_group_query_attention():
    rng = np.random.default_rng(10)
    x = _rand(rng, 2, 5, 12)
    theirs = keras.layers.GroupQueryAttention(3, 6, 2)
    theirs(x, x)
    ours = MultiHeadAttention(6, 3, num_key_value_heads=2)
    ours(x, x)
    _copy_from_keras(ours, theirs, 12)
    np.testing.assert_allclose(
        _np(ours(x, x, use_causal_mask=True)),
        _np(theirs(x, x, use_causal_mask=True)),
        atol=2e-5,
    )
    assert ours.qkv_kernel.shape == (12, 6 * 3 + 2 * 2 * 3)


def test_dense_attention_custom_gradient_matches_autodiff_with_dropout():
    from tests.testing import compute_gradients

    rng = np.random.default_rng(11)
    q, kt, v = (
        _rand(rng, 2, 2, 6, 4),
        _rand(rng, 2, 2, 4, 5),
        _rand(rng, 2, 2, 5, 3),
    )
    mask = rng.random((2, 1, 1, 3, 5)) > 0.3  # groups=2, T=3
    keep = (rng.random((2, 2, 6, 5)) > 0.25).astype("float32") / 0.75
    probe = _rand(rng, 2, 2, 6, 3)
    probe_w = _rand(rng, 2, 2, 6, 5)

    def custom(q, kt, v):
        out, w = dense_attention(
            q, kt, v, mask=mask, keep=keep, groups=2, return_weights=True
        )
        return ops.sum(out * probe) + ops.sum(w * probe_w)

    def plain(q, kt, v):
        logits = ops.reshape(ops.matmul(q, kt), (2, 2, 2, 3, 5))
        w = ops.reshape(masked_softmax(logits, mask), (2, 2, 6, 5))
        out = ops.matmul(w * keep, v)
        return ops.sum(out * probe) + ops.sum(w * probe_w)

    for got, want in zip(
        compute_gradients(custom, [q, kt, v]),
        compute_gradients(plain, [q, kt, v]),
    ):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


# === Flash attention ===


def test_flash_attention_true_gives_the_standard_outputs():
    x = _rand(np.random.default_rng(17), 2, 5, 8)
    plain = MultiHeadAttention(2, 4, flash_attention=False)
    flash = MultiHeadAttention(2, 4, flash_attention=True)
    plain(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback warns on TF/CPU
        flash(x, x)
        flash.set_weights(plain.get_weights())
        got = _np(flash(x, x, use_causal_mask=True))
        # Scores and dropout need the explicit path; no error either way.
        _, scores = flash(x, x, return_attention_scores=True)
    np.testing.assert_allclose(
        got, _np(plain(x, x, use_causal_mask=True)), atol=1e-5
    )
    assert tuple(scores.shape) == (2, 2, 5, 5)


@pytest.mark.tf_only
def test_flash_attention_falls_back_on_tensorflow_with_one_warning():
    x = _rand(np.random.default_rng(18), 2, 5, 8)
    layer = MultiHeadAttention(2, 4, flash_attention=True)
    with pytest.warns(UserWarning, match="flash attention requested"):
        layer(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x, x)  # warned once only
    # keras.layers.MultiHeadAttention raises here instead.
    with pytest.raises(ValueError, match="not supported"):
        keras.layers.MultiHeadAttention(2, 4, flash_attention=True)(x, x)


def test_flash_attention_is_passed_to_a_backend_that_has_it(monkeypatch):
    x = _rand(np.random.default_rng(19), 2, 5, 8)
    vmask = np.array([[True] * 5, [True, True, False, False, False]])
    layer = MultiHeadAttention(2, 4, flash_attention=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback warns on TF/CPU
        expected = _np(layer(x, x, value_mask=vmask, use_causal_mask=True))
    calls = []
    real = ops.dot_product_attention

    def fake(query, key, value, flash_attention=None, **kwargs):
        calls.append((flash_attention, kwargs))
        return real(query, key, value, flash_attention=False, **kwargs)

    monkeypatch.setattr(kernels_module.keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(kernels_module.ops, "dot_product_attention", fake)
    got = _np(layer(x, x, value_mask=vmask, use_causal_mask=True))
    assert calls and calls[0][0] is True
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Causal-only calls use the backend's causal kernel (no mask tensor).
    layer(x, x, use_causal_mask=True)
    assert calls[-1][1]["is_causal"] and calls[-1][1]["mask"] is None


# === Chunked path selection ===


def test_auto_uses_chunked_path_past_the_threshold(monkeypatch):
    x = _rand(np.random.default_rng(20), 2, 8, 8)
    calls = []
    real = kernels_module.blockwise_attention

    def spy(*args, **kwargs):
        calls.append(kwargs["query_chunk_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels_module, "blockwise_attention", spy)
    layer = MultiHeadAttention(2, 4, chunk_threshold=8, query_chunk_size=3)
    standard = MultiHeadAttention(2, 4, attention_impl="standard")
    out = layer(x, x, use_causal_mask=True)
    standard(x, x)
    standard.set_weights(layer.get_weights())
    assert calls == [3]
    layer(x[:, :7], x[:, :7])  # 7 * 7 < 8 ** 2: standard path
    assert calls == [3]
    # Scores and dropout force the standard path.
    layer(x, x, return_attention_scores=True)
    assert calls == [3]
    np.testing.assert_allclose(
        _np(out), _np(standard(x, x, use_causal_mask=True)), atol=1e-5
    )


def test_unknown_lengths_choose_the_path_at_run_time():
    rng = np.random.default_rng(21)
    inp = keras.Input((None, 8))
    layer = MultiHeadAttention(2, 4, chunk_threshold=4, key_chunk_size=2)
    model = keras.Model(inp, layer(inp, inp, use_causal_mask=True))
    ref = MultiHeadAttention(2, 4, attention_impl="standard")
    for length in (3, 6):
        x = _rand(rng, 2, length, 8)
        ref(x, x)
        ref.set_weights(layer.get_weights())
        np.testing.assert_allclose(
            _np(model.predict(x, verbose=0)),
            _np(ref(x, x, use_causal_mask=True)),
            atol=1e-5,
        )


# === Properties ===


@SETTINGS
@given(
    st.sampled_from([(3, 4, 2), (5, 2, 3), (1, 3, 1)]),
    st.sampled_from(["standard", "chunked"]),
    st.integers(0, 2**31 - 1),
)
def test_property_padding_and_distribution(lengths, impl, seed):
    tq, tk, extra = lengths
    rng = np.random.default_rng(seed)
    x, y = _rand(rng, 2, tq, 8), _rand(rng, 2, tk + extra, 8)
    vmask = np.zeros((2, tk + extra), bool)
    vmask[:, :tk] = rng.random((2, tk)) > 0.3
    layer = MultiHeadAttention(
        2, 4, attention_impl=impl, query_chunk_size=2, key_chunk_size=3
    )
    out = _np(layer(x, y, value_mask=vmask))
    # Padding invariance: appended masked keys change nothing.
    short = _np(layer(x, y[:, :tk], value_mask=vmask[:, :tk]))
    np.testing.assert_allclose(out, short, atol=1e-5)
    # Weights: a distribution over the unmasked keys; none -> zeros.
    _, w = layer(x, y, value_mask=vmask, return_attention_scores=True)
    w = _np(w)
    assert np.all(w[np.broadcast_to(~vmask[:, None, None], w.shape)] == 0)
    has_key = vmask.any(-1)
    np.testing.assert_allclose(w[has_key].sum(-1), 1.0, atol=1e-5)
    assert np.all(w[~has_key] == 0) and np.all(out[~has_key] == 0)
    assert np.all(np.isfinite(out))


@SETTINGS
@given(
    st.sampled_from([4, 6]),
    st.sampled_from(["standard", "chunked", "dropout", "scores", "cache"]),
    st.integers(0, 2**31 - 1),
)
def test_property_causal_masking_holds_in_every_path(t, path, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, 2, t, 8)
    cut = int(rng.integers(1, t))
    x2 = x.copy()
    x2[:, cut:] = _rand(rng, 2, t - cut, 8) * 10  # change the future only
    kwargs = dict(
        attention_impl="chunked" if path == "chunked" else "auto",
        query_chunk_size=2,
        key_chunk_size=2,
    )
    if path == "dropout":
        kwargs.update(dropout=0.5, seed=seed % 1000)

    def run(inputs):
        layer = MultiHeadAttention(
            2,
            4,
            kernel_initializer=(keras.initializers.GlorotUniform(seed=1)),
            **kwargs,
        )
        if path == "cache":
            cache = layer.initialize_cache(2, t)
            outs = []
            for i in range(t):
                tok = inputs[:, i : i + 1]
                o, cache = layer(
                    tok,
                    tok,
                    cache=cache,
                    cache_update_index=i,
                    use_causal_mask=True,
                )
                outs.append(_np(o))
            return np.concatenate(outs, 1), None
        result = layer(
            inputs,
            inputs,
            use_causal_mask=True,
            training=path == "dropout",
            return_attention_scores=path == "scores",
        )
        if path == "scores":
            return _np(result[0]), _np(result[1])
        return _np(result), None

    a, w = run(x)
    b, _ = run(x2)
    np.testing.assert_allclose(a[:, :cut], b[:, :cut], atol=1e-5)
    if w is not None:
        assert np.all(w[..., ~_causal(t, t)] == 0.0)


@SETTINGS
@given(
    st.sampled_from([(3, 4), (5, 2)]),
    st.integers(0, 2**31 - 1),
)
def test_property_all_masked_queries_get_zero_weights_and_output(lengths, seed):
    tq, tk = lengths
    rng = np.random.default_rng(seed)
    x, y = _rand(rng, 2, tq, 8), _rand(rng, 2, tk, 8)
    qmask = rng.random((2, tq)) > 0.5
    layer = MultiHeadAttention(2, 4, bias_initializer="ones")
    for impl in ("standard", "chunked"):
        layer.attention_impl = impl
        out = _np(layer(x, y, query_mask=qmask))
        assert np.all(out[~qmask] == 0.0) and np.all(np.isfinite(out))
    _, w = layer(x, y, query_mask=qmask, return_attention_scores=True)
    assert np.all(_np(w).transpose(0, 2, 1, 3)[~qmask] == 0.0)


def test_keras_masks_are_used_and_propagated():
    tokens = np.array([[3, 4, 0, 0], [5, 6, 7, 0]])
    inp = keras.Input((4,), dtype="int32")
    emb = keras.layers.Embedding(10, 8, mask_zero=True)
    layer = MultiHeadAttention(2, 4)
    h = emb(inp)
    out = layer(h, h)
    # The query's mask travels on: the masked average skips padding.
    pooled = keras.layers.GlobalAveragePooling1D()(out)
    model = keras.Model(inp, [out, pooled])
    got, got_pooled = (_np(t) for t in model(tokens))
    e = emb(tokens)
    ref = _np(layer(e, e, query_mask=tokens > 0, value_mask=tokens > 0))
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.all(got[tokens == 0] == 0.0)
    valid = (tokens > 0)[..., None]
    np.testing.assert_allclose(
        got_pooled, (ref * valid).sum(1) / valid.sum(1), atol=1e-5
    )


def test_mixed_precision_keeps_softmax_in_float32():
    x = _rand(np.random.default_rng(22), 2, 5, 8) * 300.0  # huge logits
    layer = MultiHeadAttention(2, 4, dtype="mixed_float16")
    out, w = layer(x, x, return_attention_scores=True)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert np.all(np.isfinite(_np(out))) and np.all(np.isfinite(_np(w)))
    np.testing.assert_allclose(_np(w).sum(-1), 1.0, atol=2e-3)


# === Bad input ===


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_heads=0, key_dim=4), "num_heads=0"),
        (dict(num_heads=2, key_dim=0), "key_dim=0"),
        (dict(num_heads=2, key_dim=4, value_dim=-1), "value_dim=-1"),
        (
            dict(num_heads=6, key_dim=4, num_key_value_heads=4),
            "num_heads=6, num_key_value_heads=4",
        ),
        (
            dict(num_heads=2, key_dim=4, num_key_value_heads=0),
            "num_key_value_heads=0",
        ),
        (dict(num_heads=2, key_dim=4, dropout=1.5), "dropout=1.5"),
        (
            dict(num_heads=2, key_dim=4, attention_impl="fast"),
            "attention_impl='fast'",
        ),
        (
            dict(num_heads=2, key_dim=4, query_chunk_size=0),
            "query_chunk_size=0",
        ),
        (
            dict(num_heads=2, key_dim=4, key_chunk_size=2.5),
            "key_chunk_size=2.5",
        ),
        (dict(num_heads=2, key_dim=4, chunk_threshold=0), "chunk_threshold=0"),
        (
            dict(num_heads=2, key_dim=4, flash_attention="yes"),
            "flash_attention='yes'",
        ),
        (dict(num_heads=2, key_dim=4, output_shape=(0,)), "output_shape"),
        (dict(num_heads=2, key_dim=4, attention_axes="x"), "attention_axes"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_bad_shapes_raise_naming_both_shapes():
    rng = np.random.default_rng(23)
    x, y = _rand(rng, 2, 5, 8), _rand(rng, 2, 4, 8)
    layer = MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match=r"rank >= 3.*query.shape=\(2, 8\)"):
        layer(x[:, 0], y)
    with pytest.raises(ValueError, match="same rank"):
        layer(x, y[:, None])
    with pytest.raises(ValueError, match=r"same batch size.*\(3, 4, 8\)"):
        layer(x, _rand(rng, 3, 4, 8))
    with pytest.raises(ValueError, match="key.shape=\\(2, 3, 8\\)"):
        layer(x, y, key=_rand(rng, 2, 3, 8))
    layer(x, y)
    with pytest.raises(ValueError, match="built for query features 8"):
        layer(_rand(rng, 2, 5, 6), y)
    with pytest.raises(ValueError, match="attention_axes"):
        MultiHeadAttention(2, 4, attention_axes=(3,))(x, x)


@pytest.mark.parametrize("impl", ["standard", "chunked"])
def test_bad_masks_raise(impl):
    rng = np.random.default_rng(24)
    x, y = _rand(rng, 2, 5, 8), _rand(rng, 2, 4, 8)
    layer = MultiHeadAttention(2, 4, attention_impl=impl)
    with pytest.raises(ValueError, match=r"value_mask.*\(2, 5\)"):
        layer(x, y, value_mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"query_mask.*\(2, 4\)"):
        layer(x, y, query_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"attention_mask.*\(2, 4, 5\)"):
        layer(x, y, attention_mask=np.ones((2, 4, 5), bool))
    with pytest.raises(ValueError, match=r"query_mask.*\(2, 3\)"):
        MultiHeadAttention(2, 4)(
            x[:, :, None], x[:, :, None], query_mask=np.ones((2, 3), bool)
        )


def test_bad_cache_use_raises():
    x = _rand(np.random.default_rng(25), 2, 3, 8)
    layer = MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match=r"cache.shape=\(2, 2, 5, 3, 4\)"):
        layer(
            x,
            x,
            cache=np.zeros((2, 2, 5, 3, 4), "float32"),
            cache_update_index=0,
        )
    with pytest.raises(ValueError, match="cache_update_index=0"):
        layer(x, x, cache_update_index=0)
    with pytest.raises(ValueError, match="value_dim=3"):
        MultiHeadAttention(2, 4, value_dim=3).initialize_cache(2, 5)
    with pytest.raises(ValueError, match="3-D inputs"):
        layer(
            x[:, None],
            x[:, None],
            cache=layer.initialize_cache(2, 5),
            cache_update_index=0,
        )
    with pytest.raises(ValueError, match="unbuilt"):
        MultiHeadAttention(2, 4).compute_key_value_cache(x)


# === Override point ===


class TalkingHeadsAttention(MultiHeadAttention):
    """Talking-heads attention (Shazeer et al. 2020) through the hook only:
    the heads' logits and weights are mixed by fixed `[N, N]` matrices."""

    def __init__(self, *args, pre=None, post=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pre = np.asarray(pre, "float32")
        self.post = np.asarray(post, "float32")

    def _compute_attention(
        self,
        query,
        key,
        value,
        masks,
        training=None,
        return_attention_scores=False,
    ):
        logits = ops.einsum("btnh,bsnh->bnts", query, key)
        logits = ops.einsum("bnts,nm->bmts", logits, self.pre)
        mask = masks.merged(query, key)
        mask = None if mask is None else ops.expand_dims(mask, 1)
        weights = masked_softmax(logits, mask)
        mixed = ops.einsum("bnts,nm->bmts", weights, self.post)
        context = ops.einsum("bnts,bsnh->btnh", mixed, value)
        return context, (weights if return_attention_scores else None)


def test_subclass_changes_the_attention_through_the_hook_only():
    rng = np.random.default_rng(31)
    x = _rand(rng, 2, 5, 8)
    qmask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    base = MultiHeadAttention(2, 4)
    base_out = _np(base(x, x, query_mask=qmask, use_causal_mask=True))
    eye = np.eye(2)
    same = TalkingHeadsAttention(2, 4, pre=eye, post=eye)
    same(x, x)
    same.set_weights(base.get_weights())
    got = same(x, x, query_mask=qmask, use_causal_mask=True)
    np.testing.assert_allclose(_np(got), base_out, atol=1e-5)
    # The subclass's own mixing changes the output; the layer's masking of
    # fully masked queries (zero output) still applies.
    swap = TalkingHeadsAttention(2, 4, pre=eye, post=eye[::-1])
    swap(x, x)
    swap.set_weights(base.get_weights())
    out = _np(swap(x, x, query_mask=qmask, use_causal_mask=True))
    assert not np.allclose(out, base_out, atol=1e-3)
    np.testing.assert_array_equal(out[0, 3:], 0.0)
    _, w = reference_mha(base, x, x, mask=qmask[:, :, None] & _causal(5, 5))
    (wv, bv) = _projections(base)[0][2]
    wo, bo = _projections(base)[1]
    v = (x @ wv + bv).reshape(2, 5, 2, 4)
    ctx = np.einsum("bnts,bsnh->btnh", w[:, ::-1], v).reshape(2, 5, 8)
    want = (ctx @ wo + bo) * qmask[..., None]
    np.testing.assert_allclose(out, want, atol=1e-5)
