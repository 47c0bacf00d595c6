"""`layers.MultiHeadAttention`: a superset of Keras's MultiHeadAttention.

Each test builds Keras's layer, moves its weights into ours with
`MultiHeadAttention.from_keras` and compares outputs and scores: key masks,
every attention-mask shape Keras accepts, gating, sliding windows, LoRA and
int8 quantisation. Named so that they also run under JAX (see conftest).
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

from layers import MultiHeadAttention

RNG = np.random.default_rng(7)
X = RNG.normal(size=(2, 5, 8)).astype("float32")
Y = RNG.normal(size=(2, 4, 6)).astype("float32")
PAD = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _pair(query, value, **kwargs):
    """Keras's layer (built on `query`, `value`) and ours with its weights."""
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, **kwargs)
    # With scores Keras takes its einsum path: its fused path fails on JAX
    # when value_dim != key_dim (a Keras 3.15 limitation, not ours).
    theirs(query, value, return_attention_scores=True)
    return theirs, MultiHeadAttention.from_keras(theirs)


def _same(theirs, ours, *args, atol=1e-5, **kwargs):
    want = theirs(*args, return_attention_scores=True, **kwargs)
    got = ours(*args, return_attention_scores=True, **kwargs)
    for w, g in zip(want, got):
        np.testing.assert_allclose(_np(g), _np(w), atol=atol)


# === Moving weights ===


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"output_shape": (3, 2)}, {"use_bias": False}, {"value_dim": 3}],
    ids=["plain", "output_shape", "no_bias", "value_dim"],
)
def test_from_keras_gives_the_same_outputs_and_scores(cross, kwargs):
    value = Y if cross else X
    theirs, ours = _pair(X, value, **kwargs)
    _same(theirs, ours, X, value)
    back = ours.to_keras()
    _same(back, theirs, X, value, atol=1e-6)


def test_from_keras_with_attention_axes_on_images():
    images = RNG.normal(size=(2, 3, 4, 6)).astype("float32")
    theirs = keras.layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    theirs(images, images)
    ours = MultiHeadAttention.from_keras(theirs)
    _same(theirs, ours, images, images)


def test_from_keras_refuses_what_it_cannot_convert():
    with pytest.raises(ValueError, match="keras.layers.MultiHeadAttention"):
        MultiHeadAttention.from_keras(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="unbuilt"):
        MultiHeadAttention.from_keras(keras.layers.MultiHeadAttention(2, 4))
    gqa = MultiHeadAttention(4, 2, num_key_value_heads=2)
    gqa(X, X)
    with pytest.raises(ValueError, match="grouped-query"):
        gqa.to_keras()


# === Masks ===


def test_key_keras_mask_is_honoured_like_keras():
    """Regression: the key's own Keras mask used to be ignored."""
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])
    embedding = keras.layers.Embedding(10, 6, mask_zero=True)
    theirs, ours = _pair(X, Y)
    # Keras's layer deletes the masks of its inputs, so each call gets a
    # freshly masked key.
    key = embedding(ids)
    assert key._keras_mask is not None
    masked = ours(X, Y, key=key)
    want = theirs(X, Y, key=embedding(ids))
    np.testing.assert_allclose(_np(masked), _np(want), atol=1e-5)
    # The same as an explicit value mask, and not as no mask at all.
    np.testing.assert_allclose(
        _np(masked), _np(ours(X, Y, key=key, value_mask=PAD)), atol=1e-6
    )
    unmasked = ours(X, Y, key=ops.convert_to_numpy(key))
    assert not np.allclose(_np(masked), _np(unmasked), atol=1e-3)


def test_key_mask_argument_combines_with_value_mask():
    """Regression: `key_mask=` used to be a TypeError."""
    theirs, ours = _pair(X, Y)
    other = np.array([[1, 0, 1, 1], [1, 1, 0, 1]], bool)
    _same(theirs, ours, X, Y, key_mask=PAD, value_mask=other)


MASK_SHAPES = pytest.mark.parametrize(
    "shape",
    [(5, 4), (1, 5, 4), (2, 5, 4), (2, 1, 5, 4), (2, 2, 5, 4), (1, 2, 1, 4)],
    ids=["TS", "1TS", "BTS", "B1TS", "BNTS", "1N1S"],
)


def _check_mask_shape(shape, impl):
    mask = RNG.random(shape) > 0.3
    # Keras's fused path gives a query without keys uniform weights, its
    # scores path zero weights; this layer always gives zero (documented).
    # Every query keeps a key here, so all paths agree.
    mask[..., 0] = True
    theirs, ours = _pair(X, Y)
    ours.attention_impl = impl
    _same(theirs, ours, X, Y, attention_mask=mask)
    out = ours(X, Y, attention_mask=mask)
    want = theirs(X, Y, attention_mask=mask)
    np.testing.assert_allclose(_np(out), _np(want), atol=1e-5)


@MASK_SHAPES
def test_every_keras_attention_mask_shape_is_accepted(shape):
    """Regression: `[T, S]` and `[B, N, T, S]` masks used to be refused."""
    _check_mask_shape(shape, "standard")


@MASK_SHAPES
def test_chunked_path_with_every_mask_shape_matches_keras(shape):
    # TensorFlow only (see conftest): the JAX run proves the shapes on the
    # standard path, the chunked path's equality on both backends is tested
    # in test_chunked_attention.py.
    _check_mask_shape(shape, "chunked")


def test_per_head_masks_on_images_and_with_padding():
    images = RNG.normal(size=(2, 3, 4, 6)).astype("float32")
    theirs = keras.layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    theirs(images, images)
    ours = MultiHeadAttention.from_keras(theirs)
    per_head = RNG.random((2, 2, 3, 4, 3, 4)) > 0.3
    _same(theirs, ours, images, images, attention_mask=per_head)
    shared = RNG.random((3, 4, 3, 4)) > 0.3  # no batch, no head axis
    _same(theirs, ours, images, images, attention_mask=shared)
    # A query masked in every head gets a zero output, never NaN.
    mask = np.ones((2, 2, 5, 4), bool)
    mask[0, :, 1] = False
    out = _np(_pair(X, Y)[1](X, Y, attention_mask=mask))
    assert np.isfinite(out).all() and np.all(out[0, 1] == 0.0)


def test_bad_attention_mask_shapes_name_both_shapes():
    _, ours = _pair(X, Y)
    with pytest.raises(
        ValueError, match=r"attention_mask.shape=\(2, 3, 5, 4\)"
    ):
        ours(X, Y, attention_mask=np.ones((2, 3, 5, 4), bool))
    with pytest.raises(ValueError, match=r"rank <= 4"):
        ours(X, Y, attention_mask=np.ones((1, 2, 2, 5, 4), bool))


def test_compute_output_shape_checks_what_call_checks():
    """Regression: inconsistent key/value shapes used to be accepted."""
    ours = MultiHeadAttention(2, 4)
    assert ours.compute_output_shape((2, 5, 8), (2, 4, 6)) == (2, 5, 8)
    theirs = keras.layers.MultiHeadAttention(2, 4)
    for layer in (theirs, ours):
        with pytest.raises(ValueError, match="key"):
            layer.compute_output_shape((2, 5, 8), (2, 4, 6), (2, 3, 6))
    with pytest.raises(ValueError, match="same rank"):
        ours.compute_output_shape((2, 5, 8), (2, 4, 4, 6))


# === Gate and sliding window ===


@pytest.mark.parametrize("causal", [False, True], ids=["band", "causal"])
def test_sliding_window_and_gate_are_the_same_as_keras(causal):
    theirs, ours = _pair(X, X, sliding_window=2, use_gate=True)
    _same(theirs, ours, X, X, use_causal_mask=causal)
    config = ours.get_config()
    assert config["sliding_window"] == 2 and config["use_gate"] is True
    clone = MultiHeadAttention.from_config(config)
    clone(X, X)
    clone.set_weights(ours.get_weights())
    np.testing.assert_allclose(_np(clone(X, X)), _np(ours(X, X)), atol=1e-6)


def test_sliding_window_in_the_chunked_path_and_the_cache():
    ours = MultiHeadAttention(2, 4, sliding_window=2, attention_impl="chunked")
    full = _np(ours(X, X, use_causal_mask=True))
    ours.attention_impl = "standard"
    np.testing.assert_allclose(
        _np(ours(X, X, use_causal_mask=True)), full, atol=1e-5
    )
    cache = ours.initialize_cache(2, 5)
    steps = []
    for i in range(5):
        step = X[:, i : i + 1]
        out, cache = ours(
            step, step, cache=cache, cache_update_index=i, use_causal_mask=True
        )
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)


# === LoRA ===


def _keras_lora(theirs, rank):
    for dense in (
        theirs.query_dense,
        theirs.key_dense,
        theirs.value_dense,
        theirs.output_dense,
    ):
        dense.enable_lora(rank)
        for w in (dense.lora_kernel_a, dense.lora_kernel_b):
            w.assign(RNG.normal(size=w.shape).astype("float32") * 0.3)


def _copy_lora(theirs, ours):
    for name, dense in (
        ("query", theirs.query_dense),
        ("key", theirs.key_dense),
        ("value", theirs.value_dense),
        ("output", theirs.output_dense),
    ):
        a = _np(dense.lora_kernel_a)
        if name == "output":  # [N, Hv, rank] -> [N * Hv, rank]
            a = a.reshape(-1, ours.lora_rank)
        b = _np(dense.lora_kernel_b)
        getattr(ours, f"{name}_lora_kernel_a").assign(a)
        getattr(ours, f"{name}_lora_kernel_b").assign(b)


@pytest.mark.parametrize("cross", [False, True], ids=["fused", "unfused"])
def test_lora_is_the_same_as_keras_lora(cross, tmp_path):
    value = Y if cross else X
    theirs, ours = _pair(X, value)
    _keras_lora(theirs, rank=2)
    ours.enable_lora(2)
    _copy_lora(theirs, ours)
    _same(theirs, ours, X, value)
    # Kernels frozen; only the adapters (and biases) train.
    trainable = {w.path.split("/")[-1] for w in ours.trainable_weights}
    assert not any(n.endswith("_kernel") for n in trainable)
    assert "query_lora_kernel_a" in trainable
    # Saved and reloaded with its adapters.
    q = keras.Input(X.shape[1:])
    v = keras.Input(value.shape[1:])
    model = keras.Model([q, v], ours(q, v))
    path = os.path.join(tmp_path, "lora.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _np(loaded([X, value])), _np(model([X, value])), atol=1e-6
    )
    with pytest.raises(ValueError, match="already enabled"):
        ours.enable_lora(2)


def test_lora_needs_a_built_layer_and_a_valid_rank():
    with pytest.raises(ValueError, match="not built"):
        MultiHeadAttention(2, 4).enable_lora(2)
    layer = MultiHeadAttention(2, 4)
    layer(X, X)
    with pytest.raises(ValueError, match="Received: rank=0"):
        layer.enable_lora(0)


# === int8 ===


@pytest.mark.parametrize("cross", [False, True], ids=["fused", "unfused"])
def test_int8_quantisation_is_the_same_as_keras(cross, tmp_path):
    value = Y if cross else X
    theirs, ours = _pair(X, value)
    q = keras.Input(X.shape[1:])
    v = keras.Input(value.shape[1:])
    keras_model = keras.Model([q, v], theirs(q, v))
    model = keras.Model([q, v], ours(q, v))
    float_out = _np(model([X, value]))
    with pytest.warns(UserWarning):  # Input layers have no `quantize`
        keras_model.quantize("int8")
    with pytest.warns(UserWarning):
        model.quantize("int8")
    assert ours.dtype_policy.name == "int8_from_float32"
    assert ours.qkv_kernel.dtype == "int8" if not cross else True
    got = _np(model([X, value]))
    np.testing.assert_allclose(got, _np(keras_model([X, value])), atol=1e-5)
    assert 0 < np.abs(got - float_out).max() < 0.1
    path = os.path.join(tmp_path, "int8.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded([X, value])), got, atol=1e-6)
    assert loaded.layers[-1].dtype_policy.name == "int8_from_float32"


def test_int8_layer_from_its_dtype_policy_and_policy_map():
    layer = MultiHeadAttention(2, 4, dtype="int8_from_float32")
    layer(X, X)
    assert layer.qkv_kernel.dtype == "int8"
    assert layer.qkv_kernel_scale.shape == (24,)
    policy_map = keras.dtype_policies.DTypePolicyMap()
    policy_map["mha"] = "int8_from_float32"
    mapped = MultiHeadAttention(2, 4, dtype=policy_map, name="mha")
    mapped(X, X)
    assert mapped.quantization_mode == "int8"
    other = MultiHeadAttention(2, 4)
    other(X, X)
    with pytest.raises(NotImplementedError, match="int8"):
        other.quantize("float8")
