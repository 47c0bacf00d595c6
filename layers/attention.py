"""Generic score / normalise / weighted-sum attention (Luong et al. 2015)."""

import keras

from layers.score_attention_base import ScoreAttentionBase
from layers.scores.registry import create_score


@keras.saving.register_keras_serializable(package="attention_zoo")
class Attention(ScoreAttentionBase):
    """Generic three-stage attention: score, normalise, weighted sum.

    `logits = score(query, key)` with any registered score (`"dot"`,
    `"scaled_dot"`, `"general"`, `"additive"`/`"concat"`, `"cosine"`,
    `"location"`) or a `Score` layer; `weights = probability_fn(logits)`
    over the unmasked keys (softmax, sparsemax or a sigmoid gate, computed in
    float32); `context = weights @ value`.

    Sparsemax (Martins & Astudillo 2016) gives a sparse distribution: its
    weights are exactly zero on low-scoring keys. The sigmoid gate scores
    each key independently (weights need not sum to one).

    References:
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".
        Bahdanau, Cho & Bengio 2014, "Neural Machine Translation by Jointly
        Learning to Align and Translate".
        Martins & Astudillo 2016, "From Softmax to Sparsemax: A Sparse Model
        of Attention and Multi-Label Classification".

    Args:
        score: a score name (see `layers.get_score`), a `Score` instance or
            a serialised score config.
        probability_fn: the normaliser, `"softmax"` (default), `"sparsemax"`
            or `"sigmoid"` (the same argument as in `BahdanauAttention` and
            `LuongAttention`; configs saved with the former name
            `normalize` still load).
        dropout: dropout rate applied to the attention weights in training.
        score_kwargs: dict of constructor arguments of the score when
            `score` is a name, e.g. `{"units": 32}` for `"additive"` or
            `{"max_length": 50}` for `"location"`.
        seed: optional int seed of the dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`, one decoder state `[B, Dq]`, or
            `[*batch, Tq, Dq]` with extra leading batch axes (e.g. the rows
            of a `[B, H, W, C]` feature map, as `keras.layers.Attention`).
        value: `[B, Tk, Dv]` (`[*batch, Tk, Dv]`).
        key: optional `[B, Tk, Dk]`; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`[B]` for a 2-D query);
            masked queries get zero weights and a zero context. Filled
            automatically from the query's Keras mask.
        value_mask: optional boolean `[B, Tk]`, `True` = may attend. Filled
            automatically from the value's Keras mask.
        attention_mask: optional boolean `[B, Tq, Tk]` (`[B, Tk]` for a 2-D
            query).
        return_attention_scores: also return the weights.
        use_causal_mask: forbid query `i` from attending keys
            `j > query_position + i`.
        training: whether dropout is active.
        projected_key: optional output of `project_key(key)`, computed once
            per source sequence when attending step by step.
        query_position: position of the first query on the key axis (int or
            `[B]` ints, default 0), e.g. the step when decoding one state at
            a time with a causal mask.

    Returns:
        The context `[B, Tq, Dv]` (`[B, Dv]` for a 2-D query) in the compute
        dtype and, with `return_attention_scores=True`, the float32 weights
        `[B, Tq, Tk]` (`[B, Tk]`), taken before dropout. Queries without any
        key to attend get zero weights and a zero context.

    Example:
    ```python
    import keras
    import numpy as np
    from layers import Attention

    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(100, 16, mask_zero=True)(tokens)
    context = Attention(score="scaled_dot", probability_fn="sparsemax")(x, x)
    model = keras.Model(tokens, context)
    out = model(np.array([[5, 8, 2, 0, 0]]))
    assert out.shape == (1, 5, 16)
    ```
    """

    def __init__(
        self,
        score="dot",
        probability_fn="softmax",
        dropout=0.0,
        score_kwargs=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            probability_fn=probability_fn, dropout=dropout, seed=seed, **kwargs
        )
        if score_kwargs is not None and not isinstance(score_kwargs, dict):
            raise ValueError(
                "`score_kwargs` must be a dict or None. "
                f"Received: score_kwargs={score_kwargs!r}"
            )
        self.score_layer = create_score(
            score, score_kwargs, dtype=self.dtype_policy, name="score"
        )
        # A score given as a layer or a config is this very layer, so that
        # saved weights are found again when the config is reloaded.
        self.score = score if isinstance(score, str) else self.score_layer
        self.score_kwargs = score_kwargs

    def get_config(self):
        score = self.score
        if not isinstance(score, str):
            score = keras.saving.serialize_keras_object(self.score_layer)
        config = {"score": score, "score_kwargs": self.score_kwargs}
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "normalize" in config:
            # Configs saved before the normaliser was called
            # `probability_fn` (as in Bahdanau/Luong) still load.
            config["probability_fn"] = config.pop("normalize")
        return super().from_config(config)
