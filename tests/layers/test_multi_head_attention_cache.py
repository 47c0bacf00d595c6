"""`layers.MultiHeadAttention`'s static-shape decoding cache."""

import keras
import numpy as np
import pytest
from keras import ops

from layers import MultiHeadAttention


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def _rand(rng, *shape):
    return rng.normal(size=shape).astype("float32")


# === Incremental decoding cache ===


@pytest.mark.parametrize("kv_heads", [None, 1])
def test_cache_step_by_step_equals_full_causal_pass(kv_heads):
    rng = np.random.default_rng(12)
    x = _rand(rng, 2, 6, 8)
    layer = MultiHeadAttention(4, 3, num_key_value_heads=kv_heads)
    full = _np(layer(x, x, use_causal_mask=True))
    cache = layer.initialize_cache(2, 6)
    assert tuple(cache.shape) == (2, 2, 6, kv_heads or 4, 3)
    steps = []
    for i in range(6):
        token = x[:, i : i + 1]
        out, cache = layer(
            token,
            token,
            cache=cache,
            cache_update_index=i,
            use_causal_mask=True,
        )
        assert tuple(cache.shape) == (2, 2, 6, kv_heads or 4, 3)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)
    # A 4-token prompt then 2 single steps gives the same outputs.
    cache = layer.initialize_cache(2, 6)
    o1, cache = layer(
        x[:, :4],
        x[:, :4],
        cache=cache,
        cache_update_index=0,
        use_causal_mask=True,
    )
    o2, cache = layer(
        x[:, 4:5],
        x[:, 4:5],
        cache=cache,
        cache_update_index=4,
        use_causal_mask=True,
    )
    o3, s3, cache = layer(
        x[:, 5:],
        x[:, 5:],
        cache=cache,
        cache_update_index=5,
        use_causal_mask=True,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(
        np.concatenate([_np(o1), _np(o2), _np(o3)], 1), full, atol=1e-5
    )
    assert tuple(s3.shape) == (2, 4, 1, 6)
    np.testing.assert_allclose(_np(s3).sum(-1), 1.0, atol=1e-5)


def test_cache_unwritten_slots_are_never_attended():
    rng = np.random.default_rng(13)
    x = _rand(rng, 1, 3, 8)
    layer = MultiHeadAttention(2, 4)
    cache = layer.initialize_cache(1, 5)
    garbage = ops.ones_like(cache) * 50.0  # stale values in every slot
    _, w1, _ = layer(
        x[:, :1],
        x[:, :1],
        cache=cache,
        cache_update_index=0,
        return_attention_scores=True,
    )
    o2, w2, _ = layer(
        x[:, :1],
        x[:, :1],
        cache=garbage,
        cache_update_index=0,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(_np(w1), _np(w2), atol=1e-6)
    assert np.all(_np(w2)[..., 1:] == 0.0)


def test_cache_value_mask_indexes_cache_slots():
    rng = np.random.default_rng(14)
    x = _rand(rng, 2, 4, 8)
    left_pad = np.array([[False, True, True, True], [True] * 4])
    layer = MultiHeadAttention(2, 4)
    full = _np(layer(x, x, value_mask=left_pad, use_causal_mask=True))
    cache = layer.initialize_cache(2, 4)
    outs = []
    for i in range(4):
        out, cache = layer(
            x[:, i : i + 1],
            x[:, i : i + 1],
            cache=cache,
            cache_update_index=i,
            value_mask=left_pad,
            use_causal_mask=True,
        )
        outs.append(_np(out))
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=1e-5)
    assert np.all(full[0, 0] == 0.0)  # no valid key yet: zero output


def test_cross_attention_cache_is_computed_once():
    rng = np.random.default_rng(15)
    x, enc = _rand(rng, 2, 3, 8), _rand(rng, 2, 5, 8)
    emask = rng.random((2, 5)) > 0.3
    emask[:, 0] = True
    layer = MultiHeadAttention(2, 4)
    expected = _np(layer(x, enc, value_mask=emask))
    cache = layer.compute_key_value_cache(enc)
    assert tuple(cache.shape) == (2, 2, 5, 2, 4)
    out, same = layer(x, None, cache=cache, value_mask=emask)
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)
    np.testing.assert_array_equal(_np(same), _np(cache))


def _compile(fn):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    import jax

    return jax.jit(fn)


def test_cache_decoding_inside_a_compiled_loop():
    rng = np.random.default_rng(16)
    x = _rand(rng, 2, 6, 8)
    layer = MultiHeadAttention(4, 2, num_key_value_heads=2)
    full = _np(layer(x, x, use_causal_mask=True))

    def decode(x):
        def body(i, state):
            cache, outputs = state
            token = ops.slice(x, (0, i, 0), (2, 1, 8))
            out, cache = layer(
                token,
                token,
                cache=cache,
                cache_update_index=i,
                use_causal_mask=True,
            )
            return cache, ops.slice_update(outputs, (0, i, 0), out)

        init = (layer.initialize_cache(2, 6), ops.zeros((2, 6, 8)))
        return ops.fori_loop(0, 6, body, init)[1]

    np.testing.assert_allclose(_np(_compile(decode)(x)), full, atol=1e-5)
