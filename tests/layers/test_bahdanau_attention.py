"""Tests of `BahdanauAttention` (additive attention, weight-normalised)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import AdditiveScore
from layers import BahdanauAttention
from tests.layers.attention_checks import NP_NORMALIZERS
from tests.layers.attention_checks import attention_inputs
from tests.layers.attention_checks import check_causal
from tests.layers.attention_checks import check_distribution
from tests.layers.attention_checks import check_fully_masked_queries
from tests.layers.attention_checks import check_padding_invariance
from tests.layers.attention_checks import check_training_with_fully_masked_rows
from tests.layers.attention_checks import np_additive
from tests.layers.attention_checks import randomize_weights
from tests.layers.attention_checks import to_numpy
from tests.testing import property_settings
from tests.testing import run_layer_test

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
KEY = RNG.normal(size=(2, 5, 7)).astype("float32")
VALUE = RNG.normal(size=(2, 5, 6)).astype("float32")
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


# === Layer contract (shared helper) ===


def test_layer_contract_with_a_query_sequence():
    run_layer_test(
        BahdanauAttention,
        {"units": 3, "normalize": True, "kernel_regularizer": "l2"},
        [QUERY, VALUE, KEY],
        expected_output_shape=[(2, 3, 6), (2, 3, 5)],
        tensor_kwargs={"value_mask": VALUE_MASK},
        call_kwargs={"return_attention_scores": True, "use_causal_mask": True},
    )


def test_layer_contract_with_one_decoder_state():
    run_layer_test(
        BahdanauAttention,
        {"units": 3, "probability_fn": "sparsemax", "dropout": 0.1, "seed": 2},
        [QUERY[:, 0], VALUE],
        expected_output_shape=(2, 6),
        tensor_kwargs={"value_mask": VALUE_MASK},
    )


def test_reuses_the_additive_score():
    layer = BahdanauAttention(units=3, normalize=True)
    layer(QUERY, VALUE)
    assert isinstance(layer.score_layer, AdditiveScore)
    names = sorted(w.path.split("/", 1)[1] for w in layer.weights)
    assert names == [
        "additive_score/b",
        "additive_score/g",
        "additive_score/key_dense/kernel",
        "additive_score/query_dense/kernel",
        "additive_score/v",
    ]


# === Numeric tests against NumPy ===


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("single", [False, True])
def test_matches_numpy(normalize, single):
    for probability_fn in ("softmax", "sparsemax", "sigmoid"):
        _check_against_numpy(normalize, probability_fn, single)


def _check_against_numpy(normalize, probability_fn, single):
    layer = BahdanauAttention(
        units=3, normalize=normalize, probability_fn=probability_fn
    )
    layer.build(QUERY.shape, VALUE.shape, KEY.shape)
    randomize_weights(layer)
    query = QUERY[:, 0] if single else QUERY
    context, weights = layer(
        query,
        VALUE,
        key=KEY,
        value_mask=VALUE_MASK,
        return_attention_scores=True,
    )
    score = layer.score_layer
    extra = {}
    if normalize:  # v = g * v / |v|, bias b inside the tanh
        extra = {"g": to_numpy(score.g), "b": to_numpy(score.b)}
    logits = np_additive(
        QUERY[:, :1] if single else QUERY,
        KEY,
        to_numpy(score.query_dense.kernel),
        to_numpy(score.key_dense.kernel),
        to_numpy(score.v),
        **extra,
    )
    want = NP_NORMALIZERS[probability_fn](logits, VALUE_MASK[:, None, :])
    want_context = want @ VALUE
    if single:
        want, want_context = want[:, 0], want_context[:, 0]
    np.testing.assert_allclose(to_numpy(weights), want, atol=1e-5)
    np.testing.assert_allclose(to_numpy(context), want_context, atol=1e-5)


def test_step_by_step_decoding_with_precomputed_keys():
    layer = BahdanauAttention(units=3, normalize=True)
    want = to_numpy(layer(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK))
    memory = layer.project_key(KEY)  # once per source sequence
    assert tuple(memory.shape) == (2, 5, 3)
    for t in range(QUERY.shape[1]):
        got = layer(
            QUERY[:, t],
            VALUE,
            value_mask=VALUE_MASK,
            key=KEY,
            projected_key=memory,
        )
        np.testing.assert_allclose(to_numpy(got), want[:, t], atol=1e-5)


def test_automatic_keras_mask_of_the_source():
    ids = np.array([[4, 2, 0, 0], [1, 2, 3, 4]])
    tokens = keras.Input((None,), dtype="int32")
    state = keras.Input((5,))
    embedding = keras.layers.Embedding(10, 6, mask_zero=True)
    attention = BahdanauAttention(units=3)
    context, weights = attention(
        state, embedding(tokens), return_attention_scores=True
    )
    model = keras.Model([state, tokens], [context, weights])
    states = RNG.normal(size=(2, 5)).astype("float32")
    context, weights = model([states, ids])
    weights = to_numpy(weights)
    assert np.all(weights[0, 2:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    want = attention(states, embedding(ids), value_mask=ids != 0)
    np.testing.assert_allclose(to_numpy(context), to_numpy(want), atol=1e-6)


def test_weights_are_float32_under_mixed_precision():
    layer = BahdanauAttention(units=3, dtype="mixed_bfloat16")
    context, weights = layer(QUERY, VALUE, return_attention_scores=True)
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    assert keras.backend.standardize_dtype(context.dtype) == "bfloat16"
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("single", [False, True])
def test_fully_masked_rows_give_finite_gradients(single):
    layer = BahdanauAttention(units=3, normalize=True)
    query = QUERY[:, 0] if single else QUERY
    check_training_with_fully_masked_rows(layer, query, VALUE)


# === Properties (hypothesis) ===

PROPERTY_SETTINGS = property_settings(20)


@PROPERTY_SETTINGS
@given(attention_inputs(), st.booleans(), st.booleans())
def test_weights_are_a_distribution_over_unmasked_keys(
    inputs, normalize, single
):
    query, value, value_mask = inputs
    query = query[:, 0] if single else query
    layer = BahdanauAttention(units=3, normalize=normalize)
    check_distribution(layer, query, value, value_mask)


@PROPERTY_SETTINGS
@given(attention_inputs(), st.booleans(), st.sampled_from([1, 3]))
def test_padding_with_masked_keys_changes_nothing(inputs, single, pad):
    query, value, value_mask = inputs
    query = query[:, 0] if single else query
    layer = BahdanauAttention(units=3, normalize=True)
    check_padding_invariance(layer, query, value, value_mask, pad)


@PROPERTY_SETTINGS
@given(attention_inputs(), st.booleans())
def test_queries_without_keys_get_zero_weights_and_context(inputs, single):
    query, value, _ = inputs
    query = query[:, 0] if single else query
    check_fully_masked_queries(BahdanauAttention(units=3), query, value)


@PROPERTY_SETTINGS
@given(
    attention_inputs(),
    st.sampled_from(["softmax", "sparsemax", "sigmoid"]),
    st.booleans(),
    st.booleans(),
)
def test_causal_mask_holds_in_every_path(
    inputs, probability_fn, single, training
):
    query = inputs[0][:, 0] if single else inputs[0]
    layer = BahdanauAttention(
        units=3,
        probability_fn=probability_fn,
        dropout=0.5 if training else 0.0,
    )
    check_causal(layer, query, training=training)


# === Bad input ===


def test_rejects_invalid_arguments():
    for units in (0, -2, None, 1.5):
        with pytest.raises(ValueError, match=f"Received: units={units!r}"):
            BahdanauAttention(units=units)
    with pytest.raises(ValueError, match="Received: normalize=1"):
        BahdanauAttention(units=2, normalize=1)
    with pytest.raises(ValueError, match="Received: probability_fn='hard'"):
        BahdanauAttention(units=2, probability_fn="hard")
    with pytest.raises(ValueError, match="Received: dropout=-0.1"):
        BahdanauAttention(units=2, dropout=-0.1)


def test_rejects_wrong_ranks_and_mismatched_shapes():
    layer = BahdanauAttention(units=3)
    with pytest.raises(ValueError, match=r"`query` must have rank 3.*"):
        layer(QUERY[0, 0], VALUE)
    with pytest.raises(ValueError, match=r"`value` must have rank 3.*"):
        layer(QUERY, VALUE[:, 0])
    with pytest.raises(
        ValueError, match=r"same batch size.*query.shape=\(1, 3, 4\)"
    ):
        layer(QUERY[:1], VALUE)
    with pytest.raises(ValueError, match=r"same length.*key.shape=\(2, 4, 7\)"):
        layer(QUERY, VALUE, key=KEY[:, :4])
    layer(QUERY, VALUE)
    with pytest.raises(
        ValueError, match=r"built for query depth 4.*query.shape=\(2, 3, 5\)"
    ):
        layer(np.ones((2, 3, 5), "float32"), VALUE)
    with pytest.raises(
        ValueError, match=r"built for key depth 6.*key.shape=\(2, 5, 7\)"
    ):
        layer(QUERY, VALUE, key=KEY)


def test_rejects_masks_of_the_wrong_shape():
    layer = BahdanauAttention(units=3)
    with pytest.raises(ValueError, match=r"value_mask.shape=\(2, 3\)"):
        layer(QUERY, VALUE, value_mask=VALUE_MASK[:, :3])
    with pytest.raises(ValueError, match=r"value_mask.shape=\(5,\)"):
        layer(QUERY[:, 0], VALUE, value_mask=VALUE_MASK[0])
    with pytest.raises(ValueError, match=r"query_mask.shape=\(2, 2\)"):
        layer(QUERY, VALUE, query_mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match=r"attention_mask.shape=\(2, 3, 4\)"):
        layer(QUERY, VALUE, attention_mask=np.ones((2, 3, 4), bool))
