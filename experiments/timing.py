"""Fair training-step timing: the same batch for every model, after warm-up,
models interleaved round by round so background load hits all alike."""

import time

import numpy as np


def _sync(value):
    # `train_on_batch` returns host values, which waits for the step.
    return np.asarray(value)


def time_train_steps(model, batch, steps):
    """Wall time (ms) of `steps` `train_on_batch` calls on `batch`."""
    x, y = batch
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        _sync(model.train_on_batch(x, y))
        times.append((time.perf_counter() - start) * 1e3)
    return times


def compare_step_times(models, batch, warmup=10, steps=20, rounds=5):
    """Median training-step time (ms) of each compiled model on one batch.

    Args:
        models: `{name: compiled keras.Model}`.
        batch: `(inputs, targets)` fed to every model.
        warmup: untimed steps per model first (tracing, allocation).
        steps: timed steps per model per round.
        rounds: rounds; every round times every model once in turn.

    Returns:
        `{name: {"median_ms", "p10_ms", "p90_ms", "steps"}}`.
    """
    for model in models.values():
        time_train_steps(model, batch, warmup)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name].extend(time_train_steps(model, batch, steps))
    return {
        name: {
            "median_ms": float(np.median(t)),
            "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)),
            "steps": len(t),
        }
        for name, t in times.items()
    }
