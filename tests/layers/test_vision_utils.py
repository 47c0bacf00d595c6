"""Tests of the shared vision helpers' custom-gradient pooling."""

import numpy as np
import pytest
from keras import ops

from layers import vision_utils
from tests.testing import compute_gradients


def _weighted(pool, axis, w_mean, w_max):
    # A loss whose upstream gradients differ per pooled element.
    def fn(x):
        mean, peak = pool(x, axis)
        return ops.sin(mean) * w_mean + ops.cos(peak) * w_max

    return fn


def _plain(x, axis):
    return (
        ops.mean(x, axis=axis, keepdims=True),
        ops.max(x, axis=axis, keepdims=True),
    )


@pytest.mark.parametrize(
    "shape,axis",
    [
        ((2, 5, 4, 6), -1),
        ((2, 5, 4, 6), (1, 2)),
        ((2, 6, 5, 4), 1),
        ((2, 6, 5, 4), (2, 3)),
    ],
)
def test_mean_and_max_match_plain_ops(shape, axis):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    mean, peak = vision_utils.mean_and_max(ops.convert_to_tensor(x), axis)
    expected_mean, expected_peak = _plain(ops.convert_to_tensor(x), axis)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(mean), ops.convert_to_numpy(expected_mean)
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(peak), ops.convert_to_numpy(expected_peak)
    )
    pooled_shape = ops.convert_to_numpy(mean).shape
    w_mean = rng.normal(size=pooled_shape).astype("float32")
    w_max = rng.normal(size=pooled_shape).astype("float32")
    (grad,) = compute_gradients(
        _weighted(vision_utils.mean_and_max, axis, w_mean, w_max), [x]
    )
    (expected,) = compute_gradients(_weighted(_plain, axis, w_mean, w_max), [x])
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_tied_maxima_share_the_gradient_as_plain_max_does():
    # Zeros after a ReLU tie everywhere: the max's gradient is split
    # equally, so each pooled value still passes on exactly its upstream.
    x = np.zeros((1, 2, 2, 4), "float32")
    x[0, 0, 0, 1] = 1.0

    def peak_only(x):
        return vision_utils.mean_and_max(x, -1)[1]

    (grad,) = compute_gradients(peak_only, [x])
    (expected,) = compute_gradients(lambda x: _plain(x, -1)[1], [x])
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    np.testing.assert_allclose(grad[0, 0, 0], [0, 1, 0, 0])
    np.testing.assert_allclose(grad[0, 1, 1], [0.25] * 4)
    np.testing.assert_allclose(grad.sum(axis=-1), np.ones((1, 2, 2)))
