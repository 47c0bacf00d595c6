"""NumPy references and property checks shared by the attention layer tests.

Property checks take a `make_layer()` factory so that `Attention`,
`BahdanauAttention` and `LuongAttention` are held to the same guarantees:
weights are a distribution over unmasked keys, padding invariance, zero
output for queries without keys, causal masking in every code path.
"""

import keras
import numpy as np
from hypothesis import strategies as st
from keras import ops

# === NumPy references ===


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def np_masked_softmax(logits, mask=None):
    if mask is None:
        mask = np.ones(logits.shape, bool)
    mask = np.broadcast_to(mask, logits.shape)
    x = np.where(mask, logits, -np.inf)
    top = np.max(x, -1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(x - top) * mask
    total = e.sum(-1, keepdims=True)
    return np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0)


def _sparsemax_row(z):
    z_sorted = np.sort(z)[::-1]
    k = np.arange(1, len(z) + 1)
    cumsum = np.cumsum(z_sorted)
    support = 1 + k * z_sorted > cumsum
    kz = k[support][-1]
    tau = (cumsum[kz - 1] - 1) / kz
    return np.maximum(z - tau, 0.0)


def np_masked_sparsemax(logits, mask=None):
    if mask is None:
        mask = np.ones(logits.shape, bool)
    mask = np.broadcast_to(mask, logits.shape)
    out = np.zeros(logits.shape)
    for idx in np.ndindex(logits.shape[:-1]):
        valid = mask[idx]
        if valid.any():
            out[idx][valid] = _sparsemax_row(logits[idx][valid])
    return out


def np_masked_sigmoid(logits, mask=None):
    out = 1.0 / (1.0 + np.exp(-logits))
    return out if mask is None else out * mask


NP_NORMALIZERS = {
    "softmax": np_masked_softmax,
    "sparsemax": np_masked_sparsemax,
    "sigmoid": np_masked_sigmoid,
}


def np_dot(q, k):
    return q @ np.swapaxes(k, 1, 2)


def np_additive(q, k, w_q, w_k, v, g=None, b=None):
    hidden = (q @ w_q)[:, :, None, :] + (k @ w_k)[:, None, :, :]
    if g is not None:
        hidden = hidden + b
        v = g * v / np.linalg.norm(v)
    return (np.tanh(hidden) * v).sum(-1)


def np_cosine(q, k):
    qn = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    kn = k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
    return np_dot(qn, kn)


def randomize_weights(layer, seed=0):
    """Assigns random values to every weight (so zero-initialised biases
    and unit scales are tested too)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        value = rng.normal(size=tuple(weight.shape)) * 0.7
        weight.assign(value.astype(weight.dtype))


# === Hypothesis strategies ===


@st.composite
def attention_inputs(
    draw, query_lengths=(1, 3), key_lengths=(1, 4), dim=4, value_dim=4
):
    """Draws `(query, value, value_mask)`; every row keeps >= 1 valid key.

    Lengths come from small fixed sets (edge case 1 included) so that the
    JAX backend compiles each op for a few shapes only; the values and the
    masks vary freely.
    """
    tq = draw(st.sampled_from(query_lengths))
    tk = draw(st.sampled_from(key_lengths))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(2, tq, dim)).astype("float32")
    value = rng.normal(size=(2, tk, value_dim)).astype("float32")
    value_mask = rng.random((2, tk)) > 0.3
    value_mask[:, 0] = True
    return query, value, value_mask


# === Property checks ===


def check_distribution(layer, query, value, value_mask, sums_to_one=True):
    """Weights are >= 0, zero on masked keys, sum to 1 (or <= 1)."""
    context, weights = layer(
        query, value, value_mask=value_mask, return_attention_scores=True
    )
    weights = to_numpy(weights)
    mask = value_mask if weights.ndim == 2 else value_mask[:, None, :]
    mask = np.broadcast_to(mask, weights.shape)
    assert np.all(weights >= 0.0)
    assert np.all(weights[~mask] == 0.0)
    sums = weights.sum(-1)
    if sums_to_one:
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    else:
        assert np.all(sums <= 1.0 + 1e-5)
    np.testing.assert_allclose(
        to_numpy(context),
        np.einsum("bk,bkd->bd", weights, value)
        if weights.ndim == 2
        else weights @ value,
        atol=1e-5,
    )


def check_padding_invariance(layer, query, value, value_mask, pad, seed=0):
    """Appending `pad` masked keys leaves context and weights unchanged."""
    rng = np.random.default_rng(seed)
    batch, tk, dv = value.shape
    padding = (rng.normal(size=(batch, pad, dv)) * 10).astype("float32")
    padded_value = np.concatenate([value, padding], axis=1)
    padded_mask = np.concatenate(
        [value_mask, np.zeros((batch, pad), bool)], axis=1
    )
    context, weights = layer(
        query, value, value_mask=value_mask, return_attention_scores=True
    )
    padded_context, padded_weights = layer(
        query,
        padded_value,
        value_mask=padded_mask,
        return_attention_scores=True,
    )
    padded_weights = to_numpy(padded_weights)
    np.testing.assert_allclose(
        to_numpy(padded_context), to_numpy(context), atol=1e-5
    )
    np.testing.assert_allclose(
        padded_weights[..., :tk], to_numpy(weights), atol=1e-6
    )
    assert np.all(padded_weights[..., tk:] == 0.0)


def check_fully_masked_queries(layer, query, value):
    """Queries with no key to attend get zero weights and zero context."""
    batch, tk, _ = value.shape
    value_mask = np.zeros((batch, tk), bool)
    context, weights = layer(
        query, value, value_mask=value_mask, return_attention_scores=True
    )
    context, weights = to_numpy(context), to_numpy(weights)
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
    assert np.all(weights == 0.0) and np.all(context == 0.0)
    # Masked queries (query_mask) too, while other rows stay untouched.
    if query.ndim == 3 and query.shape[1] > 1:
        query_mask = np.ones(query.shape[:2], bool)
        query_mask[:, 0] = False
        context, weights = layer(
            query, value, query_mask=query_mask, return_attention_scores=True
        )
        context, weights = to_numpy(context), to_numpy(weights)
        assert np.all(weights[:, 0] == 0.0) and np.all(context[:, 0] == 0.0)
        full_context, full_weights = layer(
            query, value, return_attention_scores=True
        )
        np.testing.assert_allclose(
            context[:, 1:], to_numpy(full_context)[:, 1:], atol=1e-6
        )
        np.testing.assert_allclose(
            weights[:, 1:], to_numpy(full_weights)[:, 1:], atol=1e-6
        )


def check_causal(layer, query, training=False):
    """No weight on future keys: in the returned weights and, with the
    identity as value, in the context (so also after dropout)."""
    batch = query.shape[0]
    tq = 1 if query.ndim == 2 else query.shape[1]
    tk = max(tq, 2)
    value = np.tile(np.eye(tk, dtype="float32")[None], (batch, 1, 1))
    key = np.random.default_rng(1).normal(size=(batch, tk, query.shape[-1]))
    key = key.astype("float32")
    context, weights = layer(
        query,
        value,
        key=key,
        use_causal_mask=True,
        return_attention_scores=True,
        training=training,
    )
    context_only = layer(
        query, value, key=key, use_causal_mask=True, training=training
    )
    future = np.triu(np.ones((tq, tk), bool), k=1)
    for out in (weights, context, context_only):
        out = to_numpy(out)
        if out.ndim == 2:  # one decoder step: position 0
            out = out[:, None, :]
        assert np.all(out[:, future] == 0.0), out


def check_training_with_fully_masked_rows(layer, query, value):
    """One SGD step with a fully masked example: loss and weights finite.

    A masked row must give zero gradients, never NaN (which would poison
    every weight through the shared parameters).
    """
    value_mask = np.ones(value.shape[:2], bool)
    value_mask[0] = False  # the first example has no key at all
    q = keras.Input(query.shape[1:])
    v = keras.Input(value.shape[1:])
    m = keras.Input(value.shape[1:2], dtype="bool")
    model = keras.Model([q, v, m], layer(q, v, value_mask=m))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    target = np.ones(tuple(model([query, value, value_mask]).shape), "float32")
    loss = model.train_on_batch([query, value, value_mask], target)
    assert np.isfinite(loss)
    assert layer.trainable_weights
    for weight in layer.trainable_weights:
        assert np.all(np.isfinite(to_numpy(weight))), weight.path
