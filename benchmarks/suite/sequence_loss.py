"""Benchmark 12: a translator's output layer and loss, fwd+bwd.

The step of a sequence generator that grows with the vocabulary: the
output projection `[B, T, D] @ [D, V]` and the padded, label-smoothed
cross-entropy of its logits (`zoo.MaskedSparseCrossentropy`, label
smoothing 0.1 as the gettext Transformer's recipe), forward + backward
in a `tf.function`. Three contenders on the same logits:

- `keras`: what Keras offers for label smoothing,
  `CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)` on
  one-hot targets with the padding's sample weight 0 (the one-hot
  targets and the weights are built outside the timed step, in Keras's
  favour);
- `formula`: the same loss differentiated op by op (log-softmax, the
  reference token's gather, the mean for the smoothing), the previous
  implementation;
- `ours`: `MaskedSparseCrossentropy`, whose `token_crossentropy` writes
  the gradient directly.

Shapes: the gettext Transformer's batches (128 sentences of up to 20
target pieces, `d_model` 128) at its 4,000-piece vocabulary and at a
joint 8,000-piece one.
"""

from benchmarks.registry import Result
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import compare
from benchmarks.suite.common import gradient_step
from benchmarks.suite.common import random_inputs
from benchmarks.suite.common import speedup_cells

BATCH, LENGTH, DIM = 128, 20, 128
VOCABULARIES = (4000, 8000)
SMOOTHING = 0.1


def _formula_loss(targets, logits):
    """The label-smoothed padded cross-entropy, differentiated op by op."""
    from keras import ops

    log_probs = ops.log_softmax(logits, axis=-1)
    losses = -ops.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    uniform = -ops.mean(log_probs, axis=-1)
    losses = (1.0 - SMOOTHING) * losses + SMOOTHING * uniform
    valid = ops.cast(ops.not_equal(targets, 0), losses.dtype)
    return ops.sum(losses * valid) / ops.sum(valid)


def loss_steps(vocab):
    """`{"keras" | "formula" | "ours": step}`: output projection + loss,
    forward and backward, on the same hidden states and targets."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import keras
    import numpy as np

    from zoo.metrics import MaskedSparseCrossentropy

    (hidden,) = random_inputs((BATCH, LENGTH, DIM))
    rng = np.random.default_rng(0)
    targets = rng.integers(1, vocab, (BATCH, LENGTH)).astype("int32")
    # Sentences of 6 to 20 pieces, padded with 0.
    for row, length in enumerate(rng.integers(6, LENGTH + 1, BATCH)):
        targets[row, length:] = 0
    targets = keras.ops.convert_to_tensor(targets)
    one_hot = keras.ops.one_hot(targets, vocab)
    # Keras's reduction divides by every position; weighting the real
    # ones by positions / real ones gives the mean over the real ones.
    valid = keras.ops.cast(keras.ops.not_equal(targets, 0), "float32")
    weights = valid * (BATCH * LENGTH) / keras.ops.sum(valid)
    output = keras.layers.Dense(vocab)
    output.build((None, None, DIM))
    keras_loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=SMOOTHING
    )
    ours_loss = MaskedSparseCrossentropy(label_smoothing=SMOOTHING)
    losses = {
        "keras": lambda h: keras_loss(one_hot, output(h), weights),
        "formula": lambda h: _formula_loss(targets, output(h)),
        "ours": lambda h: ours_loss(targets, output(h)),
    }
    return {
        name: gradient_step(fn, output.trainable_variables, [hidden])
        for name, fn in losses.items()
    }


@register_benchmark(
    "sequence_loss",
    "12",
    "Output layer + label-smoothed sequence loss, fwd+bwd",
)
def sequence_loss(ctx):
    vocabularies = ctx.pick(VOCABULARIES, VOCABULARIES[:1])
    rows, measurements = [], {}
    for vocab in vocabularies:
        rounds = ctx.pick(10, 2)
        ctx.log(f"vocabulary {vocab}: {rounds} rounds")
        m = compare(loss_steps(vocab), "keras", warmup=2, rounds=rounds)
        measurements[f"vocab{vocab}"] = m
        for name in ("keras", "formula", "ours"):
            rows.append(
                [
                    vocab,
                    name,
                    m[name]["wall_ms"]["median"],
                    m[name]["cpu_ms"]["median"],
                    *speedup_cells(m[name], name == "keras"),
                ]
            )
    return Result(
        setup={
            "batch": BATCH,
            "length": LENGTH,
            "model_dim": DIM,
            "vocabularies": list(vocabularies),
            "label_smoothing": SMOOTHING,
        },
        method=(
            "One forward + backward pass (gradients of the output layer's "
            "weights and of the hidden states) per call in a "
            "`tf.function`, the three losses interleaved in one process "
            "on the same inputs; targets padded to 20 pieces (6 to 20 "
            "real)."
        ),
        columns=[
            "vocabulary",
            "loss",
            "wall ms",
            "CPU ms",
            "speed-up vs keras (wall)",
            "speed-up vs keras (CPU)",
        ],
        rows=rows,
        measurements=measurements,
    )
