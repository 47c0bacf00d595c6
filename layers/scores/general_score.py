"""Luong's `general` (bilinear) score `q^T W_a k` (Luong et al. 2015)."""

import keras
from keras import ops

from layers.scores.learned_score import LearnedScore
from layers.scores.score import as_float32


@keras.saving.register_keras_serializable(package="attention_zoo")
class GeneralScore(LearnedScore):
    """Bilinear score `q^T W_a k` with a learned `W_a` (`[Dq, Dk]`).

    Luong, Pham & Manning 2015, eq. 8 ("general"). Query and key may have
    different depths. `project_key` computes `k W_a^T` (`[B, Tk, Dq]`) once,
    so a decoder pays one dot product per step.

    Reference:
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        kernel_initializer: initializer of `W_a`.
        kernel_regularizer: optional regularizer of `W_a`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`.
        key: `[B, Tk, Dk]`.

    Returns:
        float32 logits `[B, Tq, Tk]`.

    Example:
    ```python
    import numpy as np
    from layers import GeneralScore

    score = GeneralScore()
    logits = score(np.ones((2, 3, 4)), np.ones((2, 5, 6)))
    assert logits.shape == (2, 3, 5) and score.kernel.shape == (4, 6)
    ```
    """

    def build(self, query_shape, key_shape):
        super().build(query_shape, key_shape)
        self.kernel = self.add_kernel(
            "kernel", (query_shape[-1], key_shape[-1])
        )

    def project_key(self, key):
        # [B, Tk, Dk] x [Dk, Dq] -> [B, Tk, Dq]
        return ops.matmul(key, ops.transpose(self.kernel))

    def score(self, query, key):
        # q^T W k: project the shorter of the two sequences (one decoder
        # step over a memory: the query, `Tk` times less work than the
        # keys).
        t_q, t_k = query.shape[1], key.shape[1]
        if t_q is not None and t_k is not None and t_q < t_k:
            projected_query = ops.matmul(as_float32(query), self.kernel)
            return ops.matmul(
                projected_query, ops.swapaxes(as_float32(key), 1, 2)
            )
        return super().score(query, key)

    def score_projected(self, query, projected_key):
        return ops.matmul(
            as_float32(query), ops.swapaxes(as_float32(projected_key), 1, 2)
        )
