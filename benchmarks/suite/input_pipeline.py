"""Benchmark 4: training from the TFDS input pipeline vs from memory.

The image vertical's `digits_resnet20` experiment: its TFDS pipeline
(`tfds` -> cache -> shuffle -> random-crop augmentation -> one-hot ->
batch -> prefetch, built by the experiment's task) feeds `train_on_batch`
for one epoch; the other contender trains on the same number of batches,
taken from that pipeline beforehand and held in memory as tensors. The
two alternate epoch by epoch in one process; the ratio of their steps/s
says how much of the step time the pipeline fails to hide. The pipeline
is read as the runner's `fit` reads it: one iterator over consecutive
epochs (`TrainStream.dataset`), so the next epoch's shuffle buffer fills
while the current one trains.
"""

import tempfile

from benchmarks import report
from benchmarks.registry import Result
from benchmarks.registry import goal
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import compare
from benchmarks.suite.common import judging_basis
from benchmarks.suite.common import speedup
from benchmarks.suite.common import speedup_cells

TARGET = 0.95
EXPERIMENT = "digits_resnet20"


def prepare_digits(data_dir):
    """Prepares the project's `digits` TFDS dataset in `data_dir`."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow_datasets as tfds

    import experiments.datasets  # noqa: F401  (registers the builders)

    tfds.builder("digits", data_dir=data_dir).download_and_prepare()
    return data_dir


@register_benchmark(
    "input_pipeline",
    "4",
    "Input pipeline: steps/s from the TFDS pipeline vs batches in memory",
    goal=f"TFDS pipeline steps/s >= {TARGET}x in-memory steps/s",
)
def input_pipeline(ctx):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import keras

    from experiments import runner
    from experiments import training
    from experiments.tasks import get_task

    basis, why = judging_basis()
    config = runner.resolve(EXPERIMENT)
    task = get_task(config.task)
    with tempfile.TemporaryDirectory(prefix="bench-tfds-") as data_dir:
        prepare_digits(data_dir)
        training.set_seed(0)
        data = task.load_data(config, data_dir, None)
        steps = data.steps_per_epoch
        in_memory = [batch for batch in data.train.take(steps)]
        model = task.build_model(config, data)
        model.compile(
            optimizer=training.build_optimizer(config.train, steps),
            loss=task.loss(config),
        )

        rounds = ctx.pick(8, 2)
        # One epoch per call: the warm-up call and one per round.
        batches = iter(data.train_stream.dataset(epochs=1 + rounds))

        def from_pipeline():
            for _ in range(steps):
                x, y = next(batches)
                model.train_on_batch(x, y)

        def from_memory():
            for x, y in in_memory:
                model.train_on_batch(x, y)

        ctx.log(f"{EXPERIMENT}: {steps} steps per epoch, {rounds} rounds")
        m = compare(
            {"in memory": from_memory, "TFDS pipeline": from_pipeline},
            "in memory",
            warmup=1,
            rounds=rounds,
        )
        keras.backend.clear_session()
    rows = []
    for name in ("in memory", "TFDS pipeline"):
        wall = m[name]["wall_ms"]
        rows.append(
            [
                name,
                steps,
                report.fmt_stat(wall),
                steps * 1e3 / wall["median"],
                steps * 1e3 / m[name]["cpu_ms"]["median"],
                *speedup_cells(m[name], name == "in memory"),
            ]
        )
    value = speedup(m["TFDS pipeline"], basis)
    return Result(
        setup={
            "experiment": EXPERIMENT,
            "batch_size": config.data.batch_size,
            "steps_per_epoch": steps,
            "dataset": data.info["dataset"],
            "input_shape": data.info["input_shape"],
        },
        method=(
            f"`{EXPERIMENT}`: one epoch of `train_on_batch` calls fed by "
            "the experiment's own TFDS pipeline (one iterator over "
            "consecutive epochs, as `fit` reads it) vs the same number of "
            "batches taken from it beforehand and held in memory; the two "
            "alternate epoch by epoch after a warm-up epoch each. Ratio = "
            "median over rounds of (in-memory epoch time / pipeline epoch "
            "time), i.e. pipeline steps/s over in-memory steps/s."
        ),
        columns=[
            "source",
            "steps per epoch",
            "epoch ms, wall (IQR)",
            "steps/s, wall",
            "steps per CPU-second",
            "ratio, wall",
            "ratio, CPU",
        ],
        rows=rows,
        goals=[
            goal(
                f"TFDS pipeline steps/s >= {TARGET}x in-memory steps/s",
                value,
                TARGET,
                ">=",
                measured=f"{speedup(m['TFDS pipeline'], 'wall'):.3f}x wall "
                f"/ {speedup(m['TFDS pipeline'], 'cpu'):.3f}x CPU",
                basis=f"{EXPERIMENT}; judged on {why}",
            )
        ],
        measurements=m,
        notes=[
            "digits images are small (8 x 8), so the step is short and any "
            "pipeline cost shows: a demanding case for the pipeline.",
            "The CPU-time ratio counts the pipeline's own work (decoding, "
            "augmentation, one-hot, on tf.data threads) in full: a lower "
            "bound. With a free core, prefetching overlaps that work with "
            "the step, which is what the wall-time ratio shows on a quiet "
            "machine.",
        ],
    )
