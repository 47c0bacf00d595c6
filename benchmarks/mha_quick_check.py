"""Quick side-by-side check of layers.MultiHeadAttention vs Keras's (TF, CPU).

Not the benchmark harness (issue 7); a stand-alone script the harness can
absorb. Two measurements, each a ratio taken in the same process (speed) or
on the same machine (memory):

  speed:  forward+backward (gradients of the layer's weights) of
          self-attention, batch 16, 8 heads, width 256, float32, in a
          `tf.function` (add --jit for XLA); interleaved repetitions, median
          wall time and median process CPU time (robust on a shared machine).
  memory: peak RSS increase of one fwd+bwd step at a long sequence, one
          fresh process per implementation (batch 1, 8 heads, width 256).

    python benchmarks/mha_quick_check.py speed --seq 128 512
    python benchmarks/mha_quick_check.py memory --seq 8192
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make(impl, keras):
    from layers import MultiHeadAttention

    if impl == "keras":
        return keras.layers.MultiHeadAttention(8, 32)
    if impl.startswith("chunked:"):
        q_chunk, k_chunk = map(int, impl.split(":")[1].split("x"))
        return MultiHeadAttention(
            8,
            32,
            attention_impl="chunked",
            query_chunk_size=q_chunk,
            key_chunk_size=k_chunk,
        )
    return MultiHeadAttention(8, 32, attention_impl=impl)


def _step_fn(layer, tf, jit):
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x, x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, layer.trainable_variables)

    return tf.function(step, jit_compile=jit)


def speed(args):
    import keras
    import numpy as np
    import tensorflow as tf

    for seq in args.seq:
        x = tf.constant(
            np.random.default_rng(0).normal(size=(args.batch, seq, 256)),
            tf.float32,
        )
        steps = {}
        for impl in ["keras", *args.impl]:
            layer = _make(impl, keras)
            layer(x[:, :8], x[:, :8])
            steps[impl] = _step_fn(layer, tf, args.jit)
            for _ in range(2):
                [g.numpy() for g in steps[impl](x)]
        wall = {k: [] for k in steps}
        cpu = {k: [] for k in steps}
        for _ in range(args.reps):
            for name, fn in steps.items():
                t0, c0 = time.perf_counter(), time.process_time()
                [g.numpy() for g in fn(x)]
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        base_wall = np.median(wall["keras"])
        base_cpu = np.median(cpu["keras"])
        for name in steps:
            print(
                json.dumps(
                    {
                        "seq": seq,
                        "jit": args.jit,
                        "impl": name,
                        "wall_ms": round(1e3 * np.median(wall[name]), 1),
                        "cpu_ms": round(1e3 * np.median(cpu[name]), 1),
                        "speedup_wall": round(
                            base_wall / np.median(wall[name]), 2
                        ),
                        "speedup_cpu": round(
                            base_cpu / np.median(cpu[name]), 2
                        ),
                    }
                )
            )


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory_child(args):
    import keras
    import numpy as np
    import tensorflow as tf

    (impl,) = args.impl
    seq = args.seq[0]
    x = tf.constant(
        np.random.default_rng(0).normal(size=(args.batch, seq, 256)),
        tf.float32,
    )
    layer = _make(impl, keras)
    layer(x[:, :8], x[:, :8])
    step = _step_fn(layer, tf, args.jit)
    step.get_concrete_function(x)
    before = _rss_mb()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        [g.numpy() for g in step(x)]
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seq": seq,
                "batch": args.batch,
                "impl": impl,
                "peak_increase_mb": round(peak - before),
                "step_s_first": round(times[0], 2),
                "step_s_median": round(float(np.median(times)), 2),
            }
        )
    )


def memory(args):
    for seq in args.seq:
        for impl in ["keras", *args.impl]:
            cmd = [
                sys.executable,
                __file__,
                "memory-child",
                "--seq",
                str(seq),
                "--impl",
                impl,
                "--batch",
                str(args.batch),
                "--reps",
                str(args.reps),
            ] + (["--jit"] if args.jit else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-1500:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["speed", "memory", "memory-child"])
    parser.add_argument("--seq", type=int, nargs="+")
    parser.add_argument("--impl", nargs="+")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--jit", action="store_true")
    args = parser.parse_args()
    if args.mode == "speed":
        args.seq = args.seq or [128, 512]
        args.impl = args.impl or ["auto"]
        args.batch = args.batch or 16
        args.reps = args.reps or 10
        speed(args)
    else:
        args.seq = args.seq or [8192]
        args.impl = args.impl or ["auto"]
        args.batch = args.batch or 1
        args.reps = args.reps or 2
        (memory if args.mode == "memory" else memory_child)(args)


if __name__ == "__main__":
    main()
