"""Scaled dot-product score `q . k / sqrt(d)` (Vaswani et al. 2017)."""

import keras
from keras import ops

from layers.scores.dot_score import DotScore


@keras.saving.register_keras_serializable(package="attention_zoo")
class ScaledDotScore(DotScore):
    """Scaled dot-product score `q . k / sqrt(d)`, `d` the key depth.

    Luong's `dot` score (Luong, Pham & Manning 2015) divided by `sqrt(d)` so
    that the logits' variance does not grow with the depth (Vaswani et al.
    2017, "Attention Is All You Need"). No weights; query and key need the
    same depth.

    Args, call arguments and returns: those of `DotScore`, whose logits
    this score scales.

    Example:
    ```python
    import numpy as np
    from layers import ScaledDotScore

    logits = ScaledDotScore()(np.ones((2, 3, 4)), np.ones((2, 5, 4)))
    assert np.allclose(logits, 2.0)  # 4 / sqrt(4)
    ```
    """

    def score_projected(self, query, projected_key):
        depth = ops.cast(ops.shape(projected_key)[-1], "float32")
        return super().score_projected(query, projected_key) / ops.sqrt(depth)
