"""Tests of PositionEmbedding."""

import numpy as np
import pytest

from layers import PositionEmbedding
from tests.layers import vision_reference as ref
from tests.testing import run_layer_test


def _tokens(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "use_class_token,expected,weights",
    [(False, (2, 5, 4), 1), (True, (2, 6, 4), 2)],
)
def test_layer_battery(use_class_token, expected, weights):
    run_layer_test(
        PositionEmbedding,
        {"use_class_token": use_class_token},
        _tokens((2, 5, 4)),
        expected,
        expected_num_trainable_weights=weights,
    )


def test_adds_one_learned_vector_per_position():
    x = _tokens((2, 5, 4))
    layer = PositionEmbedding()
    out = ref.to_numpy(layer(x))
    table = ref.weight(layer.position_embedding)
    assert table.shape == (5, 4) and np.abs(table).max() > 0
    np.testing.assert_allclose(out, x + table[None], atol=1e-6)


def test_class_token_is_prepended_with_its_own_position():
    x = _tokens((3, 5, 4))
    layer = PositionEmbedding(use_class_token=True)
    out = ref.to_numpy(layer(x))
    table = ref.weight(layer.position_embedding)
    cls = ref.weight(layer.class_token)[0, 0]
    assert table.shape == (6, 4)
    np.testing.assert_allclose(out[:, 0], np.tile(cls + table[0], (3, 1)))
    np.testing.assert_allclose(out[:, 1:], x + table[None, 1:], atol=1e-6)


def test_bad_arguments_rank_and_length():
    with pytest.raises(ValueError, match="use_class_token='yes'"):
        PositionEmbedding(use_class_token="yes")
    with pytest.raises(ValueError, match=r"rank-3.*inputs.shape"):
        PositionEmbedding()(np.zeros((2, 4), "float32"))
    layer = PositionEmbedding()
    layer(np.zeros((1, 4, 3), "float32"))
    with pytest.raises(ValueError, match="4"):
        layer(np.zeros((1, 6, 3), "float32"))
