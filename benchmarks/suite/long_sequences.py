"""Benchmark 8: long sequences, peak memory and time of attention.

Self-attention forward + backward (gradients of the weights and of the
input) at sequence 2,048 to 16,384, batch 1, 8 heads, width 256,
float32: `keras.layers.MultiHeadAttention` (which materialises the
`[8, T, T]` weights) vs this project's `MultiHeadAttention` with its
defaults (`attention_impl="auto"`: past `chunk_threshold` = 1,024 tokens
it takes the chunked path of Rabe & Staats 2021).

Memory: each (layer, length) runs in its own fresh process; peak memory =
the peak resident set size during the steps minus the resident size
before them (after tracing). Each process is capped (`RLIMIT_DATA`) below
the machine's available memory, so a layer that needs more fails with an
out-of-memory error that is recorded, instead of exhausting a shared
machine. Time: the two layers alternate step by step in one process, at
every length where Keras fits, so the time ratio is measured side by side.
"""

import json
import os
import resource
import subprocess
import sys
import time

from benchmarks.machine import memory_gb
from benchmarks.registry import Result
from benchmarks.registry import goal
from benchmarks.registry import register_benchmark
from benchmarks.suite.common import compare
from benchmarks.suite.common import gradient_step
from benchmarks.suite.common import judging_basis
from benchmarks.suite.common import random_inputs
from benchmarks.suite.common import ratio_cell
from benchmarks.suite.common import speedup

HEADS, KEY_DIM = 8, 32
GOAL_SEQ = 8192
MEMORY_TARGET = 0.25
TIME_TARGET = 1.3
IMPLS = ("keras", "ours")


def make_layer(impl):
    """The layer of contender `impl` ("keras", "ours", "ours_standard")."""
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import keras

    from layers import MultiHeadAttention

    if impl == "keras":
        return keras.layers.MultiHeadAttention(HEADS, KEY_DIM)
    if impl == "ours_standard":
        return MultiHeadAttention(HEADS, KEY_DIM, attention_impl="standard")
    return MultiHeadAttention(HEADS, KEY_DIM)


def step_fn(layer, x):
    """A synchronous fwd+bwd step of `layer(x, x)` (compiled)."""

    layer(x[:, :8], x[:, :8])
    return gradient_step(
        lambda x: layer(x, x), layer.trainable_variables, [x], jit=False
    )


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory_child(impl, seq, steps, limit_gb, device="cpu"):
    """Runs in a fresh process: peak memory and time of `steps` steps."""
    if device == "cpu":
        # (A GPU driver maps large host regions: no data cap there.)
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    import tensorflow as tf

    from benchmarks.suite.common import random_inputs

    (x,) = random_inputs((1, seq, HEADS * KEY_DIM))
    layer = make_layer(impl)
    step = step_fn(layer, x)
    gpu = device == "gpu" and tf.config.list_physical_devices("GPU")
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        gpu_before = tf.config.experimental.get_memory_info("GPU:0")["current"]
    before = _rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    status = "ok"
    try:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    except (tf.errors.ResourceExhaustedError, MemoryError) as err:
        status = "out of memory: " + str(err).splitlines()[0][:160]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if gpu:
        # On a GPU the attention's memory is device memory, not RSS.
        info = tf.config.experimental.get_memory_info("GPU:0")
        before, peak = gpu_before / 2**20, info["peak"] / 2**20
    return {
        "impl": impl,
        "seq": seq,
        "status": status,
        "rss_before_mb": before,
        "peak_before_steps_mb": peak_before,
        "peak_mb": peak,
        "peak_increase_mb": peak - before,
        "step_s": times,
        "limit_gb": limit_gb,
    }


def _available_gb():
    return memory_gb("MemAvailable") or 4.0


def _spawn_memory(impl, seq, steps, limit_gb, device):
    code = (
        "import json, sys; "
        "from benchmarks.suite.long_sequences import memory_child; "
        f"print('RESULT ' + json.dumps(memory_child({impl!r}, {seq}, "
        f"{steps}, {limit_gb}, {device!r})))"
    )
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    reason = " | ".join(tail)[-300:]
    killed = out.returncode < 0 or "bad_alloc" in reason or "memory" in reason
    return {
        "impl": impl,
        "seq": seq,
        "status": (
            f"out of memory (process ended with status {out.returncode})"
            if killed
            else f"failed (status {out.returncode})"
        ),
        "reason": reason,
        "limit_gb": limit_gb,
        "step_s": [],
    }


def _keras_estimate_gb(seq):
    """Rough peak of Keras's fwd+bwd: ~4 float32 `[8, T, T]` tensors."""
    return 4 * HEADS * seq * seq * 4 / 2**30


@register_benchmark(
    "long_sequences",
    "8",
    "Long sequences: peak memory and time, chunked vs keras MHA",
    goal=(
        f"at seq {GOAL_SEQ:,}: memory <= 1/4 and time <= {TIME_TARGET}x "
        "keras MHA"
    ),
)
def long_sequences(ctx):
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import keras

    basis, why = judging_basis()
    seqs = ctx.pick((2048, 4096, 8192, 16384), (2048,))
    steps = 1
    limit_gb = round(min(16.0, 0.6 * _available_gb()), 1)
    memory = {}
    for seq in seqs:
        for impl in IMPLS:
            ctx.log(f"memory: {impl}, seq {seq} (cap {limit_gb} GiB)")
            memory[(impl, seq)] = _spawn_memory(
                impl, seq, steps, limit_gb, ctx.device
            )
            ctx.log(f"  -> {memory[(impl, seq)]['status']}")
    # Time, side by side, where Keras fitted in memory.
    timing = {}
    for seq in seqs:
        if memory[("keras", seq)]["status"] != "ok":
            continue
        if memory[("ours", seq)]["status"] != "ok":
            continue
        (x,) = random_inputs((1, seq, HEADS * KEY_DIM))
        fns = {impl: step_fn(make_layer(impl), x) for impl in IMPLS}
        rounds = ctx.pick(2 if seq >= 8192 else 3, 1)
        ctx.log(f"time: seq {seq}, {rounds} rounds")
        timing[seq] = compare(fns, "keras", warmup=1, rounds=rounds)
        keras.backend.clear_session()
    rows = []
    for seq in seqs:
        k, o = memory[("keras", seq)], memory[("ours", seq)]
        t = timing.get(seq)
        mem_ratio = None
        if k["status"] == "ok" and o["status"] == "ok":
            mem_ratio = o["peak_increase_mb"] / max(k["peak_increase_mb"], 1)
        rows.append(
            [
                seq,
                _mem_cell(k),
                _mem_cell(o),
                "–" if mem_ratio is None else f"{mem_ratio:.3f}",
                _time_cell(k, t, "keras"),
                _time_cell(o, t, "ours"),
                "–" if t is None else ratio_cell(t["ours"]["speedup_wall"]),
                "–" if t is None else ratio_cell(t["ours"]["speedup_cpu"]),
            ]
        )
    goals = []
    k, o = memory.get(("keras", GOAL_SEQ)), memory.get(("ours", GOAL_SEQ))
    if k is not None and k["status"] == "ok" and o["status"] == "ok":
        mem_ratio = o["peak_increase_mb"] / max(k["peak_increase_mb"], 1)
        goals.append(
            goal(
                f"peak memory at seq {GOAL_SEQ:,} <= 1/4 of keras MHA",
                mem_ratio,
                MEMORY_TARGET,
                "<=",
                measured=f"{mem_ratio:.3f} ({o['peak_increase_mb']:,.0f} "
                f"vs {k['peak_increase_mb']:,.0f} MiB)",
                basis="peak RSS increase, fresh process each",
            )
        )
        t = timing[GOAL_SEQ]
        time_ratio = 1.0 / speedup(t["ours"], basis)
        goals.append(
            goal(
                f"time at seq {GOAL_SEQ:,} <= {TIME_TARGET}x keras MHA",
                time_ratio,
                TIME_TARGET,
                "<=",
                measured=f"{1 / speedup(t['ours'], 'wall'):.2f}x wall / "
                f"{1 / speedup(t['ours'], 'cpu'):.2f}x CPU",
                basis=f"fwd+bwd, interleaved; judged on {why}",
            )
        )
    else:
        for text in (
            f"peak memory at seq {GOAL_SEQ:,} <= 1/4 of keras MHA",
            f"time at seq {GOAL_SEQ:,} <= {TIME_TARGET}x keras MHA",
        ):
            goals.append(
                goal(
                    text,
                    None,
                    0,
                    "<=",
                    measured="not measured at this length in this run",
                )
            )
    notes = [
        f"Each memory process was capped at {limit_gb} GiB of data "
        "(`RLIMIT_DATA`, 60% of the memory available at the start, at most "
        "16 GiB); Keras's estimated need at 16,384 is "
        f"{_keras_estimate_gb(16384):.0f} GiB.",
        "Ours = `layers.MultiHeadAttention` with its defaults; at these "
        "lengths `attention_impl='auto'` takes the chunked path (queries in "
        "chunks of 256, keys of 512).",
    ]
    return Result(
        setup={
            "batch": 1,
            "num_heads": HEADS,
            "key_dim": KEY_DIM,
            "seq": list(seqs),
            "steps_per_memory_process": steps,
            "memory_cap_gb": limit_gb,
        },
        method=(
            "Forward + backward of self-attention on a `[1, T, 256]` float32 "
            "input in a `tf.function`. Memory: one fresh process per layer "
            "and length, peak RSS during the steps minus RSS before them. "
            "Time: both layers in one process, alternating after a warm-up "
            "step; median (seconds) and the median paired ratio."
        ),
        columns=[
            "seq",
            "keras peak MiB",
            "ours peak MiB",
            "memory ours / keras",
            "keras step s",
            "ours step s",
            "speed-up, wall",
            "speed-up, CPU",
        ],
        rows=rows,
        goals=goals,
        measurements={
            "memory": [memory[key] for key in sorted(memory)],
            "timing": {str(s): t for s, t in timing.items()},
        },
        notes=notes,
    )


def _mem_cell(entry):
    if entry["status"] != "ok":
        return entry["status"].split(":")[0]
    return f"{entry['peak_increase_mb']:,.0f}"


def _time_cell(entry, timing, impl):
    if timing is not None:
        return f"{timing[impl]['wall_ms']['median'] / 1e3:.2f}"
    if entry["status"] == "ok" and entry["step_s"]:
        # Not interleaved (the other layer did not fit): this process alone.
        return f"{min(entry['step_s']):.2f} (alone)"
    return "–"
