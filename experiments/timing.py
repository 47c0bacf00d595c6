"""Fair timing: the same inputs for every contender, after warm-up,
contenders interleaved every couple of calls so that background load
(other processes on a shared machine) hits all of them alike.

Both the wall time and the process CPU time of each call are recorded: on
a machine shared with other jobs the wall time includes waiting for a
core, while the CPU time counts only the work this process did.

`interleave` times any callables (the benchmark harness, `benchmarks/`,
uses it for layers, decoders and pipelines); `compare_step_times` times
training steps of compiled Keras models on one batch (`ablate`).
"""

import time

import numpy as np


def _sync(value):
    # `train_on_batch` returns host values, which waits for the step.
    return np.asarray(value)


def time_calls(fn, calls):
    """`(wall_ms, cpu_ms)` lists of `calls` calls of `fn()`.

    `fn` must return only when its work is done (e.g. convert its result
    to NumPy), so that asynchronous execution is not under-counted.
    """
    wall, cpu = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


def interleave(fns, warmup=2, steps=1, rounds=10):
    """Times the callables in `fns` round-robin.

    Args:
        fns: `{name: callable}`; each call runs one unit of work
            synchronously.
        warmup: untimed calls per callable first (tracing, allocation).
        steps: timed calls per callable per round.
        rounds: rounds; every round times every callable in turn, so a
            change of load hits all of them alike.

    Returns:
        `{name: {"wall_ms": [...], "cpu_ms": [...]}}`, `steps * rounds`
        samples each, in time order (round by round, so sample `k` of two
        contenders were taken close together).
    """
    for fn in fns.values():
        time_calls(fn, warmup)
    samples = {name: {"wall_ms": [], "cpu_ms": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time_calls(fn, steps)
            samples[name]["wall_ms"].extend(wall)
            samples[name]["cpu_ms"].extend(cpu)
    return samples


def train_step_fn(model, batch):
    """A callable running one synchronous `train_on_batch` on `batch`."""
    x, y = batch
    return lambda: _sync(model.train_on_batch(x, y))


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
        "steps", "wall_ms", "cpu_ms"}}` (wall-time statistics, the median
        CPU time, and every sample).
    """
    samples = interleave(
        {name: train_step_fn(model, batch) for name, model in models.items()},
        warmup=warmup,
        steps=steps,
        rounds=rounds,
    )
    return {
        name: {
            "median_ms": float(np.median(s["wall_ms"])),
            "p10_ms": float(np.percentile(s["wall_ms"], 10)),
            "p90_ms": float(np.percentile(s["wall_ms"], 90)),
            "cpu_median_ms": float(np.median(s["cpu_ms"])),
            "steps": len(s["wall_ms"]),
            "wall_ms": s["wall_ms"],
            "cpu_ms": s["cpu_ms"],
        }
        for name, s in samples.items()
    }
