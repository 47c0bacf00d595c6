"""Fair training-step timing: the same batch for every model, after warm-up,
models interleaved every couple of steps so that background load (other
processes on a shared machine) hits all of them alike.

Both the wall time and the process CPU time of each step are recorded: on
a machine shared with other jobs the wall time includes waiting for a
core, while the CPU time counts only the work this process did.
"""

import time

import numpy as np


def _sync(value):
    # `train_on_batch` returns host values, which waits for the step.
    return np.asarray(value)


def time_train_steps(model, batch, steps):
    """`(wall_ms, cpu_ms)` lists of `steps` `train_on_batch` calls."""
    x, y = batch
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        _sync(model.train_on_batch(x, y))
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


def compare_step_times(models, batch, warmup=10, steps=2, rounds=50):
    """Training-step times (ms) of each compiled model on one batch.

    Args:
        models: `{name: compiled keras.Model}`.
        batch: `(inputs, targets)` fed to every model.
        warmup: untimed steps per model first (tracing, allocation).
        steps: timed steps per model per round.
        rounds: rounds; every round times every model once in turn.

    Returns:
        `{name: {"median_ms", "p10_ms", "p90_ms", "cpu_median_ms",
        "steps"}}` (wall-time statistics, and the median CPU time).
    """
    for model in models.values():
        time_train_steps(model, batch, warmup)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            w, c = time_train_steps(model, batch, steps)
            wall[name].extend(w)
            cpu[name].extend(c)
    return {
        name: {
            "median_ms": float(np.median(wall[name])),
            "p10_ms": float(np.percentile(wall[name], 10)),
            "p90_ms": float(np.percentile(wall[name], 90)),
            "cpu_median_ms": float(np.median(cpu[name])),
            "steps": len(wall[name]),
        }
        for name in models
    }
