"""Luong global and local (local-m, local-p) attention (Luong et al. 2015)."""

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.masking import normalize_scores
from layers.naming import UnknownNameError
from layers.naming import did_you_mean
from layers.score_attention_base import ScoreAttentionBase
from layers.scores.registry import create_score
from layers.scores.score import as_float32
from layers.validation import check_bool
from layers.validation import check_choice
from layers.validation import check_positive_int

LUONG_SCORES = ("dot", "general", "concat", "location")
LOCAL_MODES = ("monotonic", "predictive")


@keras.saving.register_keras_serializable(package="attention_zoo")
class LuongAttention(ScoreAttentionBase):
    """Luong attention: global, or local around an aligned position.

    Global attention (Luong, Pham & Manning 2015, §3.1) scores every source
    key with one of Luong's scores -- `"dot"` (`q . k`), `"general"`
    (`q^T W_a k`), `"concat"` (`v^T tanh(W [q; k])`, needs `units`) or
    `"location"` (`W_a q`, needs `max_length`) -- and normalises over the
    unmasked keys. `scale=True` multiplies the scores by a learned scalar
    `g` (initialised to 1), as tensorflow-addons' `LuongAttention`.

    Local attention (§3.2) is enabled by `window=D`: query `t` only attends
    the keys `s` with `|s - p_t| <= D` (a window of `2D + 1` keys):
    - `local_mode="monotonic"` (local-m): `p_t = t`, the query's own
      position (plus `query_position` when decoding step by step);
    - `local_mode="predictive"` (local-p): `p_t = S * sigmoid(v_p^T
      tanh(W_p h_t))` with `S` the unmasked source length, and the
      alignment is multiplied by the Gaussian `exp(-(s - p_t)^2 / (2
      sigma^2))`, `sigma = D / 2`, so local-p weights sum to at most one.
    `W_p` has `units` hidden units (default: the query depth).

    Made for decoders: the query may be one decoder state `[B, Dq]` (then
    the context is `[B, Dv]` and the weights `[B, Tk]`) or a sequence
    `[B, Tq, Dq]`. To attend step by step over the same source, compute the
    key projection ("memory") once with `project_key(key)` and pass it to
    every step as `projected_key=` (with local-m, also pass the step as
    `query_position=`).

    Reference:
        Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
        Neural Machine Translation".

    Args:
        score: `"dot"` (default), `"general"`, `"concat"` or `"location"`.
        units: hidden size of the `"concat"` score (required by it) and of
            the local-p position predictor (default: query depth).
        max_length: maximum number of keys, required by `"location"`.
        scale: whether to multiply the scores by a learned scalar.
        window: `None` (global attention) or the half-width `D` of the local
            window, a positive int.
        local_mode: `"predictive"` (local-p, default) or `"monotonic"`
            (local-m); used only with `window`.
        probability_fn: `"softmax"` (default), `"sparsemax"` (Martins &
            Astudillo 2016) or `"sigmoid"`.
        dropout: dropout rate applied to the attention weights in training.
        kernel_initializer: initializer of the learned matrices.
        kernel_regularizer: optional regularizer of the learned matrices.
        seed: optional int seed of the dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]`, or one decoder state `[B, Dq]`.
        value: `[B, Tk, Dv]` (the encoder outputs).
        key: optional `[B, Tk, Dk]`; defaults to `value`.
        query_mask: optional boolean `[B, Tq]` (`[B]` for a 2-D query).
        value_mask: optional boolean `[B, Tk]`, `True` = may attend. Filled
            automatically from the value's Keras mask; also gives local-p's
            source length `S`.
        attention_mask: optional boolean `[B, Tq, Tk]` (`[B, Tk]` for a 2-D
            query).
        return_attention_scores: also return the weights.
        use_causal_mask: forbid query `i` from attending keys
            `j > query_position + i`.
        training: whether dropout is active.
        projected_key: optional output of `project_key(key)`.
        query_position: source position of the first query (int, or int
            tensor `[B]`, default 0): the causal mask's offset and, with
            local-m, the window centre (query `i` is aligned to
            `query_position + i`); pass the decoding step when the query is
            one decoder state.

    Returns:
        The context `[B, Tq, Dv]` (`[B, Dv]` for a 2-D query) and, with
        `return_attention_scores=True`, the float32 weights `[B, Tq, Tk]`
        (`[B, Tk]`), taken before dropout.

    Example:
    ```python
    import numpy as np
    from layers import LuongAttention

    attention = LuongAttention(score="general", scale=True, window=2)
    encoder_outputs = np.random.rand(2, 9, 16).astype("float32")
    decoder_outputs = np.random.rand(2, 4, 8).astype("float32")
    context, weights = attention(
        decoder_outputs, encoder_outputs, return_attention_scores=True
    )
    assert context.shape == (2, 4, 16) and weights.shape == (2, 4, 9)
    ```
    """

    def __init__(
        self,
        score="dot",
        units=None,
        max_length=None,
        scale=False,
        window=None,
        local_mode="predictive",
        probability_fn="softmax",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            probability_fn=probability_fn,
            dropout=dropout,
            seed=seed,
            **kwargs,
        )
        if not isinstance(score, str) or score not in LUONG_SCORES:
            raise UnknownNameError(
                f"`score` must be one of {LUONG_SCORES}."
                f"{did_you_mean(score, LUONG_SCORES)} "
                f"Received: score={score!r}"
            )
        check_positive_int("units", units, allow_none=True)
        if units is None and score == "concat":
            raise ValueError(
                "The 'concat' score needs `units`, a positive integer. "
                "Received: units=None"
            )
        check_positive_int("max_length", max_length, allow_none=True)
        if max_length is None and score == "location":
            raise ValueError(
                "The 'location' score needs `max_length`, the maximum "
                "number of keys. Received: max_length=None"
            )
        check_bool("scale", scale)
        check_positive_int("window", window, allow_none=True)
        check_choice("local_mode", local_mode, LOCAL_MODES)
        self.score = score
        self.units = units
        self.max_length = max_length
        self.scale = scale
        self.window = window
        self.local_mode = local_mode
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        score_kwargs = {}
        if score in ("general", "concat", "location"):
            score_kwargs["kernel_initializer"] = clone_initializer(
                self.kernel_initializer
            )
            score_kwargs["kernel_regularizer"] = self.kernel_regularizer
        if score == "concat":
            score_kwargs["units"] = units
        if score == "location":
            score_kwargs["max_length"] = max_length
        self.score_layer = create_score(
            score, score_kwargs, dtype=self.dtype_policy, name=f"{score}_score"
        )

    def _build_extra(self, query_shape, key_shape):
        if self.scale:
            self.scale_weight = self.add_weight(
                name="scale", shape=(), initializer="ones"
            )
        if self.window is not None and self.local_mode == "predictive":
            units = self.units or query_shape[-1]
            self.position_dense = keras.layers.Dense(
                units,
                use_bias=False,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name="position_dense",
            )
            self.position_dense.build(query_shape)
            self.position_v = self.add_weight(
                name="position_v",
                shape=(units,),
                initializer=clone_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer,
            )

    def _compute_logits(self, query, projected_key, key):
        logits = super()._compute_logits(query, projected_key, key)
        if self.scale:
            logits = logits * as_float32(self.scale_weight)
        return logits

    def _aligned_positions(self, query, key_length, value_mask, query_position):
        """Window centres `p_t`, float32 `[B or 1, Tq, 1]`.

        local-m: `p_t = query_position + t`; local-p: `p_t = S *
        sigmoid(v_p^T tanh(W_p h_t))`, `S` the number of unmasked keys
        (from `value_mask`, else `key_length`).
        """
        if self.local_mode == "monotonic":
            positions = ops.arange(ops.shape(query)[1], dtype="float32")
            positions = ops.reshape(positions, (1, -1, 1))
            if query_position is not None:
                offset = ops.cast(query_position, "float32")
                positions = positions + ops.reshape(offset, (-1, 1, 1))
            return positions
        # local-p, Luong et al. 2015 eq. 9.
        hidden = ops.tanh(as_float32(self.position_dense(query)))
        logit = ops.sum(hidden * as_float32(self.position_v), axis=-1)
        if value_mask is None:
            length = ops.cast(key_length, "float32")
        else:
            length = ops.sum(ops.cast(value_mask, "float32"), axis=-1)
            length = ops.reshape(length, (-1, 1))
        return ops.expand_dims(length * ops.sigmoid(logit), -1)

    def _compute_weights(
        self, logits, query, mask, value_mask, query_position=None
    ):
        if self.window is None:
            return normalize_scores(logits, mask, self.probability_fn)
        key_length = ops.shape(logits)[-1]
        keys = ops.arange(key_length, dtype="float32")
        keys = ops.reshape(keys, (1, 1, -1))  # [1, 1, Tk]
        centres = self._aligned_positions(
            query, key_length, value_mask, query_position
        )
        distance = keys - centres  # [B or 1, Tq, Tk]
        in_window = ops.less_equal(ops.abs(distance), float(self.window))
        mask = in_window if mask is None else ops.logical_and(mask, in_window)
        weights = normalize_scores(logits, mask, self.probability_fn)
        if self.local_mode == "predictive":
            sigma = self.window / 2.0
            weights = weights * ops.exp(-ops.square(distance) / (2 * sigma**2))
        return weights

    def get_config(self):
        config = {
            "score": self.score,
            "units": self.units,
            "max_length": self.max_length,
            "scale": self.scale,
            "window": self.window,
            "local_mode": self.local_mode,
            **serialize_weight_args(
                self, "kernel_initializer", "kernel_regularizer"
            ),
        }
        return {**super().get_config(), **config}
