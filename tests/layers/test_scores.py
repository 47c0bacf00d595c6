"""Tests of the score layers and their registry (`layers.get_score`)."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import AdditiveScore
from layers import CosineScore
from layers import DotScore
from layers import GeneralScore
from layers import LocationScore
from layers import ScaledDotScore
from layers import get_score
from tests.layers.attention_checks import np_additive
from tests.layers.attention_checks import np_cosine
from tests.layers.attention_checks import np_dot
from tests.layers.attention_checks import randomize_weights
from tests.layers.attention_checks import to_numpy
from tests.testing import compute_gradients
from tests.testing import run_layer_test

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
KEY = RNG.normal(size=(2, 5, 4)).astype("float32")
KEY_6 = RNG.normal(size=(2, 5, 6)).astype("float32")

SCORE_CASES = [
    (DotScore, {}, KEY),
    (ScaledDotScore, {}, KEY),
    (GeneralScore, {}, KEY_6),
    (GeneralScore, {"kernel_regularizer": "l2"}, KEY_6),
    (AdditiveScore, {"units": 5}, KEY_6),
    (AdditiveScore, {"units": 5, "normalize": True}, KEY_6),
    (CosineScore, {}, KEY),
    (LocationScore, {"max_length": 7}, KEY_6),
]


CONTRACT_CASES = [SCORE_CASES[i] for i in (0, 1, 3, 5, 6, 7)]


@pytest.mark.parametrize(("cls", "kwargs", "key"), CONTRACT_CASES)
def test_layer_contract(cls, kwargs, key):
    run_layer_test(
        cls,
        kwargs,
        [QUERY, key],
        expected_output_shape=(2, 3, 5),
    )


# === Numeric tests against NumPy, from the layers' own weights ===


def test_dot_and_scaled_dot_match_numpy():
    want = np_dot(QUERY, KEY)
    np.testing.assert_allclose(to_numpy(DotScore()(QUERY, KEY)), want, 1e-5)
    np.testing.assert_allclose(
        to_numpy(ScaledDotScore()(QUERY, KEY)), want / 2.0, rtol=1e-5
    )


def test_general_matches_numpy():
    score = GeneralScore()
    score.build(QUERY.shape, KEY_6.shape)
    randomize_weights(score)
    w_a = to_numpy(score.kernel)  # [Dq, Dk]
    want = np.einsum("bqi,ij,bkj->bqk", QUERY, w_a, KEY_6)
    np.testing.assert_allclose(
        to_numpy(score(QUERY, KEY_6)), want, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_additive_matches_numpy(normalize):
    score = AdditiveScore(units=5, normalize=normalize)
    score.build(QUERY.shape, KEY_6.shape)
    randomize_weights(score)
    extra = {}
    if normalize:
        extra = {"g": to_numpy(score.g), "b": to_numpy(score.b)}
    want = np_additive(
        QUERY,
        KEY_6,
        to_numpy(score.query_dense.kernel),
        to_numpy(score.key_dense.kernel),
        to_numpy(score.v),
        **extra,
    )
    np.testing.assert_allclose(
        to_numpy(score(QUERY, KEY_6)), want, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_additive_gradients_match_the_plain_formulation(normalize):
    # The score runs as a matrix-vector product; outputs and every gradient
    # equal those of the plain `sum(tanh(W_q q + W_k k (+ b)) * v)`.
    score = AdditiveScore(units=5, normalize=normalize)
    score.build(QUERY.shape, KEY_6.shape)
    randomize_weights(score)
    names = [w.path.split("/")[-1] for w in score.trainable_variables]
    weights = [to_numpy(w) for w in score.trainable_variables]
    mix = RNG.normal(size=(2, 3, 5)).astype("float32")

    def layer(q, k, *ws):
        out, _ = score.stateless_call(list(ws), [], q, k)
        return out * mix

    def plain(q, k, *ws):
        w = dict(zip(names, ws))
        w_q, w_k = [x for n, x in zip(names, ws) if n == "kernel"]
        hidden = ops.expand_dims(ops.matmul(q, w_q), 2)
        hidden = hidden + ops.expand_dims(ops.matmul(k, w_k), 1)
        v = w["v"]
        if normalize:
            hidden = hidden + w["b"]
            v = w["g"] * v / ops.sqrt(ops.sum(ops.square(v)))
        return ops.sum(ops.tanh(hidden) * v, axis=-1) * mix

    arrays = [QUERY, KEY_6, *weights]
    np.testing.assert_allclose(
        to_numpy(layer(*arrays)), to_numpy(plain(*arrays)), 1e-5, 1e-5
    )
    got = compute_gradients(layer, arrays)
    want = compute_gradients(plain, arrays)
    assert len(got) == len(want) == len(arrays)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_general_projects_the_shorter_side_with_equal_gradients():
    # Tq < Tk: q^T W k as (q^T W) k, the same logits and gradients as
    # projecting the keys (`score_projected(q, project_key(k))`).
    score = GeneralScore()
    score.build(QUERY.shape, KEY_6.shape)
    randomize_weights(score)
    mix = RNG.normal(size=(2, 3, 5)).astype("float32")

    def query_side(q, k, kernel):
        out, _ = score.stateless_call([kernel], [], q, k)
        return out * mix

    def key_side(q, k, kernel):
        return (
            ops.matmul(
                q, ops.swapaxes(ops.matmul(k, ops.transpose(kernel)), 1, 2)
            )
            * mix
        )

    arrays = [QUERY, KEY_6, to_numpy(score.kernel)]
    np.testing.assert_allclose(
        to_numpy(query_side(*arrays)), to_numpy(key_side(*arrays)), 1e-5, 1e-5
    )
    for g, w in zip(
        compute_gradients(query_side, arrays),
        compute_gradients(key_side, arrays),
    ):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_weight_normalised_additive_is_invariant_to_the_norm_of_v():
    score = AdditiveScore(units=5, normalize=True)
    before = to_numpy(score(QUERY, KEY_6))
    score.v.assign(score.v * 7.0)
    np.testing.assert_allclose(to_numpy(score(QUERY, KEY_6)), before, 1e-5)
    assert to_numpy(score.g) == pytest.approx(np.sqrt(1 / 5))


def test_cosine_matches_numpy_and_handles_zero_vectors():
    np.testing.assert_allclose(
        to_numpy(CosineScore()(QUERY, KEY)), np_cosine(QUERY, KEY), atol=1e-6
    )
    zero_query = np.zeros_like(QUERY)
    out = to_numpy(CosineScore()(zero_query, KEY))
    assert np.all(out == 0.0)


def test_location_uses_the_query_only():
    score = LocationScore(max_length=7)
    out = to_numpy(score(QUERY, KEY_6))
    want = (QUERY @ to_numpy(score.kernel))[:, :, :5]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    # The keys' content is ignored, only their number matters.
    other = to_numpy(score(QUERY, np.zeros((2, 3, 6), "float32")))
    np.testing.assert_allclose(other, want[:, :, :3], rtol=1e-5, atol=1e-6)


def test_project_key_then_score_projected_equals_call():
    for cls, kwargs, key in SCORE_CASES:
        score = cls(**kwargs)
        want = to_numpy(score(QUERY, key))
        got = score.score_projected(QUERY, score.project_key(key))
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-6, atol=1e-6)


def test_logits_are_float32_under_mixed_precision():
    for cls, kwargs, key in SCORE_CASES:
        score = cls(**kwargs, dtype="mixed_float16")
        out = score(QUERY * 100, key * 100)
        assert keras.backend.standardize_dtype(out.dtype) == "float32", cls
        assert np.all(np.isfinite(to_numpy(out)))
        sym = score(keras.Input((3, 4)), keras.Input((5, key.shape[-1])))
        assert sym.dtype == "float32" and sym.shape == (None, 3, 5)


def test_score_keeps_the_query_mask_of_keras_inputs():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    logits = DotScore()(x, x)
    assert logits.shape == (None, None, None)
    model = keras.Model(tokens, logits)
    assert model(np.array([[1, 2, 0]])).shape == (1, 3, 3)


# === Registry ===


def test_get_score_returns_the_class():
    names = {
        "dot": DotScore,
        "scaled_dot": ScaledDotScore,
        "general": GeneralScore,
        "additive": AdditiveScore,
        "concat": AdditiveScore,
        "cosine": CosineScore,
        "location": LocationScore,
    }
    for name, cls in names.items():
        assert get_score(name) is cls


def test_get_score_accepts_classes_instances_and_configs():
    score = GeneralScore()
    assert get_score(score) is score
    assert get_score(CosineScore) is CosineScore
    revived = get_score(keras.saving.serialize_keras_object(score))
    assert type(revived) is GeneralScore and revived is not score
    short = get_score({"class_name": "concat", "config": {"units": 3}})
    assert type(short) is AdditiveScore and short.units == 3


def test_get_score_rejects_unknown_names_with_close_matches():
    with pytest.raises(ValueError, match=r"score='dott'.*") as info:
        get_score("dott")
    assert "Did you mean: dot" in str(info.value)
    assert "scaled_dot" in str(info.value)  # lists the valid names
    with pytest.raises(ValueError, match="Received: score=3"):
        get_score(3)
    with pytest.raises(ValueError, match="not describe a `Score`"):
        get_score(keras.saving.serialize_keras_object(keras.layers.Dense(2)))


# === Bad input ===


@pytest.mark.parametrize("cls", [DotScore, ScaledDotScore, CosineScore])
def test_equal_depth_scores_reject_different_depths(cls):
    with pytest.raises(
        ValueError,
        match=r"same depth.*query.shape=\(2, 3, 4\) and key.shape=\(2, 5, 6\)",
    ):
        cls()(QUERY, KEY_6)


def test_scores_reject_wrong_ranks_and_batches():
    for cls, kwargs, key in SCORE_CASES:
        with pytest.raises(ValueError, match=r"`query` must have rank 3.*"):
            cls(**kwargs)(QUERY[0], key)
        with pytest.raises(ValueError, match=r"`key` must have rank 3.*"):
            cls(**kwargs)(QUERY, key[0])
        with pytest.raises(
            ValueError, match=r"same batch size.*query.shape=\(2, 3, 4\)"
        ):
            cls(**kwargs)(QUERY, key[:1])


def test_built_scores_reject_other_depths():
    score = GeneralScore()
    score(QUERY, KEY_6)
    with pytest.raises(ValueError, match=r"built for key depth 6.*"):
        score(QUERY, KEY)


def test_additive_rejects_bad_units():
    for units in (0, -1, 2.5, None, True):
        with pytest.raises(ValueError, match=f"Received: units={units!r}"):
            AdditiveScore(units=units)


def test_additive_rejects_bad_normalize():
    with pytest.raises(ValueError, match="Received: normalize='yes'"):
        AdditiveScore(units=2, normalize="yes")


def test_location_rejects_bad_max_length_and_too_many_keys():
    with pytest.raises(ValueError, match="Received: max_length=0"):
        LocationScore(max_length=0)
    score = LocationScore(max_length=4)
    with pytest.raises(ValueError, match=r"max_length=4.*5 keys"):
        score(QUERY, KEY)
    with pytest.raises(ValueError, match=r"max_length=4.*5 keys"):
        score(keras.Input((3, 4)), keras.Input((5, 4)))
