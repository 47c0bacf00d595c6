"""Tests of `LuongAttention`: global, local-m and local-p attention."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import AdditiveScore
from layers import DotScore
from layers import GeneralScore
from layers import LocationScore
from layers import LuongAttention
from tests.layers.attention_checks import NP_NORMALIZERS
from tests.layers.attention_checks import attention_inputs
from tests.layers.attention_checks import check_causal
from tests.layers.attention_checks import check_distribution
from tests.layers.attention_checks import check_fully_masked_queries
from tests.layers.attention_checks import check_padding_invariance
from tests.layers.attention_checks import check_training_with_fully_masked_rows
from tests.layers.attention_checks import np_additive
from tests.layers.attention_checks import np_dot
from tests.layers.attention_checks import randomize_weights
from tests.layers.attention_checks import to_numpy
from tests.testing import property_settings
from tests.testing import run_layer_test

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 4, 5)).astype("float32")
VALUE = RNG.normal(size=(2, 7, 5)).astype("float32")
VALUE_MASK = np.array([[1, 1, 1, 1, 1, 0, 0], [1] * 7], bool)

CONFIGS = {
    "dot": {"score": "dot"},
    "general_scaled": {"score": "general", "scale": True},
    "concat": {"score": "concat", "units": 3},
    "location": {"score": "location", "max_length": 9},
    "local_m": {"score": "general", "window": 2, "local_mode": "monotonic"},
    "local_p": {"score": "dot", "window": 2, "scale": True},
    "local_p_concat": {
        "score": "concat",
        "units": 3,
        "window": 1,
        "local_mode": "predictive",
    },
}
LOCAL = {"local_m", "local_p", "local_p_concat"}


# === Layer contract (shared helper) ===


@pytest.mark.parametrize("config", ["location", "local_p_concat"])
def test_layer_contract(config):
    run_layer_test(
        LuongAttention,
        CONFIGS[config],
        [QUERY, VALUE],
        expected_output_shape=[(2, 4, 5), (2, 4, 7)],
        tensor_kwargs={"value_mask": VALUE_MASK},
        call_kwargs={"return_attention_scores": True},
    )


def test_layer_contract_with_one_decoder_state():
    run_layer_test(
        LuongAttention,
        {**CONFIGS["local_m"], "dropout": 0.1, "seed": 1},
        [QUERY[:, 0], VALUE],
        expected_output_shape=(2, 5),
        tensor_kwargs={"value_mask": VALUE_MASK},
        call_kwargs={"query_position": 3},
    )


def test_layer_contract_with_causal_mask_and_sparsemax():
    run_layer_test(
        LuongAttention,
        {
            "score": "general",
            "scale": True,
            "window": 3,
            "probability_fn": "sparsemax",
        },
        [QUERY, VALUE],
        expected_output_shape=(2, 4, 5),
        call_kwargs={"use_causal_mask": True},
    )


def test_uses_the_registered_scores():
    scores = {
        "dot": DotScore,
        "general": GeneralScore,
        "concat": AdditiveScore,
        "location": LocationScore,
    }
    for score, cls in scores.items():
        layer = LuongAttention(score=score, units=2, max_length=9)
        assert type(layer.score_layer) is cls


# === Numeric tests against NumPy ===


def np_luong(layer, query, value, value_mask, query_position=0):
    """NumPy reference from the layer's own weights (query is 3-D)."""
    score = layer.score_layer
    if layer.score == "dot":
        logits = np_dot(query, value)
    elif layer.score == "general":
        w_a = to_numpy(score.kernel)
        logits = np.einsum("bqi,ij,bkj->bqk", query, w_a, value)
    elif layer.score == "concat":
        logits = np_additive(
            query,
            value,
            to_numpy(score.query_dense.kernel),
            to_numpy(score.key_dense.kernel),
            to_numpy(score.v),
        )
    else:  # location: a_t = W_a h_t
        logits = (query @ to_numpy(score.kernel))[:, :, : value.shape[1]]
    if layer.scale:
        logits = logits * to_numpy(layer.scale_weight)
    mask = value_mask[:, None, :]
    tq, tk = query.shape[1], value.shape[1]
    source = np.arange(tk)[None, None, :]
    if layer.window is not None:
        if layer.local_mode == "monotonic":  # p_t = t
            centre = np.arange(tq)[None, :, None] + query_position
        else:  # p_t = S sigmoid(v_p^T tanh(W_p h_t))
            length = value_mask.sum(-1)[:, None, None]
            hidden = np.tanh(query @ to_numpy(layer.position_dense.kernel))
            logit = hidden @ to_numpy(layer.position_v)
            centre = length * (1 / (1 + np.exp(-logit)))[..., None]
        mask = mask & (np.abs(source - centre) <= layer.window)
    weights = NP_NORMALIZERS[layer.probability_fn](logits, mask)
    if layer.window is not None and layer.local_mode == "predictive":
        sigma = layer.window / 2
        weights = weights * np.exp(-((source - centre) ** 2) / (2 * sigma**2))
    return weights @ value, weights


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_matches_numpy(config):
    for probability_fn in ("softmax", "sparsemax", "sigmoid"):
        layer = LuongAttention(**CONFIGS[config], probability_fn=probability_fn)
        layer.build(QUERY.shape, VALUE.shape)
        randomize_weights(layer)
        context, weights = layer(
            QUERY, VALUE, value_mask=VALUE_MASK, return_attention_scores=True
        )
        want_context, want = np_luong(layer, QUERY, VALUE, VALUE_MASK)
        np.testing.assert_allclose(to_numpy(weights), want, atol=1e-5)
        np.testing.assert_allclose(to_numpy(context), want_context, atol=1e-5)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_one_decoder_state_matches_numpy(config):
    layer = LuongAttention(**CONFIGS[config])
    layer.build(QUERY[:, 0].shape, VALUE.shape)
    randomize_weights(layer, seed=1)
    context, weights = layer(
        QUERY[:, 2],
        VALUE,
        value_mask=VALUE_MASK,
        query_position=2,
        return_attention_scores=True,
    )
    want_context, want = np_luong(
        layer, QUERY[:, 2:3], VALUE, VALUE_MASK, query_position=2
    )
    np.testing.assert_allclose(to_numpy(weights), want[:, 0], atol=1e-5)
    np.testing.assert_allclose(to_numpy(context), want_context[:, 0], 1e-5)


def test_local_m_attends_only_inside_the_window():
    layer = LuongAttention(score="dot", window=1, local_mode="monotonic")
    _, weights = layer(QUERY, VALUE, return_attention_scores=True)
    weights = to_numpy(weights)
    inside = np.abs(np.arange(7)[None, :] - np.arange(4)[:, None]) <= 1
    assert np.all(weights[:, ~inside] == 0.0)
    assert np.all(weights[:, inside] > 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_local_m_query_position_moves_the_window_per_example():
    layer = LuongAttention(score="dot", window=1, local_mode="monotonic")
    _, weights = layer(
        QUERY[:, 0],
        VALUE,
        query_position=np.array([0, 5]),
        return_attention_scores=True,
    )
    support = to_numpy(weights) > 0
    np.testing.assert_array_equal(support[0], [1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(support[1], [0, 0, 0, 0, 1, 1, 1])


def test_local_p_gaussian_is_centred_on_the_predicted_position():
    layer = LuongAttention(score="dot", window=2)
    layer.build(QUERY.shape, VALUE.shape)
    randomize_weights(layer)
    # Equal logits: the weights are then the Gaussian times a uniform
    # distribution over the window, so their peak is next to p_t.
    _, weights = layer(
        np.zeros_like(QUERY),
        VALUE,
        value_mask=VALUE_MASK,
        return_attention_scores=True,
    )
    weights = to_numpy(weights)
    assert np.all(weights.sum(-1) < 1.0)
    # p_t = S * sigmoid(0) = S / 2 with a zero query.
    centre = VALUE_MASK.sum(-1) / 2.0  # [2.5, 3.5]
    peak = weights.argmax(-1)
    assert np.all(np.abs(peak - centre[:, None]) <= 0.5)


def test_scale_is_a_learned_scalar_starting_at_one():
    layer = LuongAttention(score="general", scale=True)
    plain = LuongAttention(score="general")
    out = layer(QUERY, VALUE)
    plain(QUERY, VALUE)
    plain.score_layer.kernel.assign(layer.score_layer.kernel)
    assert to_numpy(layer.scale_weight) == 1.0
    assert layer.scale_weight in layer.trainable_weights
    np.testing.assert_allclose(to_numpy(plain(QUERY, VALUE)), to_numpy(out))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_step_by_step_decoding_with_precomputed_keys(config):
    layer = LuongAttention(**CONFIGS[config])
    want = to_numpy(layer(QUERY, VALUE, value_mask=VALUE_MASK))
    memory = layer.project_key(VALUE)
    for t in range(QUERY.shape[1]):
        got = layer(
            QUERY[:, t],
            VALUE,
            value_mask=VALUE_MASK,
            projected_key=memory,
            query_position=t,
        )
        np.testing.assert_allclose(to_numpy(got), want[:, t], atol=1e-5)


def test_automatic_keras_masks_in_a_functional_model():
    ids_src = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    ids_tgt = np.array([[1, 2, 0], [3, 3, 3]])
    embedding = keras.layers.Embedding(10, 5, mask_zero=True)
    attention = LuongAttention(score="general", window=2)
    src = keras.Input((None,), dtype="int32")
    tgt = keras.Input((None,), dtype="int32")
    outputs = attention(
        embedding(tgt), embedding(src), return_attention_scores=True
    )
    model = keras.Model([tgt, src], outputs)
    context, weights = model([ids_tgt, ids_src])
    want_context, want = attention(
        embedding(ids_tgt),
        embedding(ids_src),
        query_mask=ids_tgt != 0,
        value_mask=ids_src != 0,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(to_numpy(weights), to_numpy(want), atol=1e-6)
    np.testing.assert_allclose(to_numpy(context), to_numpy(want_context), 1e-5)
    assert np.all(to_numpy(weights)[0, :, 3:] == 0.0)
    assert np.all(to_numpy(context)[0, 2] == 0.0)


def test_weights_are_float32_under_mixed_precision():
    layer = LuongAttention(score="dot", window=2, dtype="mixed_float16")
    context, weights = layer(QUERY * 200, VALUE, return_attention_scores=True)
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    assert keras.backend.standardize_dtype(context.dtype) == "float16"
    assert np.all(np.isfinite(to_numpy(context)))


@pytest.mark.parametrize("config", ["general_scaled", "local_p_concat"])
def test_fully_masked_rows_give_finite_gradients(config):
    layer = LuongAttention(**CONFIGS[config])
    check_training_with_fully_masked_rows(layer, QUERY, VALUE)


# === Properties (hypothesis) ===

PROPERTY_SETTINGS = property_settings(20)
configs = st.sampled_from(sorted(CONFIGS))


def _layer(config, **kwargs):
    return LuongAttention(**{**CONFIGS[config], "max_length": 9}, **kwargs)


@PROPERTY_SETTINGS
@given(attention_inputs(dim=5, value_dim=5), configs, st.booleans())
def test_weights_are_a_distribution_over_unmasked_keys(inputs, config, single):
    query, value, value_mask = inputs
    query = query[:, 0] if single else query
    check_distribution(
        _layer(config),
        query,
        value,
        value_mask,
        sums_to_one=config not in LOCAL,
    )


@PROPERTY_SETTINGS
@given(
    attention_inputs(dim=5, value_dim=5),
    configs,
    st.booleans(),
    st.sampled_from([1, 3]),
)
def test_padding_with_masked_keys_changes_nothing(inputs, config, single, pad):
    query, value, value_mask = inputs
    query = query[:, 0] if single else query
    check_padding_invariance(_layer(config), query, value, value_mask, pad)


@PROPERTY_SETTINGS
@given(attention_inputs(dim=5, value_dim=5), configs, st.booleans())
def test_queries_without_keys_get_zero_weights_and_context(
    inputs, config, single
):
    query, value, _ = inputs
    query = query[:, 0] if single else query
    check_fully_masked_queries(_layer(config), query, value)


@PROPERTY_SETTINGS
@given(
    attention_inputs(dim=5, value_dim=5),
    configs,
    st.booleans(),
    st.booleans(),
)
def test_causal_mask_holds_in_every_path(inputs, config, single, training):
    query = inputs[0][:, 0] if single else inputs[0]
    layer = _layer(config, dropout=0.5 if training else 0.0)
    check_causal(layer, query, training=training)


# === Bad input ===


def test_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="Did you mean: general"):
        LuongAttention(score="genral")
    with pytest.raises(ValueError, match="Received: score='additive'"):
        LuongAttention(score="additive")
    with pytest.raises(ValueError, match="Received: units=None"):
        LuongAttention(score="concat")
    with pytest.raises(ValueError, match="Received: units=0"):
        LuongAttention(score="concat", units=0)
    with pytest.raises(ValueError, match="Received: max_length=None"):
        LuongAttention(score="location")
    with pytest.raises(ValueError, match="Received: max_length=-3"):
        LuongAttention(score="location", max_length=-3)
    for window in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"Received: window={window!r}"):
            LuongAttention(window=window)
    with pytest.raises(ValueError, match="Received: local_mode='local-x'"):
        LuongAttention(window=2, local_mode="local-x")
    with pytest.raises(ValueError, match="Received: scale='yes'"):
        LuongAttention(scale="yes")
    with pytest.raises(ValueError, match="Received: probability_fn=None"):
        LuongAttention(probability_fn=None)


def test_rejects_wrong_ranks_and_mismatched_shapes():
    layer = LuongAttention(score="dot")
    with pytest.raises(ValueError, match=r"`query` must have rank 3.*"):
        layer(QUERY[None], VALUE)
    with pytest.raises(ValueError, match=r"`key` must have rank 3.*"):
        layer(QUERY, VALUE, key=VALUE[0])
    with pytest.raises(ValueError, match=r"same batch size.*\(1, 7, 5\)"):
        layer(QUERY, VALUE[:1])
    with pytest.raises(
        ValueError,
        match=r"same depth.*query.shape=\(2, 4, 5\) and key.shape=\(2, 7, 3\)",
    ):
        layer(QUERY, VALUE, key=VALUE[..., :3])
    with pytest.raises(
        ValueError,
        match=r"same depth.*query.shape=\(2, 1, 4\) and key.shape=\(2, 7, 5\)",
    ):
        layer(QUERY[:, 0, :4], VALUE)
    with pytest.raises(ValueError, match=r"max_length=6.*7 keys"):
        LuongAttention(score="location", max_length=6)(QUERY, VALUE)


def test_rejects_masks_of_the_wrong_shape():
    layer = LuongAttention(score="general", window=2)
    with pytest.raises(ValueError, match=r"value_mask.shape=\(2, 6\)"):
        layer(QUERY, VALUE, value_mask=VALUE_MASK[:, :6])
    with pytest.raises(ValueError, match=r"query_mask.shape=\(2, 4, 1\)"):
        layer(QUERY, VALUE, query_mask=np.ones((2, 4, 1), bool))
    with pytest.raises(ValueError, match=r"attention_mask.shape=\(2, 7, 4\)"):
        layer(QUERY, VALUE, attention_mask=np.ones((2, 7, 4), bool))
