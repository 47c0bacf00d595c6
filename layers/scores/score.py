"""Base class of the attention score layers (query/key compatibility).

Score functions follow Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation" (§3.1) and Bahdanau, Cho &
Bengio 2014, "Neural Machine Translation by Jointly Learning to Align and
Translate".
"""

import keras
from keras import ops


def _shape(shape):
    return tuple(None if d is None else int(d) for d in shape)


@keras.saving.register_keras_serializable(package="attention_zoo")
class Score(keras.layers.Layer):
    """Base class of attention scores: `(query, key) -> logits [B, Tq, Tk]`.

    A score layer maps queries `[B, Tq, Dq]` and keys `[B, Tk, Dk]` to
    unnormalised float32 logits `[B, Tq, Tk]` (float32 even under mixed
    precision). It works in two steps so that a decoder can compute the key
    side once per source sequence and reuse it at every step:
    `project_key(key)` (the "memory"), then
    `score_projected(query, projected_key)`; calling the layer does both.

    Subclasses implement `score_projected`, and `build` plus `project_key`
    when they have learned weights. Set `requires_equal_depth = True` when
    the score needs `Dq == Dk`.

    Args:
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: float tensor `[B, Tq, Dq]`.
        key: float tensor `[B, Tk, Dk]`.

    Returns:
        float32 logits `[B, Tq, Tk]`.

    Example:
    ```python
    import keras
    import numpy as np
    from keras import ops
    from layers import Attention
    from layers import Score

    @keras.saving.register_keras_serializable(package="my_scores")
    class NegativeDistanceScore(Score):
        requires_equal_depth = True

        def score_projected(self, query, projected_key):
            # [B, Tq, 1, D] - [B, 1, Tk, D] -> [B, Tq, Tk]
            diff = ops.expand_dims(query, 2) - ops.expand_dims(projected_key, 1)
            return -ops.sum(ops.square(ops.cast(diff, "float32")), axis=-1)

    attention = Attention(score=NegativeDistanceScore())
    context = attention(np.ones((2, 3, 4)), np.ones((2, 5, 4)))
    assert context.shape == (2, 3, 4)
    ```
    """

    requires_equal_depth = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self._query_dim = None
        self._key_dim = None

    def build(self, query_shape, key_shape):
        self.check_shapes(query_shape, key_shape)
        self._query_dim = query_shape[-1]
        self._key_dim = key_shape[-1]

    def call(self, query, key):
        self.check_shapes(query.shape, key.shape)
        return self.score(query, key)

    def score(self, query, key):
        """Float32 logits `[B, Tq, Tk]` of unprojected keys: by default
        `score_projected(query, project_key(key))`; a score whose weights
        can act on either side overrides it to take the cheaper one."""
        return self.score_projected(query, self.project_key(key))

    def project_key(self, key):
        """Returns the key side of the score, computed once per sequence.

        Args:
            key: `[B, Tk, Dk]` keys.

        Returns:
            A `[B, Tk, ...]` tensor to pass to `score_projected`.
        """
        return key

    def score_projected(self, query, projected_key):
        """Returns float32 logits `[B, Tq, Tk]` from `project_key`'s output.

        Args:
            query: `[B, Tq, Dq]` queries.
            projected_key: the output of `project_key(key)`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `score_projected`."
        )

    def check_shapes(self, query_shape, key_shape):
        """Raises `ValueError` when query and key shapes are incompatible."""
        q, k = _shape(query_shape), _shape(key_shape)
        name = type(self).__name__
        received = f"Received: query.shape={q} and key.shape={k}"
        if len(q) != 3:
            raise ValueError(
                f"{name}: `query` must have rank 3 "
                f"[batch, query_length, query_dim]. {received}"
            )
        if len(k) != 3:
            raise ValueError(
                f"{name}: `key` must have rank 3 "
                f"[batch, key_length, key_dim]. {received}"
            )
        if q[0] is not None and k[0] is not None and q[0] != k[0]:
            raise ValueError(
                f"{name}: `query` and `key` must have the same batch size. "
                f"{received}"
            )
        if (
            self.requires_equal_depth
            and q[-1] is not None
            and k[-1] is not None
            and q[-1] != k[-1]
        ):
            raise ValueError(
                f"{name} needs query and key of the same depth (last "
                f"dimension); use the 'general' or 'additive' score for "
                f"different depths. {received}"
            )
        for arg, dim, built in (
            ("query", q[-1], self._query_dim),
            ("key", k[-1], self._key_dim),
        ):
            if built is not None and dim is not None and dim != built:
                raise ValueError(
                    f"{name} was built for {arg} depth {built}, but got "
                    f"depth {dim}. {received}"
                )

    def compute_output_shape(self, query_shape, key_shape):
        self.check_shapes(query_shape, key_shape)
        return (query_shape[0], query_shape[1], key_shape[1])

    def compute_output_spec(self, query, key):
        shape = self.compute_output_shape(query.shape, key.shape)
        return keras.KerasTensor(shape, dtype="float32")


def as_float32(x):
    """Casts to float32 (scores are computed in float32 for stability)."""
    return ops.cast(x, "float32")
