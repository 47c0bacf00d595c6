"""Helpers shared by the benchmarks: inputs, fwd+bwd steps, comparisons."""

import numpy as np

from benchmarks import machine
from benchmarks import report
from benchmarks import stats
from experiments.timing import interleave


def random_inputs(*shapes, seed=0):
    """float32 TensorFlow constants of `shapes` (standard normal)."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    return [tf.constant(rng.standard_normal(s), tf.float32) for s in shapes]


def gradient_step(forward, variables, inputs, jit=False):
    """A callable running forward + backward once, synchronously.

    `forward(*inputs)` returns a tensor (or a list of them); the loss is
    the sum of squares of the outputs, differentiated with respect to
    `variables` and the `inputs` (as inside a network, where the input
    gradient flows to the layers below). Compiled with `tf.function`,
    with XLA when `jit`. The gradients are copied to the host, so the
    call returns only when the work is done.
    """
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow as tf

    def step(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            outputs = tf.nest.flatten(forward(*xs))
            loss = tf.add_n([tf.reduce_sum(tf.square(y)) for y in outputs])
        grads = tape.gradient(loss, [*xs, *variables])
        # One scalar per gradient: syncs without copying whole tensors.
        return tf.stack(
            [tf.reduce_sum(g) for g in grads if g is not None] + [loss]
        )

    compiled = tf.function(step, jit_compile=jit)
    return lambda: compiled(*inputs).numpy()


def compare(contenders, baseline, warmup=2, steps=1, rounds=10):
    """Times `contenders` interleaved; statistics and ratios to `baseline`.

    Returns:
        `{name: {"wall_ms": summary, "cpu_ms": summary, "speedup_wall":
        ratio, "speedup_cpu": ratio}}` where the ratios are
        `stats.ratio(baseline, name)` (how many times faster `name` is
        than `baseline`; the paired spread uses the interleaved samples).
    """

    samples = interleave(contenders, warmup=warmup, steps=steps, rounds=rounds)
    base = samples[baseline]
    out = {}
    for name, s in samples.items():
        out[name] = {
            "wall_ms": stats.summarize(s["wall_ms"]),
            "cpu_ms": stats.summarize(s["cpu_ms"]),
            "speedup_wall": stats.ratio(base["wall_ms"], s["wall_ms"]),
            "speedup_cpu": stats.ratio(base["cpu_ms"], s["cpu_ms"]),
            "samples": s,
        }
    return out


def speedup_cells(entry, is_reference):
    """A table row's two speed-up cells (wall, CPU) of one contender's
    `compare` entry: `"1 (reference)"` for the baseline itself."""
    if is_reference:
        return ["1 (reference)", "1 (reference)"]
    return [ratio_cell(entry["speedup_wall"]), ratio_cell(entry["speedup_cpu"])]


def ratio_cell(r):
    """`"1.31x (1.25–1.36)"`: the median paired speed-up and its IQR
    (the ratio of medians when the samples are not paired)."""
    if r is None:
        return "–"
    p = r.get("paired")
    if not p:
        return report.fmt_ratio(r["speedup"])
    return f"{p['median']:.2f}x ({p['p25']:.2f}–{p['p75']:.2f})"


def judging_basis():
    """`("wall" | "cpu", why)`: which time a goal is judged on.

    On a quiet machine, wall time (what a user waits for). When other
    jobs load the CPU (1-minute load average above cores + 1 at the
    start), the process CPU time: the wall time then mostly measures
    waiting for a core, while CPU time counts this process's work only.
    """

    load = machine.load_average()
    cores = machine.cpu_count()
    if load and load[0] > cores + 1:
        return "cpu", f"CPU time: load average {load[0]} on {cores} cores"
    return "wall", f"wall time: load average {load and load[0]}"


def speedup(measurement, basis):
    """The median per-round paired speed-up on `basis` ("wall"/"cpu")."""
    r = measurement[f"speedup_{basis}"]
    return r["paired"]["median"] if r.get("paired") else r["speedup"]
