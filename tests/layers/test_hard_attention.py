"""Tests of `layers.HardAttention` (top-k, REINFORCE sampling, Gumbel)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops

from layers import HardAttention
from tests.testing import layer_gradients
from tests.testing import property_settings
from tests.testing import run_layer_test


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _rand(rng, *shape):
    return rng.normal(size=shape).astype("float32")


def reference_logits(layer, query, key):
    """NumPy scores from the layer's own weights, `[B, Tq, Tk]`."""
    if layer.score == "dot":
        return np.einsum("bqd,bkd->bqk", query, key)
    w = {v.name: _np(v) for v in layer.weights}
    q, k = query @ w["query_kernel"], key @ w["key_kernel"]
    if layer.score == "scaled_dot":
        return np.einsum("bqu,bku->bqk", q, k) / np.sqrt(q.shape[-1])
    hidden = np.tanh(q[:, :, None] + k[:, None] + w["score_bias"])
    return (hidden @ w["score_vector"])[..., 0]


def _log_softmax(x, mask):
    x = np.where(mask, x, -np.inf)
    top = x.max(-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


def test_layer_contract_gumbel_top2_with_mask():
    rng = np.random.default_rng(0)
    run_layer_test(
        HardAttention,
        dict(units=4, mode="gumbel", k=2, temperature=0.5, seed=1),
        [_rand(rng, 2, 6, 8), _rand(rng, 2, 5, 12)],
        (2, 6, 12),
        tensor_kwargs={"value_mask": rng.random((2, 5)) > 0.3},
    )


def test_layer_contract_reinforce_trains_the_scorer_via_log_probs():
    rng = np.random.default_rng(1)
    run_layer_test(
        HardAttention,
        dict(units=4, mode="reinforce", score="additive", seed=3),
        [_rand(rng, 2, 6, 8), _rand(rng, 2, 5, 12)],
        [(2, 6, 12), (2, 6, 5), (2, 6)],
        tensor_kwargs={"value_mask": rng.random((2, 5)) > 0.3},
        call_kwargs={"return_attention_scores": True, "return_log_probs": True},
        train_output_index=2,
    )


def test_layer_contract_single_query_dot_score():
    rng = np.random.default_rng(2)
    x = _rand(rng, 2, 6, 8)
    run_layer_test(
        HardAttention,
        dict(score="dot", mode="straight_through"),
        [x[:, 0], x],
        [(2, 8), (2, 6)],
        call_kwargs={"return_attention_scores": True},
        run_training_step=False,  # the dot score has no weights
    )


@pytest.mark.parametrize("score", ["scaled_dot", "additive", "dot"])
def test_inference_selects_the_top_key_exactly(score):
    rng = np.random.default_rng(3)
    q, v = _rand(rng, 2, 4, 6), _rand(rng, 2, 7, 6)
    vmask = rng.random((2, 7)) > 0.3
    vmask[:, 0] = True
    layer = HardAttention(units=5, score=score)
    context, w = layer(q, v, value_mask=vmask, return_attention_scores=True)
    logits = np.where(vmask[:, None], reference_logits(layer, q, v), -np.inf)
    best = logits.argmax(-1)
    expected_w = np.eye(7)[best]
    np.testing.assert_array_equal(_np(w), expected_w)  # exactly one-hot
    np.testing.assert_allclose(
        _np(context), np.einsum("bqk,bkd->bqd", expected_w, v), atol=1e-6
    )


def test_inference_top_k_selects_k_keys_and_averages():
    rng = np.random.default_rng(4)
    q, v = _rand(rng, 2, 3, 6), _rand(rng, 2, 6, 4)
    layer = HardAttention(units=5, k=3)
    context, w, lp = layer(
        q, v, return_attention_scores=True, return_log_probs=True
    )
    logits = reference_logits(layer, q, v)
    top3 = np.argsort(-logits, -1)[..., :3]
    expected = np.zeros_like(logits)
    np.put_along_axis(expected, top3, 1.0 / 3.0, -1)
    np.testing.assert_allclose(_np(w), expected, atol=1e-7)
    assert set(np.unique(_np(w)).round(6)) <= {0.0, round(1 / 3, 6)}
    np.testing.assert_allclose(
        _np(context), np.einsum("bqk,bkd->bqd", expected, v), atol=1e-6
    )
    # Plackett-Luce log-probability of drawing them in that order.
    ref = np.zeros(logits.shape[:2])
    remaining = np.ones_like(logits, bool)
    for i in range(3):
        idx = top3[..., i : i + 1]
        ls = _log_softmax(logits, remaining)
        ref += np.take_along_axis(ls, idx, -1)[..., 0]
        np.put_along_axis(remaining, idx, False, -1)
    np.testing.assert_allclose(_np(lp), ref, atol=1e-5)


def test_sampling_follows_the_softmax_distribution():
    rng = np.random.default_rng(5)
    q = np.repeat(_rand(rng, 1, 1, 4), 4000, axis=0)
    v = np.repeat(_rand(rng, 1, 4, 4), 4000, axis=0)
    vmask = np.array([True, True, False, True])
    layer = HardAttention(units=3, seed=7)
    _, w, lp = layer(
        q,
        v,
        value_mask=np.tile(vmask, (4000, 1)),
        training=True,
        return_attention_scores=True,
        return_log_probs=True,
    )
    w = _np(w)[:, 0]
    assert np.all(w.sum(-1) == 1.0) and np.all(w[:, 2] == 0.0)
    logits = reference_logits(layer, q[:1], v[:1])[0, 0]
    probs = np.exp(_log_softmax(logits, vmask))
    np.testing.assert_allclose(w.mean(0), probs, atol=0.03)
    # log_probs are those of the sampled key.
    picked = w.argmax(-1)
    np.testing.assert_allclose(_np(lp)[:, 0], np.log(probs[picked]), atol=1e-5)


def test_same_seed_same_samples():
    rng = np.random.default_rng(6)
    q, v = _rand(rng, 3, 4, 5), _rand(rng, 3, 6, 5)
    a = HardAttention(score="dot", seed=11)
    b = HardAttention(score="dot", seed=11)
    wa = _np(a(q, v, training=True, return_attention_scores=True)[1])
    wb = _np(b(q, v, training=True, return_attention_scores=True)[1])
    np.testing.assert_array_equal(wa, wb)


def test_reinforce_gradients_reach_the_scorer_only_through_log_probs():
    rng = np.random.default_rng(7)
    q, v = _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4)
    layer = HardAttention(units=3, mode="sample", seed=1)
    layer(q, v)
    grads = layer_gradients(layer, lambda: layer(q, v, training=True))
    assert all(np.all(g == 0.0) for g in grads)  # no path via the context
    grads = layer_gradients(
        layer,
        lambda: layer(q, v, training=True, return_log_probs=True)[1],
    )
    assert all(np.any(g != 0.0) for g in grads)


def test_gumbel_is_exactly_hard_forward_and_differentiable():
    rng = np.random.default_rng(8)
    q, v = _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4)
    layer = HardAttention(units=3, mode="gumbel", temperature=0.7, seed=2)
    context, w = layer(q, v, training=True, return_attention_scores=True)
    w = _np(w)
    assert set(np.unique(w)) <= {0.0, 1.0} and np.all(w.sum(-1) == 1.0)
    np.testing.assert_allclose(
        _np(context), np.einsum("bqk,bkd->bqd", w, v), atol=1e-6
    )
    probe = _rand(rng, 2, 3, 4)
    grads = layer_gradients(layer, lambda: layer(q, v, training=True) * probe)
    assert all(np.any(g != 0.0) for g in grads)


@property_settings(20)
@given(
    st.sampled_from([(3, 5, 1), (4, 4, 2), (2, 6, 3)]),
    st.sampled_from(["sample", "gumbel"]),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_property_masked_keys_are_never_selected(sizes, mode, train, seed):
    tq, tk, k = sizes
    rng = np.random.default_rng(seed)
    q, v = _rand(rng, 2, tq, 4), _rand(rng, 2, tk, 4) * 10
    vmask = rng.random((2, tk)) > 0.4
    qmask = rng.random((2, tq)) > 0.2
    layer = HardAttention(units=3, mode=mode, k=k, seed=seed % 1000)
    context, w, lp = layer(
        q,
        v,
        query_mask=qmask,
        value_mask=vmask,
        use_causal_mask=True,
        training=train,
        return_attention_scores=True,
        return_log_probs=True,
    )
    context, w, lp = _np(context), _np(w), _np(lp)
    allowed = (
        vmask[:, None, :]
        & qmask[:, :, None]
        & (np.arange(tq)[:, None] >= np.arange(tk)[None, :])[None]
    )
    assert np.all(w[~allowed] == 0.0)
    counts = np.minimum(allowed.sum(-1), k)
    np.testing.assert_array_equal((w > 0).sum(-1), counts)
    has = counts > 0
    np.testing.assert_allclose(w[has].sum(-1), 1.0, atol=1e-6)
    # All-masked rows: zero weights, zero context, log-probability 0.
    assert np.all(w[~has] == 0) and np.all(context[~has] == 0)
    assert np.all(lp[~has] == 0) and np.all(np.isfinite(lp))
    assert np.all(lp[has] <= 1e-6)


def test_k_larger_than_the_number_of_keys_selects_all_valid_keys():
    rng = np.random.default_rng(9)
    q, v = _rand(rng, 1, 2, 4), _rand(rng, 1, 3, 4)
    _, w = HardAttention(score="dot", k=5)(q, v, return_attention_scores=True)
    np.testing.assert_allclose(_np(w), np.full((1, 2, 3), 1 / 3), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="soft"), "mode='soft'"),
        (dict(score="cosine"), "score='cosine'"),
        (dict(k=0), "k=0"),
        (dict(k=1.0), "k=1.0"),
        (dict(temperature=0.0), "temperature=0.0"),
        (dict(units=-3), "units=-3"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HardAttention(**kwargs)


def test_bad_shapes_raise_naming_both_shapes():
    rng = np.random.default_rng(10)
    q, v = _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4)
    with pytest.raises(ValueError, match=r"query.shape=\(2, 3, 1, 4\)"):
        HardAttention()(q[:, :, None], v)
    with pytest.raises(ValueError, match=r"value.shape=\(2, 5\)"):
        HardAttention()(q, v[..., 0])
    with pytest.raises(ValueError, match=r"batch size.*\(3, 5, 4\)"):
        HardAttention()(q, _rand(rng, 3, 5, 4))
    with pytest.raises(ValueError, match=r"same length.*\(2, 4, 4\)"):
        HardAttention()(q, v, key=_rand(rng, 2, 4, 4))
    with pytest.raises(ValueError, match=r"same feature size.*\(2, 5, 6\)"):
        HardAttention(score="dot")(q, _rand(rng, 2, 5, 6))
    with pytest.raises(ValueError, match=r"value_mask.*\(2, 4\)"):
        HardAttention()(q, v, value_mask=np.ones((2, 4), bool))
    layer = HardAttention()
    layer(q, v)
    with pytest.raises(ValueError, match=r"query_mask.*\(2, 2\)"):
        layer(q, v, query_mask=np.ones((2, 2), bool))


def test_inside_a_functional_model_with_keras_masks():
    tokens = np.array([[3, 1, 0], [2, 0, 0]])
    inp = keras.Input((3,), dtype="int32")
    state = keras.Input((6,))
    h = keras.layers.Embedding(5, 6, mask_zero=True)(inp)
    context, w = HardAttention(units=4)(state, h, return_attention_scores=True)
    model = keras.Model([state, inp], [context, w])
    _, got_w = model([np.ones((2, 6), "float32"), tokens])
    got_w = _np(got_w)
    assert np.all(got_w[tokens == 0] == 0.0)
    np.testing.assert_array_equal(got_w.sum(-1), 1.0)


@pytest.mark.parametrize("training", [False, True])
def test_return_probabilities_is_the_masked_softmax(training):
    rng = np.random.default_rng(11)
    q, v = _rand(rng, 2, 3, 6), _rand(rng, 2, 5, 4)
    vmask = np.array([[1, 1, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    layer = HardAttention(units=5, score="additive", seed=2)
    context, w, lp, p = layer(
        q,
        v,
        value_mask=vmask,
        return_attention_scores=True,
        return_log_probs=True,
        return_probabilities=True,
        training=training,
    )
    logits = reference_logits(layer, q, v)
    expected = np.exp(_log_softmax(logits[:1], vmask[:1, None]))
    np.testing.assert_allclose(_np(p)[:1], expected, atol=1e-6)
    assert np.all(_np(p)[1] == 0.0)  # no valid key: zero, never NaN
    # The selection's log-probability is log p of the selected key.
    picked = (_np(w)[:1] * np.log(np.maximum(expected, 1e-30))).sum(-1)
    np.testing.assert_allclose(_np(lp)[:1], picked, atol=1e-5)
    # Single query: no Tq axis; symbolic shapes agree.
    _, p1 = layer(q[:, 0], v, return_probabilities=True)
    assert tuple(p1.shape) == (2, 5)
    spec = layer.compute_output_spec(
        keras.KerasTensor((2, 3, 6)),
        keras.KerasTensor((2, 5, 4)),
        return_probabilities=True,
    )
    assert tuple(spec[1].shape) == (2, 3, 5)
