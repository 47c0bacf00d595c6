"""Tests of the generic `Attention` layer (score, normalise, weighted sum)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import Attention
from layers import GeneralScore
from tests.layers.attention_checks import NP_NORMALIZERS
from tests.layers.attention_checks import attention_inputs
from tests.layers.attention_checks import check_causal
from tests.layers.attention_checks import check_distribution
from tests.layers.attention_checks import check_fully_masked_queries
from tests.layers.attention_checks import check_padding_invariance
from tests.layers.attention_checks import check_training_with_fully_masked_rows
from tests.layers.attention_checks import np_additive
from tests.layers.attention_checks import np_cosine
from tests.layers.attention_checks import np_dot
from tests.layers.attention_checks import randomize_weights
from tests.layers.attention_checks import to_numpy
from tests.testing import property_settings
from tests.testing import run_layer_test

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
KEY = RNG.normal(size=(2, 5, 4)).astype("float32")
VALUE = RNG.normal(size=(2, 5, 6)).astype("float32")
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)

SCORES = {
    "dot": {},
    "scaled_dot": {},
    "general": {},
    "additive": {"units": 3},
    "concat": {"units": 3},
    "cosine": {},
    "location": {"max_length": 8},
}


# === Layer contract (shared helper) ===


@pytest.mark.parametrize(
    ("score", "normalize"), [("general", "softmax"), ("cosine", "sparsemax")]
)
def test_layer_contract_with_masks_dropout_and_causal_mask(score, normalize):
    run_layer_test(
        Attention,
        {
            "score": score,
            "probability_fn": normalize,
            "dropout": 0.2,
            "seed": 3,
        },
        [QUERY, VALUE, KEY],
        expected_output_shape=[(2, 3, 6), (2, 3, 5)],
        tensor_kwargs={
            "query_mask": np.array([[1, 1, 0], [1, 1, 1]], bool),
            "value_mask": VALUE_MASK,
            "attention_mask": np.ones((2, 3, 5), bool),
        },
        call_kwargs={"return_attention_scores": True, "use_causal_mask": True},
    )


@pytest.mark.parametrize(
    ("score", "score_kwargs"),
    [("additive", {"units": 3}), ("location", {"max_length": 6})],
)
def test_layer_contract_with_one_decoder_state_as_query(score, score_kwargs):
    run_layer_test(
        Attention,
        {"score": score, "score_kwargs": score_kwargs},
        [QUERY[:, 0], VALUE],
        expected_output_shape=[(2, 6), (2, 5)],
        tensor_kwargs={"value_mask": VALUE_MASK},
        call_kwargs={"return_attention_scores": True},
    )


def test_layer_contract_with_a_serialised_score():
    score = keras.saving.serialize_keras_object(GeneralScore(name="bilinear"))
    run_layer_test(
        Attention, {"score": score}, [QUERY, VALUE], expected_output_shape=None
    )


def test_score_instance_round_trips_through_config_and_saving(tmp_path):
    layer = Attention(score=GeneralScore(kernel_initializer="ones"))
    query, value = keras.Input((3, 4)), keras.Input((5, 6))
    model = keras.Model([query, value], layer(query, value))
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    revived = reloaded.layers[-1]
    assert type(revived.score_layer) is GeneralScore
    np.testing.assert_allclose(
        to_numpy(reloaded([QUERY, VALUE])),
        to_numpy(model([QUERY, VALUE])),
        atol=1e-6,
    )
    config = layer.get_config()
    assert config["score"]["registered_name"] == "attention_zoo>GeneralScore"
    assert type(Attention.from_config(config).score_layer) is GeneralScore


# === Numeric tests against NumPy ===


def _np_scores(layer, score, query, key):
    sl = layer.score_layer
    if score == "dot":
        return np_dot(query, key)
    if score == "scaled_dot":
        return np_dot(query, key) / np.sqrt(key.shape[-1])
    if score == "general":
        return np.einsum("bqi,ij,bkj->bqk", query, to_numpy(sl.kernel), key)
    if score in ("additive", "concat"):
        return np_additive(
            query,
            key,
            to_numpy(sl.query_dense.kernel),
            to_numpy(sl.key_dense.kernel),
            to_numpy(sl.v),
        )
    if score == "cosine":
        return np_cosine(query, key)
    if score == "location":
        return (query @ to_numpy(sl.kernel))[:, :, : key.shape[1]]
    raise AssertionError(score)


@pytest.mark.parametrize("score", sorted(SCORES))
def test_matches_numpy(score):
    for normalize in ("softmax", "sparsemax", "sigmoid"):
        layer = Attention(
            score=score,
            probability_fn=normalize,
            score_kwargs=SCORES[score] or None,
        )
        layer.build(QUERY.shape, VALUE.shape, KEY.shape)
        randomize_weights(layer)
        mask = VALUE_MASK[:, None, :] & np.tril(np.ones((3, 5), bool))
        context, weights = layer(
            QUERY,
            VALUE,
            key=KEY,
            value_mask=VALUE_MASK,
            use_causal_mask=True,
            return_attention_scores=True,
        )
        logits = _np_scores(layer, score, QUERY, KEY)
        want = NP_NORMALIZERS[normalize](logits, mask)
        np.testing.assert_allclose(to_numpy(weights), want, atol=1e-5)
        np.testing.assert_allclose(to_numpy(context), want @ VALUE, atol=1e-5)


def test_sparsemax_gives_exact_zeros_and_sums_to_one():
    layer = Attention(score="dot", probability_fn="sparsemax")
    _, weights = layer(QUERY * 3, VALUE, key=KEY, return_attention_scores=True)
    weights = to_numpy(weights)
    assert np.sum(weights == 0.0) > 0
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_two_dimensional_query_equals_a_length_one_sequence():
    layer = Attention(score="additive", score_kwargs={"units": 3})
    context, weights = layer(
        QUERY[:, 0],
        VALUE,
        key=KEY,
        value_mask=VALUE_MASK,
        attention_mask=VALUE_MASK,
        return_attention_scores=True,
    )
    context3, weights3 = layer(
        QUERY[:, :1],
        VALUE,
        key=KEY,
        value_mask=VALUE_MASK,
        return_attention_scores=True,
    )
    assert context.shape == (2, 6) and weights.shape == (2, 5)
    np.testing.assert_allclose(to_numpy(context), to_numpy(context3)[:, 0])
    np.testing.assert_allclose(to_numpy(weights), to_numpy(weights3)[:, 0])


@pytest.mark.parametrize("score", ["general", "additive", "cosine"])
def test_precomputed_keys_give_the_same_output(score):
    layer = Attention(score=score, score_kwargs=SCORES[score] or None)
    want = to_numpy(layer(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK))
    projected = layer.project_key(KEY)
    for t in range(QUERY.shape[1]):  # step by step, like a decoder
        got = layer(
            QUERY[:, t],
            VALUE,
            key=KEY,
            value_mask=VALUE_MASK,
            projected_key=projected,
        )
        np.testing.assert_allclose(to_numpy(got), want[:, t], atol=1e-5)


def test_project_key_needs_a_built_layer_and_the_right_key():
    layer = Attention(score="general")
    with pytest.raises(ValueError, match=r"must be built before"):
        layer.project_key(KEY)
    layer(QUERY, VALUE, key=KEY)
    with pytest.raises(ValueError, match=r"Received: key.shape=\(2, 5, 6\)"):
        layer.project_key(VALUE)
    with pytest.raises(ValueError, match=r"projected_key.shape=\(2, 4, 4\)"):
        layer(QUERY, VALUE, key=KEY, projected_key=KEY[:, :4])


def test_automatic_keras_masks_equal_explicit_masks():
    ids_q = np.array([[3, 1, 0], [2, 2, 2]])
    ids_v = np.array([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
    embedding = keras.layers.Embedding(10, 4, mask_zero=True)
    attention = Attention(score="general")
    tokens_q = keras.Input((None,), dtype="int32")
    tokens_v = keras.Input((None,), dtype="int32")
    context = attention(embedding(tokens_q), embedding(tokens_v))
    assert context._keras_mask is not None  # the query mask propagates
    model = keras.Model([tokens_q, tokens_v], context)
    got = to_numpy(model([ids_q, ids_v]))
    want = attention(
        embedding(ids_q),
        embedding(ids_v),
        query_mask=ids_q != 0,
        value_mask=ids_v != 0,
    )
    np.testing.assert_allclose(got, to_numpy(want), atol=1e-6)
    assert np.all(got[0, 2] == 0.0)  # the padded query attends nothing
    # Plain arrays carry no Keras mask: then every key is attended.
    unmasked = attention(
        to_numpy(embedding(ids_q)).astype("float32"),
        to_numpy(embedding(ids_v)).astype("float32"),
    )
    assert not np.allclose(to_numpy(unmasked), got)


def test_weights_are_float32_under_mixed_precision():
    layer = Attention(score="general", dtype="mixed_float16")
    context, weights = layer(QUERY * 300, VALUE, return_attention_scores=True)
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    assert keras.backend.standardize_dtype(context.dtype) == "float16"
    assert np.all(np.isfinite(to_numpy(context)))
    sym = layer(
        keras.Input((3, 4)), keras.Input((5, 6)), return_attention_scores=True
    )
    assert sym[0].dtype == "float16" and sym[1].dtype == "float32"


def test_returned_weights_are_taken_before_dropout():
    layer = Attention(score="dot", dropout=0.5, seed=1)
    _, weights = layer(
        QUERY, VALUE, key=KEY, return_attention_scores=True, training=True
    )
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-5)
    context = layer(QUERY, VALUE, key=KEY, training=True)
    inference = layer(QUERY, VALUE, key=KEY, training=False)
    assert not np.allclose(to_numpy(context), to_numpy(inference))


@pytest.mark.parametrize("normalize", ["softmax", "sparsemax", "sigmoid"])
def test_fully_masked_rows_give_finite_gradients(normalize):
    layer = Attention(
        score="additive", probability_fn=normalize, score_kwargs={"units": 3}
    )
    check_training_with_fully_masked_rows(layer, QUERY, VALUE)


# === Properties (hypothesis) ===

PROPERTY_SETTINGS = property_settings(20)
PROPERTY_SCORES = ["dot", "general", "additive", "cosine", "location"]


def _layer(score, normalize="softmax", **kwargs):
    return Attention(
        score=score,
        probability_fn=normalize,
        score_kwargs=SCORES[score] or None,
        **kwargs,
    )


@PROPERTY_SETTINGS
@given(
    attention_inputs(),
    st.sampled_from(PROPERTY_SCORES),
    st.sampled_from(["softmax", "sparsemax"]),
    st.booleans(),
)
def test_weights_are_a_distribution_over_unmasked_keys(
    inputs, score, normalize, single
):
    query, value, value_mask = inputs
    query = query[:, 0] if single else query
    check_distribution(_layer(score, normalize), query, value, value_mask)


@PROPERTY_SETTINGS
@given(
    attention_inputs(),
    st.sampled_from(PROPERTY_SCORES),
    st.sampled_from(["softmax", "sparsemax", "sigmoid"]),
    st.sampled_from([1, 3]),
)
def test_padding_with_masked_keys_changes_nothing(
    inputs, score, normalize, pad
):
    query, value, value_mask = inputs
    layer = _layer(score, normalize)
    check_padding_invariance(layer, query, value, value_mask, pad)


@PROPERTY_SETTINGS
@given(
    attention_inputs(),
    st.sampled_from(PROPERTY_SCORES),
    st.sampled_from(["softmax", "sparsemax", "sigmoid"]),
    st.booleans(),
)
def test_queries_without_keys_get_zero_weights_and_context(
    inputs, score, normalize, single
):
    query, value, _ = inputs
    query = query[:, 0] if single else query
    check_fully_masked_queries(_layer(score, normalize), query, value)


@PROPERTY_SETTINGS
@given(
    attention_inputs(),
    st.sampled_from(PROPERTY_SCORES),
    st.sampled_from(["softmax", "sparsemax", "sigmoid"]),
    st.booleans(),
    st.booleans(),
)
def test_causal_mask_holds_in_every_path(
    inputs, score, normalize, single, training
):
    query = inputs[0][:, 0] if single else inputs[0]
    layer = _layer(score, normalize, dropout=0.5 if training else 0.0)
    check_causal(layer, query, training=training)


# === Bad input ===


def test_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="Received: probability_fn='max'"):
        Attention(probability_fn="max")
    with pytest.raises(ValueError, match="Did you mean: general"):
        Attention(score="genral")
    with pytest.raises(ValueError, match="Received: dropout=1.0"):
        Attention(dropout=1.0)
    with pytest.raises(ValueError, match="Received: seed='a'"):
        Attention(seed="a")
    with pytest.raises(ValueError, match="Received: score_kwargs=3"):
        Attention(score_kwargs=3)
    with pytest.raises(ValueError, match=r"score_kwargs=\{\}.*units"):
        Attention(score="additive")
    with pytest.raises(ValueError, match="Received: units=0"):
        Attention(score="additive", score_kwargs={"units": 0})
    with pytest.raises(ValueError, match="only be given with a score name"):
        Attention(score=GeneralScore(), score_kwargs={"units": 2})


def test_rejects_wrong_ranks_and_mismatched_shapes():
    layer = Attention(score="dot")
    with pytest.raises(ValueError, match=r"`query` must have rank 3.*"):
        layer(QUERY[None], VALUE, key=KEY)
    with pytest.raises(ValueError, match=r"`value` must have rank 3.*"):
        layer(QUERY, VALUE[0], key=KEY)
    with pytest.raises(ValueError, match=r"`key` must have rank 3.*"):
        layer(QUERY, VALUE, key=KEY[0])
    with pytest.raises(
        ValueError,
        match=r"same batch size.*query.shape=\(2, 3, 4\), value.shape=\(1, 5",
    ):
        layer(QUERY, VALUE[:1], key=KEY)
    with pytest.raises(
        ValueError, match=r"same length.*value.shape=\(2, 4, 6\)"
    ):
        layer(QUERY, VALUE[:, :4], key=KEY)
    with pytest.raises(
        ValueError, match=r"same depth.*query.shape=\(2, 3, 4\).*\(2, 5, 6\)"
    ):
        layer(QUERY, VALUE)
    with pytest.raises(ValueError, match=r"same depth"):
        keras.Model(
            [q := keras.Input((3, 4)), v := keras.Input((5, 6))],
            Attention(score="dot")(q, v),
        )


def test_rejects_masks_of_the_wrong_shape():
    layer = Attention(score="dot")
    with pytest.raises(ValueError, match=r"value_mask.shape=\(2, 4\)"):
        layer(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK[:, :4])
    with pytest.raises(ValueError, match=r"query_mask.shape=\(2, 5\)"):
        layer(QUERY, VALUE, key=KEY, query_mask=VALUE_MASK)
    with pytest.raises(ValueError, match=r"attention_mask.shape=\(2, 5\)"):
        layer(QUERY, VALUE, key=KEY, attention_mask=VALUE_MASK)
    with pytest.raises(ValueError, match=r"value_mask.shape=\(None, 4\)"):
        Attention(score="dot")(
            keras.Input((3, 4)),
            keras.Input((5, 4)),
            value_mask=keras.Input((4,), dtype="bool"),
        )


# === Keras parity: N-D inputs and the normaliser's name ===


@pytest.mark.parametrize("causal", [False, True])
def test_nd_inputs_are_the_same_as_keras_attention(causal):
    """Regression: `[B, H, W, C]` inputs (extra batch axes) used to be
    refused; `keras.layers.Attention` accepts them."""
    rng = np.random.default_rng(5)
    q = rng.normal(size=(2, 3, 4, 6)).astype("float32")
    v = rng.normal(size=(2, 3, 5, 6)).astype("float32")
    theirs = keras.layers.Attention()
    want, want_w = theirs(
        [q, v], return_attention_scores=True, use_causal_mask=causal
    )
    ours = Attention("dot")
    got, got_w = ours(
        q, v, return_attention_scores=True, use_causal_mask=causal
    )
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=1e-5)
    np.testing.assert_allclose(to_numpy(got_w), to_numpy(want_w), atol=1e-5)
    # Masks have the batch axes too (Keras's own layer fails on them): the
    # result is that of the flattened batch.
    vmask = rng.random((2, 3, 5)) > 0.3
    want = ours(
        q.reshape(6, 4, 6), v.reshape(6, 5, 6), value_mask=vmask.reshape(6, 5)
    )
    np.testing.assert_allclose(
        to_numpy(ours(q, v, value_mask=vmask)),
        to_numpy(want).reshape(2, 3, 4, 6),
        atol=1e-6,
    )
    symbolic = ours(keras.Input((3, 4, 6)), keras.Input((3, 5, 6)))
    assert tuple(symbolic.shape) == (None, 3, 4, 6)
    spec = ours.compute_output_spec(
        keras.KerasTensor((2, 3, 4, 6)),
        keras.KerasTensor((2, 3, 5, 6)),
        return_attention_scores=True,
    )
    assert tuple(spec[1].shape) == (2, 3, 4, 5)
    with pytest.raises(ValueError, match="same batch axes"):
        ours(q, v[:, :2])


def test_old_configs_with_normalize_still_load():
    layer = Attention("dot", probability_fn="sparsemax")
    config = layer.get_config()
    assert config["probability_fn"] == "sparsemax" and "normalize" not in config
    old = {**config, "normalize": config.pop("probability_fn")}
    assert Attention.from_config(old).probability_fn == "sparsemax"


def test_query_position_offsets_the_causal_mask():
    """One decoder state at step t sees keys 0..t under the causal mask."""
    layer = Attention("dot")
    step = QUERY[:, 0]
    _, weights = layer(
        step,
        VALUE,
        key=KEY,
        use_causal_mask=True,
        query_position=np.array([1, 3]),
        return_attention_scores=True,
    )
    weights = to_numpy(weights)
    assert np.all(weights[0, 2:] == 0) and np.all(weights[0, :2] > 0)
    assert np.all(weights[1, 4:] == 0) and np.all(weights[1, :4] > 0)
