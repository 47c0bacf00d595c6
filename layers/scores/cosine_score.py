"""Cosine-similarity score `q . k / (|q| |k|)` (Graves et al. 2014)."""

import keras
from keras import ops

from layers.scores.score import Score
from layers.scores.score import as_float32

# Norms are clipped below by this value: zero vectors score 0, never NaN.
_EPSILON = 1e-12


def _l2_normalize(x):
    squares = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squares, _EPSILON**2))


@keras.saving.register_keras_serializable(package="attention_zoo")
class CosineScore(Score):
    """Cosine-similarity score `q . k / (|q| |k|)`, in `[-1, 1]`.

    Content-based addressing of Graves, Wayne & Danihelka 2014 ("Neural
    Turing Machines"), the `cosine` alignment of the attention surveys
    following Luong, Pham & Manning 2015. No weights; query and key need the
    same depth. A zero query or key scores 0 (never NaN).

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, D]`.
        key: `[B, Tk, D]`.

    Returns:
        float32 logits `[B, Tq, Tk]` in `[-1, 1]`.

    Example:
    ```python
    import numpy as np
    from layers import CosineScore

    logits = CosineScore()(np.ones((1, 1, 3)), 2 * np.ones((1, 2, 3)))
    assert np.allclose(logits, 1.0)
    ```
    """

    requires_equal_depth = True

    def project_key(self, key):
        return _l2_normalize(as_float32(key))

    def score_projected(self, query, projected_key):
        query = _l2_normalize(as_float32(query))
        return ops.matmul(query, ops.swapaxes(as_float32(projected_key), 1, 2))
