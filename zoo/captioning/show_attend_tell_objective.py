"""Training signal of Show, Attend and Tell's stochastic hard attention.

Xu et al. 2015, "Show, Attend and Tell" (ICML), §4.1: the locations
`s_t ~ Multinoulli(alpha_t)` are discrete, so the attention network learns
from the score-function (REINFORCE, Williams 1992) estimator
`(r - b) * d log p(s | a)`, with a baseline `b` and an entropy bonus, or
from the straight-through Gumbel-softmax estimator (Jang et al. 2017),
which needs no extra loss. This module holds the REINFORCE loss, its
variance reduction and the soft-to-hard curriculum schedule.
"""

import keras
from keras import ops

from layers.validation import check_choice
from layers.validation import check_int

ESTIMATORS = ("reinforce", "gumbel")
BASELINES = ("moving_average", "learned", "leave_one_out")


def rewards_to_go(token_rewards):
    """`R_t = sum_{u >= t} r_u` along axis 1 (`[B, T]`).

    The location sampled at step `t` cannot change the words before `t`,
    so weighting `log p(s_t)` by the rewards from `t` on instead of the
    whole caption's keeps the estimator unbiased and drops the variance of
    the earlier words (Williams 1992; "reward to go").
    """
    return ops.flip(ops.cumsum(ops.flip(token_rewards, 1), axis=1), 1)


def masked_mean(values, mask):
    """Mean of `values` over the entries where `mask` is 1 (0 if none)."""
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def check_options(estimator, baseline, anneal_steps, samples):
    """Raises `ValueError` for an unknown estimator/baseline, a bad
    `anneal_steps` or `samples`, or a leave-one-out baseline with one
    sample."""
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("baseline", baseline, BASELINES)
    check_int("anneal_steps", anneal_steps, minimum=0)
    check_int("samples", samples, minimum=1)
    if (baseline == "leave_one_out") != (samples > 1):
        raise ValueError(
            "`baseline='leave_one_out'` needs `samples` >= 2 (and several "
            "samples need it). Received: "
            f"baseline={baseline!r}, samples={samples!r}"
        )


@keras.saving.register_keras_serializable(package="attention_zoo")
class HardAttentionObjective(keras.layers.Layer):
    """REINFORCE loss and curriculum of a hard-attention caption decoder.

    Holds the step counter of the curriculum, the running reward
    statistics and the learned baseline; `ShowAttendTellDecoder` calls
    `advance` once per training batch and `loss` with what the batch
    produced.

    Curriculum (soft to hard): over the first `anneal_steps` training
    steps the probability that an image trains on the expected context
    `alpha_t @ a` (deterministic soft attention) falls linearly from 1 to
    `expectation_probability`, and the entropy bonus falls linearly from
    `entropy_weight` to 0. `anneal_steps=0`: both fixed from the start, as
    in the paper.

    REINFORCE (`estimator="reinforce"`), with `r_t = log p(y_t | ...)` the
    log-likelihood of word `t` under the sampled locations (no gradient):

    - `baseline="moving_average"` (the paper, eq. 12): reward
      `r = sum_t r_t`, baseline an exponential moving average of `r`
      (`baseline_decay`, bias-corrected), loss per caption
      `-(r - b) * sum_t log p(s_t) - entropy_weight * sum_t H[alpha_t]`.
    - `baseline="learned"`: per step the reward to go
      `R_t = sum_{u >= t} r_u`, normalised with running mean and variance
      (`baseline_decay`), minus a baseline `b(h_{t-1})` learned from the
      decoder state by regression (a dense layer on the state, no gradient
      into the state); loss per word
      `-(R_t - b_t) log p(s_t) - entropy_weight * H[alpha_t]` averaged over
      the batch's words (the scale of the word cross-entropy; words of
      images on the expected context count with a zero REINFORCE term),
      plus the baseline's squared error.
    - `baseline="leave_one_out"` (`samples` >= 2 location sequences drawn
      per image): as `"learned"`, with the baseline of each sample the
      mean normalised reward to go of the image's other samples (Kool et
      al. 2019; Mnih & Rezende 2016).

    Only images trained on sampled locations get a REINFORCE term.
    `estimator="gumbel"`: no REINFORCE term (the gradient reaches the
    scores through the straight-through relaxation); the entropy bonus and
    the curriculum apply alike.

    References:
        Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption
        Generation with Visual Attention", https://arxiv.org/abs/1502.03044.
        Williams 1992, "Simple statistical gradient-following algorithms
        for connectionist reinforcement learning".
        Mnih & Gregor 2014, "Neural Variational Inference and Learning in
        Belief Networks" (learned, input-dependent baselines and reward
        normalisation), https://arxiv.org/abs/1402.0030.
        Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE Samples, Get a
        Baseline for Free!" (ICLR workshop).

    Args:
        estimator: `"reinforce"` or `"gumbel"`.
        baseline: `"learned"` or `"moving_average"` (REINFORCE).
        reinforce_weight: weight of the REINFORCE term.
        entropy_weight: weight of the entropy bonus (at the start of the
            curriculum).
        baseline_decay: decay of the running reward statistics, in [0, 1).
        expectation_probability: probability of the expected context per
            image after the curriculum, in [0, 1].
        anneal_steps: training steps of the curriculum (0: none).
        samples: location sequences drawn per image (`"leave_one_out"`
            needs >= 2); the batch holds each image's samples next to
            each other.
        **kwargs: base layer arguments.

    Example:
    ```python
    import numpy as np
    from zoo.captioning.show_attend_tell_objective import (
        HardAttentionObjective)

    objective = HardAttentionObjective(anneal_steps=100)
    objective.build(units=16)
    progress = objective.advance()  # 0.01: first step of 100
    mask = np.ones((2, 3), "float32")
    loss = objective.loss(
        token_rewards=-np.ones((2, 3), "float32"),
        mask=mask,
        log_probs=-np.ones((2, 3), "float32"),
        entropy=np.ones((2, 3), "float32"),
        sampled=np.ones((2,), "float32"),
        previous_h=np.zeros((2, 3, 16), "float32"),
        progress=progress,
    )
    assert np.isfinite(float(loss))
    ```
    """

    def __init__(
        self,
        estimator="reinforce",
        baseline="learned",
        reinforce_weight=1.0,
        entropy_weight=0.01,
        baseline_decay=0.9,
        expectation_probability=0.5,
        anneal_steps=0,
        samples=1,
        **kwargs,
    ):
        check_options(estimator, baseline, anneal_steps, samples)
        super().__init__(**kwargs)
        self.estimator = estimator
        self.baseline = baseline
        self.reinforce_weight = float(reinforce_weight)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.expectation_probability = float(expectation_probability)
        self.anneal_steps = anneal_steps
        self.samples = samples
        self.baseline_dense = None
        if estimator == "reinforce" and baseline == "learned":
            self.baseline_dense = keras.layers.Dense(
                1,
                kernel_initializer="zeros",
                dtype=self.dtype_policy,
                name="baseline",
            )

    def build(self, units):
        def counter(name):
            return self.add_weight(
                name=name, shape=(), initializer="zeros", trainable=False
            )

        self.train_steps = counter("train_steps")
        # Exponential moving averages of the reward and its square, and
        # their update count (for the bias correction of an average
        # started at zero).
        self.reward_average = counter("reward_average")
        self.reward_square_average = counter("reward_square_average")
        self.reward_updates = counter("reward_updates")
        if self.baseline_dense is not None:
            self.baseline_dense.build((None, units))
        self.built = True

    # === Curriculum ===

    def advance(self):
        """Counts one training step; returns the curriculum's progress in
        [0, 1] (1 without a curriculum)."""
        steps = self.train_steps + 1.0
        self.train_steps.assign(steps)
        if not self.anneal_steps:
            return ops.ones(())
        return ops.minimum(steps / float(self.anneal_steps), 1.0)

    def expected_context_probability(self, progress):
        """Probability of the expected context at `progress` (1 -> p)."""
        return 1.0 - progress * (1.0 - self.expectation_probability)

    def current_entropy_weight(self, progress):
        if not self.anneal_steps:
            return ops.full((), self.entropy_weight)
        return self.entropy_weight * (1.0 - progress)

    # === Losses ===

    def _running_moments(self, mean, square):
        """Updates the running moments; returns bias-corrected (mean, var)."""
        decay = self.baseline_decay
        updates = self.reward_updates + 1.0
        average = decay * self.reward_average + (1.0 - decay) * mean
        average_sq = decay * self.reward_square_average + (1.0 - decay) * square
        self.reward_updates.assign(updates)
        self.reward_average.assign(average)
        self.reward_square_average.assign(average_sq)
        correction = 1.0 - ops.power(decay, updates)
        mean = average / correction
        variance = ops.maximum(average_sq / correction - mean**2, 0.0)
        return mean, variance

    def loss(
        self,
        token_rewards,
        mask,
        log_probs,
        entropy,
        sampled,
        previous_h,
        progress,
    ):
        """The hard-attention loss of one batch (a scalar).

        Args:
            token_rewards: `[B, T]` `log p(y_t | ...)` of the target words
                (gradient stopped here).
            mask: `[B, T]` 1 for the caption's real steps.
            log_probs: `[B, T]` `log p(s_t)` of the sampled locations.
            entropy: `[B, T]` entropy of each step's location distribution.
            sampled: `[B]` 1 for images trained on sampled locations.
            previous_h: `[B, T, units]` decoder state before each step.
            progress: curriculum progress from `advance`.
        """
        token_rewards = ops.stop_gradient(token_rewards * mask)
        entropy_weight = self.current_entropy_weight(progress)
        if self.estimator == "gumbel":
            return -entropy_weight * masked_mean(entropy, mask)
        if self.baseline == "moving_average":
            reward = ops.sum(token_rewards, axis=1)  # [B]
            mean, _ = self._running_moments(
                ops.mean(reward), ops.mean(reward**2)
            )
            advantage = ops.stop_gradient(reward - mean) * sampled
            selection = ops.sum(log_probs * mask, axis=1)  # log p(s | a)
            return -self.reinforce_weight * ops.mean(
                advantage * selection
            ) - entropy_weight * ops.mean(ops.sum(entropy * mask, axis=1))
        returns = rewards_to_go(token_rewards)  # [B, T]
        mean, variance = self._running_moments(
            masked_mean(returns, mask), masked_mean(returns**2, mask)
        )
        normalised = (returns - mean) / ops.sqrt(variance + 1e-6)
        if self.baseline == "leave_one_out":
            # [B * k, T] -> [B, k, T]: each sample against the mean of its
            # image's other samples.
            grouped = ops.reshape(
                normalised, (-1, self.samples, ops.shape(mask)[1])
            )
            others = ops.sum(grouped, axis=1, keepdims=True) - grouped
            baseline = ops.reshape(
                others / (self.samples - 1), ops.shape(normalised)
            )
            regression = 0.0
        else:
            baseline = self.baseline_dense(ops.stop_gradient(previous_h))
            baseline = ops.cast(baseline[..., 0], "float32")  # [B, T]
            regression = masked_mean(ops.square(baseline - normalised), mask)
        advantage = ops.stop_gradient(normalised - baseline)
        # Averaged over all the batch's words, so the term shrinks with
        # the share of sampled images (as the cross-entropy's gradient
        # through them does) rather than growing noisier.
        reinforce = -masked_mean(advantage * log_probs * sampled[:, None], mask)
        bonus = -entropy_weight * masked_mean(entropy, mask)
        return self.reinforce_weight * reinforce + regression + bonus

    def get_config(self):
        return {
            **super().get_config(),
            "estimator": self.estimator,
            "baseline": self.baseline,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "expectation_probability": self.expectation_probability,
            "anneal_steps": self.anneal_steps,
            "samples": self.samples,
        }
