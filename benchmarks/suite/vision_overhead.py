"""Benchmark 5: SE / CBAM / ECA step-time overhead over plain ResNet-20.

The image vertical's CIFAR ResNet-20 (`resnet20`) and its attentive
variants (`se_resnet20`, `cbam_resnet20`, `eca_resnet20`, one block in
every residual branch) on CIFAR-10-shaped input (32 x 32 x 3 uint8,
batch 32): training steps (`train_on_batch`, SGD with momentum as in the
image recipes) and inference (`predict_on_batch`) of every model on the
same batch, interleaved. Reported as overhead over the plain ResNet-20;
the goals bound the step-time ratio to ResNet-20 (the papers claim a
small overhead), in training and in inference.
"""

import numpy as np

from benchmarks import report
from benchmarks.registry import Result
from benchmarks.registry import goal
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import compare
from experiments.timing import train_step_fn

MODELS = ("resnet20", "se_resnet20", "cbam_resnet20", "eca_resnet20")
BATCH = 32
SHAPE = (32, 32, 3)
RECIPE = "digits_resnet20"  # whose optimizer the models are compiled with
# Step-time ratio to ResNet-20 that each block must stay within.
TARGETS = {"se_resnet20": 1.15, "eca_resnet20": 1.15, "cbam_resnet20": 1.30}
GOAL = (
    "step time / ResNet-20 <= "
    + ", ".join(f"{t:.2f}x ({n})" for n, t in TARGETS.items())
    + ", training and inference"
)


def _goals(measurements):
    from benchmarks.suite.common import judging_basis

    basis, why = judging_basis()
    goals = []
    for mode, m in measurements.items():
        for name, target in TARGETS.items():
            ratio = 1.0 + _overhead(m, name, basis)
            goals.append(
                goal(
                    f"{name} {mode} time / resnet20 <= {target:.2f}x",
                    ratio,
                    target,
                    "<=",
                    measured=f"{1 + _overhead(m, name, 'wall'):.3f}x wall / "
                    f"{1 + _overhead(m, name, 'cpu'):.3f}x CPU",
                    basis=f"median paired ratio; judged on {why}",
                )
            )
    return goals


def _overhead(m, name, clock):
    """Median paired time ratio `name / resnet20` minus 1 (a fraction)."""
    r = m[name][f"speedup_{clock}"]
    value = r["paired"]["median"] if r.get("paired") else r["speedup"]
    return 1.0 / value - 1.0


def model_steps(name):
    """`(model, train_step, inference)`: the zoo model `name` compiled with
    the image recipes' optimizer, and callables running one synchronous
    `train_on_batch` / `predict_on_batch` on a random uint8 batch."""
    import keras

    import zoo
    from experiments import runner
    from experiments import training

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (BATCH, *SHAPE)).astype("uint8")
    y = keras.utils.to_categorical(rng.integers(0, 10, BATCH), 10)
    training.set_seed(0)
    model = zoo.build(name, input_shape=SHAPE, num_classes=10)
    model.compile(
        optimizer=training.build_optimizer(runner.resolve(RECIPE).train, 100),
        loss="categorical_crossentropy",
    )
    return (
        model,
        train_step_fn(model, (x, y)),
        lambda: np.asarray(model.predict_on_batch(x)),
    )


@register_benchmark(
    "vision_overhead",
    "5",
    "SE / CBAM / ECA step-time overhead over plain ResNet-20",
    goal=GOAL,
)
def vision_overhead(ctx):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    from experiments import runner

    recipe = runner.resolve(RECIPE)
    train_fns, infer_fns, params = {}, {}, {}
    for name in MODELS:
        model, train_fns[name], infer_fns[name] = model_steps(name)
        params[name] = int(model.count_params())
    rounds = ctx.pick(15, 2)
    measurements = {}
    rows = []
    for mode, fns in (("train step", train_fns), ("inference", infer_fns)):
        ctx.log(f"{mode}: {len(fns)} models, {rounds} rounds")
        m = compare(
            fns,
            "resnet20",
            warmup=2,
            steps=1,
            rounds=rounds,
        )
        measurements[mode] = m
        for name in MODELS:
            base = name == "resnet20"
            rows.append(
                [
                    mode,
                    name,
                    f"{params[name]:,}",
                    report.fmt_stat(m[name]["wall_ms"]),
                    m[name]["cpu_ms"]["median"],
                    "reference"
                    if base
                    else f"{_overhead(m, name, 'wall'):+.1%}",
                    "reference"
                    if base
                    else f"{_overhead(m, name, 'cpu'):+.1%}",
                ]
            )
    summary = "; ".join(
        f"{name}: {_overhead(measurements['train step'], name, 'wall'):+.1%} "
        f"wall / {_overhead(measurements['train step'], name, 'cpu'):+.1%} "
        "CPU"
        for name in MODELS[1:]
    )
    return Result(
        setup={
            "models": list(MODELS),
            "batch": BATCH,
            "input_shape": list(SHAPE),
            "optimizer": recipe.train.optimizer,
        },
        method=(
            "Each model built by `zoo.build(name, input_shape=(32, 32, 3), "
            "num_classes=10)` and compiled with the image recipes' SGD; "
            f"`train_on_batch` (and `predict_on_batch`) on one uint8 batch "
            f"of {BATCH}, models interleaved round by round after warm-up. "
            "Overhead = median over rounds of (model time / ResNet-20 time) "
            "- 1."
        ),
        columns=[
            "mode",
            "model",
            "parameters",
            "ms, wall (IQR)",
            "ms, CPU",
            "overhead, wall",
            "overhead, CPU",
        ],
        rows=rows,
        goals=_goals(measurements),
        measurements=measurements,
        notes=[f"Training-step overhead over ResNet-20: {summary}."],
    )
