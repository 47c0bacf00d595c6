"""Hard (0/1) attention: top-k selection, REINFORCE sampling, Gumbel-softmax.

Xu et al. 2015, "Show, Attend and Tell" (stochastic hard attention trained
with REINFORCE, Williams 1992); straight-through Gumbel-softmax after Jang et
al. 2017 and Maddison et al. 2017.
"""

import math

import keras
from keras import ops

from layers.initializers import clone_initializer
from layers.initializers import serialize_weight_args
from layers.masking import masked_softmax
from layers.masking import merge_attention_masks
from layers.validation import check_choice
from layers.validation import check_positive_int
from layers.validation import check_positive_number
from layers.validation import check_seed

SCORES = ("scaled_dot", "additive", "dot")
MODES = ("sample", "gumbel")
_MODE_ALIASES = {
    "sample": "sample",
    "reinforce": "sample",
    "gumbel": "gumbel",
    "straight_through": "gumbel",
}
_MASKED = -1.0e30


@keras.saving.register_keras_serializable(package="attention_zoo")
class HardAttention(keras.layers.Layer):
    """Hard attention: attends to exactly `k` keys instead of a soft mix.

    Stochastic hard attention of Xu et al. 2015, "Show, Attend and Tell"
    (https://arxiv.org/abs/1502.03044). Scores `e = score(query, key)` define
    a categorical distribution `p = softmax(e)` over the unmasked keys; the
    context is the mean of the `k` selected values.

    - **Inference** (`training=False`): the top-`k` keys by score.
      Returned weights are exact: one-hot for `k=1`, `1/k` on each of the
      `k` selected keys otherwise (a k-hot selection normalised so the
      weights sum to 1 and the context is the selected values' mean).
    - **Training, `mode="sample"`** (alias `"reinforce"`): `k` keys are
      sampled from `p` without replacement (Gumbel-top-k). No gradient flows
      through the selection; call with `return_log_probs=True` to get the
      log-probability of the selection (Plackett-Luce, `[B, Tq]`,
      differentiable w.r.t. the scores) and train the scorer with REINFORCE
      (Williams 1992, "Simple statistical gradient-following algorithms"):
      `loss = -stop_gradient(reward - baseline) * log_probs`.
    - **Training, `mode="gumbel"`** (alias `"straight_through"`):
      straight-through Gumbel-softmax (Jang et al. 2017, "Categorical
      Reparameterization with Gumbel-Softmax",
      https://arxiv.org/abs/1611.01144; Maddison et al. 2017, "The Concrete
      Distribution", https://arxiv.org/abs/1611.00712): the forward pass uses
      the exact hard selection of the Gumbel-perturbed scores, the backward
      pass the gradient of `softmax((e + g) / temperature)`, so gradients
      reach the scorer directly.

    Masked keys are never selected; a query with no valid key (all masked,
    or itself masked) gets zero weights, zero context and log-probability 0.
    If fewer than `k` keys are valid, all valid keys are selected. Scores
    and log-probabilities are float32 under mixed precision. Sampling uses a
    `keras.random.SeedGenerator` (`seed`).

    Scores (one internal function, `_score`, so the project's score registry
    can replace it): `"scaled_dot"` (learned projections,
    `(q W_q).(k W_k) / sqrt(units)`), `"additive"` (Bahdanau,
    `v . tanh(q W_q + k W_k + b)`), `"dot"` (no weights, `q . k`, needs equal
    feature sizes).

    Args:
        units: size of the learned score projections; defaults to the key
            feature size. Unused by `"dot"`.
        score: `"scaled_dot"`, `"additive"` or `"dot"`.
        mode: training behaviour, `"sample"`/`"reinforce"` or
            `"gumbel"`/`"straight_through"`.
        k: number of keys selected per query (positive int).
        temperature: Gumbel-softmax temperature (`mode="gumbel"`), > 0.
        kernel_initializer: initializer of the score weights.
        kernel_regularizer: regularizer of the score weights.
        kernel_constraint: constraint of the score weights.
        seed: int seed of the sampling noise.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, Tq, Dq]` queries, or one query `[B, Dq]` (e.g. a decoder
            state; outputs then have no `Tq` axis).
        value: `[B, Tk, Dv]` values.
        key: optional `[B, Tk, Dk]` keys; defaults to `value`.
        query_mask: optional boolean `[B, Tq]`.
        value_mask: optional boolean `[B, Tk]`.
        attention_mask: optional boolean `[B, Tq, Tk]`.
        return_attention_scores: also return the weights `[B, Tq, Tk]`.
        use_causal_mask: add a causal mask.
        training: selects sampling (`mode`) vs the deterministic top-k.
        return_log_probs: also return the selection's log-probability
            `[B, Tq]` (any mode; at inference, that of the top-k selection).
        return_probabilities: also return the float32 distribution
            `p = softmax(e)` over the unmasked keys `[B, Tq, Tk]` that
            selections are drawn from (for an entropy bonus, or the
            expected context `p @ value` of Xu et al. 2015, §4.1).

    Returns:
        The context `[B, Tq, Dv]`; with `return_attention_scores`,
        `return_log_probs` and/or `return_probabilities`, a tuple
        `(context, weights, log_probs, probabilities)` holding the requested
        extras in that order.

    Example:

    >>> import numpy as np
    >>> features = keras.Input((49, 64))    # e.g. a 7x7 CNN feature map
    >>> state = keras.Input((32,))          # decoder state
    >>> context, weights, log_probs = HardAttention(units=32, seed=1)(
    ...     state, features, return_attention_scores=True,
    ...     return_log_probs=True)
    >>> model = keras.Model([state, features], [context, weights, log_probs])
    >>> c, w, lp = model([np.ones((2, 32)), np.ones((2, 49, 64))])
    >>> tuple(c.shape), tuple(w.shape), tuple(lp.shape)
    ((2, 64), (2, 49), (2,))
    """

    def __init__(
        self,
        units=None,
        score="scaled_dot",
        mode="sample",
        k=1,
        temperature=1.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        kernel_constraint=None,
        seed=None,
        **kwargs,
    ):
        check_positive_int("units", units, allow_none=True)
        check_choice("score", score, SCORES)
        check_choice("mode", mode, _MODE_ALIASES)
        check_positive_int("k", k)
        check_positive_number("temperature", temperature)
        check_seed("seed", seed)
        super().__init__(**kwargs)
        self.supports_masking = True
        self.units = units
        self.score = score
        self.mode = mode
        self.k = k
        self.temperature = float(temperature)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)

    def _add_kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = tuple(value_shape if key_shape is None else key_shape)
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        self._check_shapes(query_shape, value_shape, key_shape)
        q_dim, k_dim = query_shape[-1], key_shape[-1]
        units = self.units or k_dim
        if self.score == "dot":
            if q_dim != k_dim:
                raise ValueError(
                    "`score='dot'` needs query and key of the same feature "
                    f"size. Received: query.shape={query_shape}, "
                    f"key.shape={key_shape}"
                )
            return
        self.query_kernel = self._add_kernel("query_kernel", (q_dim, units))
        self.key_kernel = self._add_kernel("key_kernel", (k_dim, units))
        if self.score == "additive":
            self.score_bias = self.add_weight(
                name="score_bias", shape=(units,), initializer="zeros"
            )
            self.score_vector = self._add_kernel("score_vector", (units, 1))

    def _check_shapes(self, query_shape, value_shape, key_shape):
        names = f"query.shape={query_shape}, value.shape={value_shape}"
        if key_shape != value_shape:
            names += f", key.shape={key_shape}"
        if len(query_shape) not in (2, 3):
            raise ValueError(
                "`query` must have rank 2 ([batch, features]) or 3 ([batch, "
                f"length, features]). Received: {names}"
            )
        if len(value_shape) != 3 or len(key_shape) != 3:
            raise ValueError(
                "`value` and `key` must have rank 3 ([batch, length, "
                f"features]). Received: {names}"
            )
        batches = {s[0] for s in (query_shape, value_shape, key_shape)}
        if len(batches - {None}) > 1:
            raise ValueError(
                "`query`, `key` and `value` must have the same batch size. "
                f"Received: {names}"
            )
        if None not in (key_shape[1], value_shape[1]) and (
            key_shape[1] != value_shape[1]
        ):
            raise ValueError(
                "`key` and `value` must have the same length. "
                f"Received: {names}"
            )

    def _score(self, query, key):
        """Float32 logits `[B, Tq, Tk]` of `query` and `key`."""
        if self.score == "dot":
            return ops.cast(
                ops.matmul(query, ops.swapaxes(key, -1, -2)), "float32"
            )
        q = ops.matmul(query, ops.cast(self.query_kernel, query.dtype))
        k = ops.matmul(key, ops.cast(self.key_kernel, key.dtype))
        if self.score == "scaled_dot":
            logits = ops.matmul(q, ops.swapaxes(k, -1, -2))
            return ops.cast(logits, "float32") / math.sqrt(q.shape[-1])
        # additive: v . tanh(q + k + b) for every (query, key) pair.
        hidden = ops.tanh(
            ops.expand_dims(q, 2)
            + ops.expand_dims(k, 1)
            + ops.cast(self.score_bias, q.dtype)
        )
        logits = ops.matmul(hidden, ops.cast(self.score_vector, q.dtype))
        return ops.cast(ops.squeeze(logits, -1), "float32")

    def _gumbel(self, shape):
        uniform = keras.random.uniform(
            shape, minval=1e-7, maxval=1.0, seed=self._seed_generator
        )
        return -ops.log(-ops.log(uniform))

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        use_causal_mask=False,
        training=None,
        return_log_probs=False,
        return_probabilities=False,
    ):
        key = value if key is None else key
        self._check_shapes(
            tuple(query.shape), tuple(value.shape), tuple(key.shape)
        )
        single_query = len(query.shape) == 2
        if single_query:
            query = ops.expand_dims(query, 1)
            if query_mask is not None:
                query_mask = ops.expand_dims(query_mask, 1)
            if attention_mask is not None and len(attention_mask.shape) == 2:
                attention_mask = ops.expand_dims(attention_mask, 1)
        mask = merge_attention_masks(
            query,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )
        logits = self._score(query, key)  # [B, Tq, Tk] float32
        if mask is not None:
            mask = ops.broadcast_to(mask, ops.shape(logits))
            valid = mask
        else:
            valid = ops.ones_like(logits, dtype="bool")
        masked_logits = ops.where(valid, logits, _MASKED)

        sampling = bool(training)
        noise = self._gumbel(ops.shape(logits)) if sampling else None
        ranking = masked_logits if noise is None else masked_logits + noise
        ranking = ops.where(valid, ranking, _MASKED)
        num_keys = key.shape[1]
        k = self.k if num_keys is None else min(self.k, num_keys)
        _, top = ops.top_k(ranking, k=k)  # [B, Tq, k], best first
        picks = ops.one_hot(top, ops.shape(logits)[-1], dtype="float32")
        # picks: [B, Tq, k, Tk]; masked keys (fewer than k valid) dropped.
        picks = picks * ops.expand_dims(ops.cast(valid, "float32"), 2)
        selected = ops.sum(picks, axis=2)  # k-hot [B, Tq, Tk]
        count = ops.sum(selected, axis=-1, keepdims=True)
        hard = selected / ops.maximum(count, 1.0)

        weights = hard
        if sampling and _MODE_ALIASES[self.mode] == "gumbel":
            soft = masked_softmax(ranking / self.temperature, valid)
            # Exactly `hard` in the forward pass, d(soft) in the backward.
            weights = hard + (soft - ops.stop_gradient(soft))
        else:
            weights = ops.stop_gradient(hard)

        context = ops.matmul(ops.cast(weights, value.dtype), value)
        outputs = [context]
        if return_attention_scores:
            outputs.append(weights)
        if return_log_probs:
            outputs.append(self._log_probs(masked_logits, valid, picks))
        if return_probabilities:
            outputs.append(masked_softmax(masked_logits, valid))
        if single_query:
            outputs = [ops.squeeze(o, 1) for o in outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _log_probs(self, logits, valid, picks):
        """Plackett-Luce log-probability of drawing `picks` in order.

        `sum_i [e_{j_i} - logsumexp(e over valid keys not yet drawn)]`,
        float32 `[B, Tq]`, differentiable w.r.t. the logits.
        """
        remaining = ops.cast(valid, "float32")
        total = ops.zeros_like(logits[..., 0])
        for i in range(picks.shape[2]):
            pick = picks[:, :, i]  # one-hot [B, Tq, Tk], zero if none
            drawn = ops.sum(pick, axis=-1)  # 1 if a valid key was drawn
            chosen = ops.sum(pick * logits, axis=-1)
            available = ops.where(remaining > 0, logits, _MASKED)
            top = ops.stop_gradient(ops.max(available, axis=-1, keepdims=True))
            normaliser = ops.log(
                ops.maximum(
                    ops.sum(ops.exp(available - top) * remaining, axis=-1),
                    1e-30,
                )
            ) + ops.squeeze(top, -1)
            total = total + drawn * (chosen - normaliser)
            remaining = remaining * (1.0 - pick)
        return total

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return tuple(query_shape)[:-1] + (tuple(value_shape)[-1],)

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        use_causal_mask=False,
        training=None,
        return_log_probs=False,
        return_probabilities=False,
    ):
        q_shape, v_shape = tuple(query.shape), tuple(value.shape)
        outputs = [
            keras.KerasTensor(
                self.compute_output_shape(q_shape, v_shape),
                dtype=self.compute_dtype,
            )
        ]
        if return_attention_scores:
            outputs.append(
                keras.KerasTensor(q_shape[:-1] + (v_shape[1],), "float32")
            )
        if return_log_probs:
            outputs.append(keras.KerasTensor(q_shape[:-1], "float32"))
        if return_probabilities:
            outputs.append(
                keras.KerasTensor(q_shape[:-1] + (v_shape[1],), "float32")
            )
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def get_config(self):
        config = {
            "units": self.units,
            "score": self.score,
            "mode": self.mode,
            "k": self.k,
            "temperature": self.temperature,
            **serialize_weight_args(
                self,
                "kernel_initializer",
                "kernel_regularizer",
                "kernel_constraint",
            ),
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
