"""Benchmark 3: Transformer classifier training-step MFU vs the matmul limit.

Model FLOP utilisation = the model's matmul FLOPs per second during
training / the machine's float32 matmul rate. Both rates are measured in
the same process, interleaved round by round (a training step, then a
2048 x 2048 matmul), so load on a shared CPU hits both alike; the best
rate of the separate `matmul` benchmark is reported beside it.

The model is the zoo's `transformer_classifier` in its
`movie_sentences_transformer_classifier` recipe (raw strings in, the
vectoriser inside the model, AdamW), trained with `train_on_batch` on
batches of full-length sentences, plus one wider configuration, where
larger matmuls let the same code get closer to the limit.
"""

import numpy as np

from benchmarks import report
from benchmarks import stats
from benchmarks.registry import Result
from benchmarks.registry import goal
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import judging_basis
from experiments.timing import interleave
from experiments.timing import train_step_fn

TARGET = 0.5
EXPERIMENT = "movie_sentences_transformer_classifier"
ROOFLINE_SIZE = 2048
VOCABULARY = tuple(f"w{i}" for i in range(5000))


def transformer_flops(batch, seq, dim, ff_dim, num_layers, num_classes):
    """Matmul FLOPs of one training step of `transformer_classifier`.

    Forward, per block: the fused QKV (`3 D^2`) and output (`D^2`)
    projections and the two feed-forward layers (`2 D F`) on every token,
    plus `Q K^T` and `P V` (`2 T D` per token); then the classifier head.
    A training step counts 3x the forward (the backward pass computes two
    matmuls per forward matmul, the usual MFU convention). Embedding
    look-ups, normalisation, softmax and element-wise work are not counted
    (they are not matmul work).
    """
    tokens = batch * seq
    per_block = 2 * tokens * (4 * dim * dim + 2 * dim * ff_dim)
    per_block += 2 * 2 * tokens * seq * dim
    forward = num_layers * per_block + 2 * batch * dim * num_classes
    return 3 * forward


def random_sentences(batch, words, vocabulary, seed):
    """`batch` strings of `words` words drawn from `vocabulary`."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(vocabulary), (batch, words))
    return np.array([" ".join(vocabulary[i] for i in row) for row in picks])


def training_step(kwargs, batch, train_config, vocabulary):
    """`(model, step)`: the zoo's `transformer_classifier` built with
    `kwargs` and compiled as the recipe compiles it, and a callable running
    one synchronous `train_on_batch` on `batch` random sentences of
    `sequence_length + 4` words (full length after truncation)."""
    import tensorflow as tf

    import zoo
    from experiments import training

    training.set_seed(0)
    model = zoo.build(
        "transformer_classifier",
        vocabulary=list(vocabulary),
        num_classes=2,
        **kwargs,
    )
    model.compile(
        optimizer=training.build_optimizer(train_config, 100),
        loss="categorical_crossentropy",
    )
    words = kwargs["sequence_length"] + 4
    x = tf.constant(random_sentences(batch, words, vocabulary, 0))
    y = tf.one_hot(np.arange(batch) % 2, 2)
    return model, train_step_fn(model, (x, y))


def recipe_step():
    """`training_step` of the recipe configuration (`EXPERIMENT`)."""
    recipe, configs = config_rows(quick=True)
    kwargs, batch = next(iter(configs.values()))
    return training_step(kwargs, batch, recipe.train, VOCABULARY)


def config_rows(quick):
    """`(recipe, {label: (model kwargs, batch)})`: the recipe's
    configuration and, unless `quick`, a wider one."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    from experiments import runner

    recipe = runner.resolve(EXPERIMENT)
    kwargs = dict(recipe.model.kwargs)
    base = {
        "embedding_dim": 128,
        "num_heads": 4,
        "ff_dim": 256,
        "num_layers": 2,
        "sequence_length": 48,
        **kwargs,
    }
    configs = {
        f"recipe ({EXPERIMENT})": (base, recipe.data.batch_size),
    }
    if not quick:
        wide = {
            **base,
            "embedding_dim": 256,
            "num_heads": 8,
            "ff_dim": 1024,
            "sequence_length": 128,
        }
        configs["wider (D 256, FF 1024, T 128)"] = (wide, 32)
    return recipe, configs


@register_benchmark(
    "transformer_mfu",
    "3",
    "Transformer classifier training step: MFU vs measured matmul rate",
    goal=f"MFU >= {TARGET:.0%} of the float32 matmul rate",
)
def transformer_mfu(ctx):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow as tf

    basis, why = judging_basis()
    recipe, configs = config_rows(ctx.quick)
    rng = np.random.default_rng(ROOFLINE_SIZE)
    a = tf.constant(rng.standard_normal((ROOFLINE_SIZE,) * 2), tf.float32)
    b = tf.constant(rng.standard_normal((ROOFLINE_SIZE,) * 2), tf.float32)
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    matmul_gflop = 2 * ROOFLINE_SIZE**3 / 1e9
    rows, measurements, mfus = [], {}, {}
    for label, (kwargs, batch) in configs.items():
        model, step = training_step(kwargs, batch, recipe.train, VOCABULARY)
        seq = kwargs["sequence_length"]
        flops = transformer_flops(
            batch,
            seq,
            kwargs["embedding_dim"],
            kwargs["ff_dim"],
            kwargs["num_layers"],
            2,
        )
        rounds = ctx.pick(8 if batch * seq <= 2048 else 4, 3)
        ctx.log(f"{label}: batch {batch}, {rounds} rounds")
        samples = interleave(
            {
                "train_step": step,
                "matmul": lambda: product(a, b).numpy(),
            },
            warmup=ctx.pick(3, 2),
            steps=2,
            rounds=rounds,
        )
        steps, mm = samples["train_step"], samples["matmul"]
        result = {}
        for clock in ("wall", "cpu"):
            step_ms = np.asarray(steps[f"{clock}_ms"]).reshape(rounds, -1)
            mm_ms = np.asarray(mm[f"{clock}_ms"]).reshape(rounds, -1)
            # Per round: the model's rate over the matmul rate of that round.
            model_rate = flops / 1e9 / (np.median(step_ms, 1) / 1e3)
            limit_rate = matmul_gflop / (np.median(mm_ms, 1) / 1e3)
            result[clock] = {
                "step_ms": stats.summarize(steps[f"{clock}_ms"]),
                "model_gflops": stats.summarize(model_rate),
                "matmul_gflops": stats.summarize(limit_rate),
                "mfu": stats.summarize(model_rate / limit_rate),
            }
        measurements[label] = {
            "model_kwargs": kwargs,
            "batch": batch,
            "train_gflop_per_step": flops / 1e9,
            "params": int(model.count_params()),
            **result,
            "samples": samples,
        }
        mfus[label] = result
        rows.append(
            [
                label,
                batch,
                seq,
                f"{model.count_params():,}",
                flops / 1e9,
                report.fmt_stat(result["wall"]["step_ms"]),
                result["wall"]["model_gflops"]["median"],
                result["wall"]["matmul_gflops"]["median"],
                f"{result['wall']['mfu']['median']:.1%}",
                f"{result['cpu']['mfu']['median']:.1%}",
            ]
        )
    recipe_label = next(iter(configs))
    judged = mfus[recipe_label]
    best = max(mfus, key=lambda k: mfus[k][basis]["mfu"]["median"])
    return Result(
        setup={
            "experiment": EXPERIMENT,
            "roofline_matmul": f"{ROOFLINE_SIZE} x {ROOFLINE_SIZE} float32",
            "configs": {
                k: {"model_kwargs": v[0], "batch": v[1]}
                for k, v in configs.items()
            },
        },
        method=(
            "`train_on_batch` of the zoo's `transformer_classifier` (strings "
            "in, full-length sentences, AdamW as in the recipe) interleaved "
            f"round by round with a {ROOFLINE_SIZE} x {ROOFLINE_SIZE} float32 "
            "`tf.matmul` in the same process. Model FLOPs: matmul FLOPs of "
            "the forward pass (fused QKV, output and feed-forward "
            "projections, `QK^T`, `PV`, head) x 3 for forward + backward. "
            "MFU = median over rounds of (model GFLOP/s / matmul GFLOP/s of "
            "the same round); on wall time and on process CPU time."
        ),
        columns=[
            "configuration",
            "batch",
            "tokens",
            "parameters",
            "GFLOP per step",
            "step ms, wall (IQR)",
            "model GFLOP/s",
            "matmul GFLOP/s (same rounds)",
            "MFU, wall",
            "MFU, CPU",
        ],
        rows=rows,
        goals=[
            goal(
                f"training-step MFU >= {TARGET:.0%} (recipe configuration)",
                judged[basis]["mfu"]["median"],
                TARGET,
                ">=",
                measured=f"{judged['wall']['mfu']['median']:.1%} wall / "
                f"{judged['cpu']['mfu']['median']:.1%} CPU",
                basis=f"{recipe_label}; judged on {why}",
                note=(
                    f"Best configuration: {best}, "
                    f"{mfus[best][basis]['mfu']['median']:.1%}."
                ),
            )
        ],
        measurements=measurements,
        notes=[
            "MFU counts matmul FLOPs only; the rest of a step (vectorising "
            "strings, embeddings, layer norms, softmax, GELU, dropout, the "
            "optimizer update) is work the roofline does not credit.",
        ],
    )
