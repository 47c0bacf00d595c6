"""The LSTM decoder of Show, Attend and Tell (Xu et al. 2015), soft or hard.

Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel & Bengio 2015, "Show,
Attend and Tell: Neural Image Caption Generation with Visual Attention"
(ICML), sections 3.1.2 (decoder), 4.1 (stochastic hard attention, REINFORCE)
and 4.2 (deterministic soft attention, the gating scalar beta and the
doubly stochastic regulariser).
"""

import keras
from keras import ops

from layers import BahdanauAttention
from layers import HardAttention
from layers.validation import check_choice
from layers.validation import check_non_negative_number
from layers.validation import check_positive_int
from layers.validation import check_rate
from zoo.captioning.show_attend_tell_objective import HardAttentionObjective
from zoo.captioning.show_attend_tell_objective import check_options

ATTENTIONS = ("soft", "hard")


def target_out_from_target_in(target_in, pad_id, end_id):
    """`[START] w1 .. wn` (0-padded) -> `w1 .. wn [END]` (0-padded).

    The teacher-forcing convention of the captioning and translation
    pipelines: the targets are the inputs shifted left, with the end token
    where the input's padding starts.
    """
    mask = ops.not_equal(target_in, pad_id)
    following = ops.concatenate(
        [target_in[:, 1:], ops.full_like(target_in[:, :1], pad_id)], axis=1
    )
    target_out = ops.where(
        ops.not_equal(following, pad_id),
        following,
        ops.full_like(following, end_id),
    )
    return ops.where(mask, target_out, ops.full_like(target_out, pad_id))


@keras.saving.register_keras_serializable(package="attention_zoo")
class ShowAttendTellDecoder(keras.layers.Layer):
    """LSTM caption decoder attending over annotation vectors (soft/hard).

    At step `t`, with the previous word `y_{t-1}` and state `h_{t-1}`
    (Xu et al. 2015, eqs. 4-7 and 13):

    - `alpha_t = softmax(f_att(a, h_{t-1}))` over the `L` annotation
      vectors `a` (`f_att` the additive score of `BahdanauAttention`);
    - soft (`attention="soft"`): the context is `sum_i alpha_ti a_i`;
      hard (`attention="hard"`): one location `s_t ~ Multinoulli(alpha_t)`
      is sampled in training (`HardAttention` in its REINFORCE sampling
      mode), its vector is the context; at inference the argmax location;
    - the gating scalar `beta_t = sigmoid(f_beta(h_{t-1}))` scales the
      context: `z_t = beta_t * context`;
    - `h_t = LSTM([E y_{t-1}; z_t], h_{t-1})`, with `h_0, c_0` from tanh
      MLPs of the mean annotation vector;
    - the deep output `logits_t = L_o(E y_{t-1} + L_h h_t + L_z z_t)`.

    Training losses added with `add_loss` (the cross-entropy of the caption
    is the compiled loss):

    - soft: the doubly stochastic regulariser
      `attention_regularizer * sum_i (1 - sum_t alpha_ti)^2` (eq. 14, summed
      over the caption's real steps, averaged over the batch);
    - hard: the loss of `HardAttentionObjective`: with
      `estimator="reinforce"` the REINFORCE term of eq. 12 (reward: the
      log-likelihood of the caption's words under the sampled locations;
      with `baseline="learned"` per-step rewards to go, normalised, minus a
      baseline learned from the state `h_{t-1}`; with
      `baseline="moving_average"` the paper's moving average) and an
      entropy bonus; with `estimator="gumbel"` the locations are
      straight-through Gumbel-softmax samples (`HardAttention`'s
      `mode="gumbel"`: one-hot forward, the relaxed softmax's gradient
      backward), so only the entropy bonus is added. With probability
      `expectation_probability` an image's sampled contexts are replaced
      by their expectation `alpha_t @ a` (the variance reduction of §4.1);
      a curriculum (`anneal_steps`) starts that probability at 1 (soft
      attention) and lowers it linearly. The scores read the annotation
      vectors with their gradient unless `stop_key_gradient` (the
      paper's encoder, a pretrained VGG, was not trained at all).

    The targets of the reward are derived from `target_in` (shifted left,
    end token appended: the pipelines' teacher-forcing convention).

    References:
        Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption
        Generation with Visual Attention", https://arxiv.org/abs/1502.03044.
        Williams 1992, "Simple statistical gradient-following algorithms
        for connectionist reinforcement learning".

    Args:
        vocab_size: output vocabulary size (id `pad_id` = padding).
        embedding_dim: word embedding size `m` (also the deep-output size).
        units: LSTM units `n`.
        attention_units: hidden size of the attention MLP `f_att`.
        attention: `"soft"` or `"hard"`.
        dropout: dropout on the deep output before `L_o`.
        attention_regularizer: `lambda` of the doubly stochastic
            regulariser (soft attention; 0 turns it off).
        reinforce_weight: `lambda_r` of the REINFORCE term (hard).
        entropy_weight: `lambda_e` of the entropy bonus (hard).
        baseline_decay: decay of the moving-average reward baseline.
        expectation_probability: probability per image of training with the
            expected context instead of a sample (hard; after the
            curriculum).
        estimator: `"reinforce"` or `"gumbel"` (hard).
        baseline: `"learned"` or `"moving_average"` (hard, REINFORCE).
        anneal_steps: training steps of the soft-to-hard curriculum (hard;
            0: none).
        temperature: Gumbel-softmax temperature (hard, gumbel).
        stop_key_gradient: the attention scores read the annotation
            vectors through a stop gradient (hard).
        samples: location sequences sampled per training image (hard;
            >= 2 with `baseline="leave_one_out"`); the cross-entropy
            reads the first.
        pad_id: padding id of `target_in`.
        end_id: end token id (for the reward's targets).
        seed: seed of the sampling (hard) and dropout.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        annotations: `[B, L, D]` annotation vectors (a CNN feature map).
        target_in: int `[B, T]` caption ids starting with the start token.
        training: sampling/dropout/losses on.

    Returns:
        The logits `[B, T, vocab_size]`.

    Example:
    ```python
    import numpy as np
    from zoo.captioning import ShowAttendTellDecoder

    decoder = ShowAttendTellDecoder(12, embedding_dim=8, units=16,
                                    attention_units=8)
    annotations = np.random.rand(2, 9, 6).astype("float32")
    logits = decoder(annotations, np.array([[2, 5, 6], [2, 7, 0]]))
    assert logits.shape == (2, 3, 12)
    ```
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim=64,
        units=256,
        attention_units=128,
        attention="soft",
        dropout=0.0,
        attention_regularizer=1.0,
        reinforce_weight=1.0,
        entropy_weight=0.01,
        baseline_decay=0.9,
        expectation_probability=0.5,
        estimator="reinforce",
        baseline="learned",
        anneal_steps=0,
        temperature=1.0,
        stop_key_gradient=False,
        samples=1,
        pad_id=0,
        end_id=3,
        seed=None,
        **kwargs,
    ):
        for name, value in (
            ("vocab_size", vocab_size),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("attention_units", attention_units),
        ):
            check_positive_int(name, value)
        check_choice("attention", attention, ATTENTIONS)
        check_options(estimator, baseline, anneal_steps, samples)
        for name, value in (
            ("attention_regularizer", attention_regularizer),
            ("reinforce_weight", reinforce_weight),
            ("entropy_weight", entropy_weight),
        ):
            check_non_negative_number(name, value)
        for name, value in (
            ("dropout", dropout),
            ("baseline_decay", baseline_decay),
        ):
            check_rate(name, value)
        if not 0.0 <= expectation_probability <= 1.0:
            raise ValueError(
                "`expectation_probability` must be in [0, 1]. Received: "
                f"expectation_probability={expectation_probability!r}"
            )
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention_units = attention_units
        self.attention = attention
        self.dropout = dropout
        self.attention_regularizer = float(attention_regularizer)
        self.reinforce_weight = float(reinforce_weight)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.expectation_probability = float(expectation_probability)
        self.estimator = estimator
        self.baseline = baseline
        self.anneal_steps = anneal_steps
        self.temperature = float(temperature)
        self.stop_key_gradient = bool(stop_key_gradient)
        self.samples = samples
        self.pad_id = pad_id
        self.end_id = end_id
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)

        # === Layers ===
        dtype = self.dtype_policy
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, dtype=dtype, name="embedding"
        )
        self.init_h = keras.layers.Dense(
            units, activation="tanh", dtype=dtype, name="init_h"
        )
        self.init_c = keras.layers.Dense(
            units, activation="tanh", dtype=dtype, name="init_c"
        )
        if attention == "soft":
            self.attention_layer = BahdanauAttention(
                attention_units, dtype=dtype, name="attention"
            )
        else:
            self.attention_layer = HardAttention(
                attention_units,
                score="additive",
                mode="gumbel" if estimator == "gumbel" else "sample",
                temperature=temperature,
                seed=seed,
                dtype=dtype,
                name="attention",
            )
            self.objective = HardAttentionObjective(
                estimator=estimator,
                baseline=baseline,
                reinforce_weight=reinforce_weight,
                entropy_weight=entropy_weight,
                baseline_decay=baseline_decay,
                expectation_probability=expectation_probability,
                anneal_steps=anneal_steps,
                samples=samples,
                dtype=dtype,
                name="objective",
            )
        self.gate = keras.layers.Dense(
            1, activation="sigmoid", dtype=dtype, name="beta_gate"
        )
        self.lstm = keras.layers.LSTMCell(units, dtype=dtype, name="lstm")
        self.out_h = keras.layers.Dense(
            embedding_dim, dtype=dtype, name="output_h"
        )
        self.out_z = keras.layers.Dense(
            embedding_dim, use_bias=False, dtype=dtype, name="output_z"
        )
        self.output_dropout = keras.layers.Dropout(
            dropout, seed=seed, dtype=dtype, name="output_dropout"
        )
        self.logits_dense = keras.layers.Dense(
            vocab_size, dtype=dtype, name="logits"
        )

    def build(self, annotations_shape, target_in_shape=None):
        annotations_shape = tuple(annotations_shape)
        if len(annotations_shape) != 3 or annotations_shape[-1] is None:
            raise ValueError(
                "`annotations` must be [batch, locations, depth] with a "
                f"known depth. Received: annotations.shape={annotations_shape}"
            )
        depth = annotations_shape[-1]
        batch = annotations_shape[0]
        self.embedding.build((batch, None))
        self.init_h.build((batch, depth))
        self.init_c.build((batch, depth))
        self.attention_layer.build((batch, self.units), annotations_shape)
        self.gate.build((batch, self.units))
        self.lstm.build((batch, self.embedding_dim + depth))
        self.out_h.build((batch, self.units))
        self.out_z.build((batch, depth))
        self.logits_dense.build((batch, self.embedding_dim))
        if self.attention == "hard":
            self.objective.build(self.units)
        self.built = True

    # === Pieces shared by training and decoding ===

    def initial_state(self, annotations):
        """`[h_0, c_0]` from the mean annotation vector."""
        mean = ops.mean(annotations, axis=1)
        return [self.init_h(mean), self.init_c(mean)]

    def decoding_context(self, annotations):
        """The step-invariant context of `step` (keys projected once)."""
        context = {"annotations": annotations}
        if self.attention == "soft":
            context["projected"] = self.attention_layer.project_key(annotations)
        return context

    def step(self, embedded, state, context, training=False, expected=None):
        """One decoder step.

        Args:
            embedded: `[B, E]` embedding of the previous word.
            state: `[h, c]`.
            context: `decoding_context(annotations)`.
            training: sampling (hard) and dropout on.
            expected: optional boolean `[B]`: use the expected context
                (hard attention in training).

        Returns:
            `(h, c, z, alpha, log_prob, entropy)`: the new state, the gated
            context `[B, D]`, the attention `[B, L]` (one-hot for hard
            attention), the log-probability of the sampled location and the
            entropy of the location distribution (`[B]`, zero for soft).
        """
        h, c = state
        annotations = context["annotations"]
        if self.attention == "soft":
            attended, alpha = self.attention_layer(
                h,
                annotations,
                projected_key=context["projected"],
                return_attention_scores=True,
                training=training,
            )
            log_prob = ops.zeros_like(alpha[:, 0])
            entropy = log_prob
        else:
            keys = annotations
            if self.stop_key_gradient:
                keys = ops.stop_gradient(annotations)
            attended, alpha, log_prob, probs = self.attention_layer(
                h,
                annotations,
                key=keys,
                return_attention_scores=True,
                return_log_probs=True,
                return_probabilities=True,
                training=training,
            )
            entropy = -ops.sum(probs * ops.log(probs + 1e-12), axis=-1)
            if expected is not None:
                mean = ops.einsum(
                    "bl,bld->bd",
                    ops.cast(probs, annotations.dtype),
                    annotations,
                )
                attended = ops.where(expected[:, None], mean, attended)
        beta = self.gate(h)  # [B, 1]
        z = beta * ops.cast(attended, beta.dtype)
        _, (h, c) = self.lstm(
            ops.concatenate([embedded, z], axis=-1), [h, c], training=training
        )
        return h, c, z, alpha, log_prob, entropy

    def output_logits(self, embedded, h, z, training=False):
        """Deep output `L_o(E y_{t-1} + L_h h_t + L_z z_t)`, any leading
        axes."""
        hidden = embedded + self.out_h(h) + self.out_z(z)
        return self.logits_dense(self.output_dropout(hidden, training=training))

    # === Teacher forcing ===

    def call(self, annotations, target_in, training=None):
        target_in = ops.cast(target_in, "int32")
        sampling = bool(training) and self.attention == "hard"
        if sampling and self.samples > 1:
            # Each image `samples` times in a row; the first sample's
            # logits are returned (the cross-entropy), all of them train
            # the attention.
            annotations = ops.repeat(annotations, self.samples, axis=0)
            target_in = ops.repeat(target_in, self.samples, axis=0)
        mask = ops.cast(ops.not_equal(target_in, self.pad_id), "float32")
        embedded = self.embedding(target_in)  # [B, T, E]
        context = self.decoding_context(annotations)
        state = self.initial_state(annotations)
        expected = None
        if sampling:
            progress = self.objective.advance()
            images = ops.shape(annotations)[0] // self.samples
            draw = keras.random.uniform((images,), seed=self._seed_generator)
            expected = draw < self.objective.expected_context_probability(
                progress
            )
            expected = ops.repeat(expected, self.samples, axis=0)

        def body(carry, embedded_t):
            outputs = self.step(
                embedded_t, list(carry[:2]), context, training, expected
            )
            # Keras' TF `scan` stacks outputs shaped like the carry: carry
            # every per-step output along.
            return outputs, outputs

        batch = ops.shape(annotations)[0]
        zeros = ops.zeros((batch,), "float32")
        initial = (
            *state,
            ops.zeros_like(annotations[:, 0]),  # z: [B, D]
            ops.zeros_like(annotations[:, :, 0], dtype="float32"),  # alpha
            zeros,  # log-probability of the selection
            zeros,  # entropy
        )
        _, outputs = ops.scan(body, initial, ops.transpose(embedded, (1, 0, 2)))
        # Time-major [T, B, ...] -> batch-major [B, T, ...].
        h, _, z, alpha, log_prob, entropy = [
            ops.moveaxis(x, 0, 1) for x in outputs
        ]
        logits = self.output_logits(embedded, h, z, training=training)
        if training and self.attention == "soft":
            self._add_doubly_stochastic_loss(alpha, mask)
        if sampling:
            # The state each step's attention was computed from: h_{t-1}.
            previous_h = ops.concatenate(
                [ops.expand_dims(state[0], 1), h[:, :-1]], axis=1
            )
            self.add_loss(
                self.objective.loss(
                    self.word_log_likelihoods(logits, target_in),
                    mask,
                    log_prob,
                    entropy,
                    1.0 - ops.cast(expected, "float32"),
                    previous_h,
                    progress,
                )
            )
            if self.samples > 1:
                logits = logits[:: self.samples]
        return logits

    def _add_doubly_stochastic_loss(self, alpha, mask):
        if not self.attention_regularizer:
            return
        # sum_t alpha_ti over the caption's real steps: [B, L].
        coverage = ops.sum(ops.cast(alpha, "float32") * mask[..., None], 1)
        penalty = ops.sum(ops.square(1.0 - coverage), axis=-1)
        self.add_loss(self.attention_regularizer * ops.mean(penalty))

    def word_log_likelihoods(self, logits, target_in):
        """`log p(y_t | ...)` `[B, T]` of the teacher-forcing targets."""
        target_out = target_out_from_target_in(
            target_in, self.pad_id, self.end_id
        )
        log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        return ops.take_along_axis(
            log_p, ops.expand_dims(target_out, -1), axis=-1
        )[..., 0]

    def compute_output_shape(self, annotations_shape, target_in_shape):
        return (*tuple(target_in_shape)[:2], self.vocab_size)

    def get_config(self):
        config = {
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_units": self.attention_units,
            "attention": self.attention,
            "dropout": self.dropout,
            "attention_regularizer": self.attention_regularizer,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "expectation_probability": self.expectation_probability,
            "estimator": self.estimator,
            "baseline": self.baseline,
            "anneal_steps": self.anneal_steps,
            "temperature": self.temperature,
            "stop_key_gradient": self.stop_key_gradient,
            "samples": self.samples,
            "pad_id": self.pad_id,
            "end_id": self.end_id,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
