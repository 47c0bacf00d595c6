"""Luong's `dot` score: `score(q, k) = q . k` (Luong et al. 2015, §3.1)."""

import keras
from keras import ops

from layers.scores.score import Score
from layers.scores.score import as_float32


@keras.saving.register_keras_serializable(package="attention_zoo")
class DotScore(Score):
    """Dot-product score `q . k` (Luong, Pham & Manning 2015, eq. 8).

    No weights. Query and key need the same depth.

    Reference:
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

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
    from layers import DotScore

    logits = DotScore()(np.ones((2, 3, 4)), np.ones((2, 5, 4)))
    assert logits.shape == (2, 3, 5)
    ```
    """

    requires_equal_depth = True

    def score_projected(self, query, projected_key):
        # [B, Tq, D] x [B, D, Tk] -> [B, Tq, Tk]
        return ops.matmul(
            as_float32(query), ops.swapaxes(as_float32(projected_key), 1, 2)
        )
