"""Scaled dot-product score `q . k / sqrt(d)` (Vaswani et al. 2017)."""

import keras
from keras import ops

from layers.scores.score import Score
from layers.scores.score import as_float32


@keras.saving.register_keras_serializable(package="attention_zoo")
class ScaledDotScore(Score):
    """Scaled dot-product score `q . k / sqrt(d)`, `d` the key depth.

    Luong's `dot` score (Luong, Pham & Manning 2015) divided by `sqrt(d)` so
    that the logits' variance does not grow with the depth (Vaswani et al.
    2017, "Attention Is All You Need"). No weights; query and key need the
    same depth.

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, D]`.
        key: `[B, Tk, D]`.

    Returns:
        float32 logits `[B, Tq, Tk]`.

    Example:
    ```python
    import numpy as np
    from layers import ScaledDotScore

    logits = ScaledDotScore()(np.ones((2, 3, 4)), np.ones((2, 5, 4)))
    assert np.allclose(logits, 2.0)  # 4 / sqrt(4)
    ```
    """

    requires_equal_depth = True

    def score_projected(self, query, projected_key):
        depth = ops.cast(ops.shape(projected_key)[-1], "float32")
        logits = ops.matmul(
            as_float32(query), ops.swapaxes(as_float32(projected_key), 1, 2)
        )
        return logits / ops.sqrt(depth)
