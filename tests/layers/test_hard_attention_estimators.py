"""The gradient estimators of `HardAttention` on problems with a known
answer.

REINFORCE (`mode="sample"`): for a reward `r(s)` of the selected keys, the
score-function estimate `mean_n (r(s_n) - b) d log p(s_n)` must be an
unbiased estimate of `d E_p[r(s)]`, which is computed exactly here by
enumerating the selections (one key; two keys drawn without replacement,
Plackett-Luce). Straight-through Gumbel-softmax (`mode="gumbel"`): the
forward selection is exactly one-hot while the gradient reaches the scorer
through the relaxed selection.
"""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from layers import HardAttention
from tests.testing import layer_gradients

NUM_KEYS = 4
QUERY = np.array([[[0.3, -0.8, 0.5]]], "float32")  # [1, 1, 3]
KEYS = np.array(
    [[[1.0, 0.2, -0.4], [-0.6, 0.9, 0.1], [0.2, -0.5, 0.8], [0.7, 0.7, 0.7]]],
    "float32",
)  # [1, 4, 3]
REWARDS = np.array([1.0, -2.0, 0.5, 3.0], "float32")  # r of each key


def _exact_expected_reward(probs, k):
    """`E[mean of the rewards of the k drawn keys]` from the probabilities
    `[1, 1, L]`, by enumerating the ordered draws without replacement."""
    p = probs[0, 0]
    total = ops.zeros(())
    for draw in itertools.permutations(range(NUM_KEYS), k):
        chance, left = ops.ones(()), ops.ones(())
        for key in draw:
            chance = chance * p[key] / left
            left = left - p[key]
        total = total + chance * float(np.mean(REWARDS[list(draw)]))
    return total


@pytest.mark.tf_only  # fresh samples at every call (the seed generator)
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("baseline", [0.0, 1.5])
def test_reinforce_gradient_is_unbiased(k, baseline):
    layer = HardAttention(units=3, score="scaled_dot", k=k, seed=3)
    values = REWARDS.reshape(1, NUM_KEYS, 1)
    layer(QUERY, values, key=KEYS)

    def expected_reward():
        _, probs = layer(
            QUERY, values, key=KEYS, return_probabilities=True, training=False
        )
        return _exact_expected_reward(probs, k)

    exact = np.concatenate(
        [g.ravel() for g in layer_gradients(layer, expected_reward)]
    )
    assert np.linalg.norm(exact) > 0.05  # a problem with a real gradient

    batch, rounds = 2000, 20
    queries = np.repeat(QUERY, batch, axis=0)
    keys = np.repeat(KEYS, batch, axis=0)
    tiled_values = np.repeat(values, batch, axis=0)

    def surrogate():
        # The context is the mean reward of the drawn keys: r(s).
        context, log_probs = layer(
            queries,
            tiled_values,
            key=keys,
            return_log_probs=True,
            training=True,
        )
        advantage = ops.stop_gradient(context[..., 0]) - baseline
        return advantage * log_probs / batch

    estimates = np.stack(
        [
            np.concatenate(
                [g.ravel() for g in layer_gradients(layer, surrogate)]
            )
            for _ in range(rounds)
        ]
    )
    mean = estimates.mean(0)
    standard_error = estimates.std(0, ddof=1) / np.sqrt(rounds)
    # Unbiased: within 5 standard errors of the exact gradient (and the
    # estimate is not trivially zero).
    assert np.all(np.abs(mean - exact) <= 5 * standard_error + 1e-3), (
        mean,
        exact,
        standard_error,
    )
    np.testing.assert_allclose(mean, exact, atol=0.1 * np.abs(exact).max())


def test_gumbel_straight_through_gradients_flow():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(8, 2, 3)).astype("float32")
    values = rng.normal(size=(8, 5, 4)).astype("float32")
    target = rng.normal(size=(8, 2, 4)).astype("float32")
    gumbel = HardAttention(units=3, mode="gumbel", temperature=0.5, seed=1)
    sample = HardAttention(units=3, mode="sample", seed=1)
    for layer in (gumbel, sample):
        layer(query, values)
        layer.set_weights(gumbel.get_weights())

    def loss(layer):
        return lambda: ops.square(layer(query, values, training=True) - target)

    # The forward pass is an exact one-hot selection ...
    context, weights = gumbel(
        query, values, training=True, return_attention_scores=True
    )
    weights = keras.ops.convert_to_numpy(weights)
    assert set(np.unique(weights)) <= {0.0, 1.0}
    np.testing.assert_array_equal(weights.sum(-1), 1.0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(context),
        np.einsum("bqk,bkd->bqd", weights, values),
        atol=1e-6,
    )
    # ... and a loss of the context reaches every score weight through the
    # relaxed selection, where the sampled (REINFORCE) selection passes
    # none.
    straight_through = layer_gradients(gumbel, loss(gumbel))
    assert all(np.all(np.isfinite(g)) for g in straight_through)
    assert all(np.linalg.norm(g) > 1e-4 for g in straight_through)
    assert all(np.all(g == 0.0) for g in layer_gradients(sample, loss(sample)))
