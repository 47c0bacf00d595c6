"""Benchmark 11 (GPU only): attention kernels and layers on a GPU, JAX.

Causal self-attention forward + backward in bfloat16 on the JAX backend,
jit-compiled (XLA), at `[B, T, 16 heads, 64]`: `keras.ops.dot_product_
attention` with `flash_attention=True` (cuDNN's flash attention), the same
op without it (XLA's fused softmax), this project's chunked attention
(`layers.chunked_attention`), and the two layers, `layers.
MultiHeadAttention` and `keras.layers.MultiHeadAttention`, under the
`mixed_bfloat16` policy. Tokens/s and MFU against the GPU's measured
bfloat16 matmul rate (also reported: float32). Runs in a child process
with `KERAS_BACKEND=jax` (the harness's processes use TensorFlow).
"""

import json
import os
import subprocess
import sys
import tempfile

from benchmarks.registry import Result
from benchmarks.registry import register_benchmark

HEADS, HEAD_DIM = 16, 64


def _time(fn, args, repeats):
    """Median and best seconds of `fn(*args)` (synchronised), after one
    warm-up call (compilation)."""
    import time

    import jax
    import numpy as np

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(min(times))


def _matmul_rates(size, repeats):
    import jax
    import jax.numpy as jnp

    rates = {}
    for dtype in ("float32", "bfloat16"):
        key = jax.random.PRNGKey(0)
        a = jax.random.normal(key, (size, size), dtype)
        b = jax.random.normal(jax.random.PRNGKey(1), (size, size), dtype)
        fn = jax.jit(lambda a, b: jnp.dot(a, b).sum())
        _, best = _time(fn, (a, b), repeats)
        rates[dtype] = 2.0 * size**3 / best / 1e12
    return rates  # TFLOP/s


def _attention_contenders():
    """`{name: fn(q, k, v) -> out}` on `[B, T, N, H]` tensors."""
    from keras import ops

    from layers.chunked_attention import chunked_attention

    return {
        "keras.ops.dot_product_attention, flash": lambda q, k, v: (
            ops.dot_product_attention(
                q, k, v, is_causal=True, flash_attention=True
            )
        ),
        "keras.ops.dot_product_attention, XLA": lambda q, k, v: (
            ops.dot_product_attention(
                q, k, v, is_causal=True, flash_attention=False
            )
        ),
        "ours: chunked_attention": lambda q, k, v: chunked_attention(
            q, k, v, is_causal=True
        ),
    }


def measure(batch, lengths, repeats, matmul_size):
    """Runs every case under the JAX backend; returns a JSON-ready dict."""
    import jax
    import keras
    import numpy as np

    from layers import MultiHeadAttention

    rates = _matmul_rates(matmul_size, repeats)
    peak = rates["bfloat16"] * 1e12
    width = HEADS * HEAD_DIM
    cases = []
    contenders = _attention_contenders()
    for length in lengths:
        shape = (batch, length, HEADS, HEAD_DIM)
        qkv = [
            jax.random.normal(jax.random.PRNGKey(i), shape, "bfloat16")
            for i in range(3)
        ]
        # QK^T and PV, halved by the causal mask, x3 for fwd + bwd.
        flops = 3 * 4 * batch * HEADS * length * length * HEAD_DIM / 2
        for name, fn in contenders.items():
            step = jax.jit(
                jax.grad(
                    lambda q, k, v, fn=fn: fn(q, k, v).astype("float32").sum(),
                    argnums=(0, 1, 2),
                )
            )
            cases.append(_case(name, length, step, qkv, flops, peak, repeats))
        # Whole layers (projections included) under mixed precision.
        keras.config.set_dtype_policy("mixed_bfloat16")
        x = np.random.default_rng(0).normal(size=(batch, length, width))
        x = x.astype("float32")
        layer_flops = flops + 3 * 2 * batch * length * 4 * width * width
        for name, layer in (
            ("layers.MultiHeadAttention", MultiHeadAttention(HEADS, HEAD_DIM)),
            (
                "keras.layers.MultiHeadAttention",
                keras.layers.MultiHeadAttention(HEADS, HEAD_DIM),
            ),
        ):
            layer(x[:1, :8], x[:1, :8], use_causal_mask=True)
            step = _layer_step(layer)
            cases.append(
                _case(name, length, step, [x], layer_flops, peak, repeats)
            )
        keras.config.set_dtype_policy("float32")
    return {
        "device": str(jax.devices()[0]),
        "matmul_tflops": rates,
        "cases": cases,
    }


def _layer_step(layer):
    import jax
    import keras

    variables = layer.trainable_variables

    def loss(values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            y = layer(x, x, use_causal_mask=True)
        return y.astype("float32").sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    values = [v.value for v in variables]
    return lambda x: grad(values, x)


def _case(name, length, step, args, flops, peak, repeats):
    try:
        median, best = _time(step, args, repeats)
    except Exception as err:  # noqa: BLE001  (recorded: e.g. no cuDNN)
        return {"name": name, "length": length, "error": str(err)[:300]}
    tokens = args[0].shape[0] * length
    return {
        "name": name,
        "length": length,
        "median_ms": median * 1e3,
        "best_ms": best * 1e3,
        "tokens_per_s": tokens / median,
        "tflops": flops / median / 1e12,
        "mfu": flops / median / peak,
    }


@register_benchmark(
    "gpu_attention",
    "11",
    "GPU: flash / XLA / chunked attention and MHA layers, bf16, JAX",
    devices=("gpu",),
)
def gpu_attention(ctx):
    batch = ctx.pick(4, 1)
    lengths = ctx.pick((1024, 4096, 16384), (512,))
    repeats = ctx.pick(10, 2)
    matmul_size = ctx.pick(8192, 1024)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "gpu.json")
        code = (
            "import json, sys; from benchmarks.suite.gpu_attention import "
            f"measure; json.dump(measure({batch}, {list(lengths)}, "
            f"{repeats}, {matmul_size}), open({out!r}, 'w'))"
        )
        env = dict(os.environ, KERAS_BACKEND="jax")
        ctx.log(f"JAX child: batch {batch}, lengths {list(lengths)}")
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        with open(out) as f:
            data = json.load(f)
    rows = [
        [
            c["name"],
            c["length"],
            c.get("median_ms"),
            c.get("tokens_per_s"),
            c.get("tflops"),
            f"{c['mfu']:.1%}" if "mfu" in c else c.get("error", "–"),
        ]
        for c in data["cases"]
    ]
    rates = data["matmul_tflops"]
    return Result(
        setup={
            "batch": batch,
            "lengths": list(lengths),
            "heads": HEADS,
            "head_dim": HEAD_DIM,
            "repeats": repeats,
        },
        method=(
            "Causal self-attention forward + backward (gradients of q, k, v;"
            " for the layers, of the weights and input) in bfloat16, "
            "`jax.jit`-compiled, on the JAX backend; one compiling call, then"
            f" the median of {repeats}. FLOPs: QK^T and PV halved by the "
            "causal mask (plus the layers' four projections), x3 for forward"
            " + backward; MFU against the measured bfloat16 matmul rate."
        ),
        columns=["contender", "seq", "ms", "tokens/s", "TFLOP/s", "MFU"],
        rows=rows,
        measurements=data,
        notes=[
            f"Device: {data['device']}; measured matmul rate "
            f"{rates['bfloat16']:.0f} TFLOP/s bfloat16, "
            f"{rates['float32']:.0f} TFLOP/s float32 ({matmul_size}^2).",
        ],
    )
