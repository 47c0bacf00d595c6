"""The machine limit: a measured large float32 matmul rate (GFLOP/s)."""

from benchmarks.machine import matmul_rate
from benchmarks.registry import Result
from benchmarks.registry import register_benchmark


@register_benchmark(
    "matmul",
    "0",
    "Machine limit: float32 matmul GFLOP/s (the MFU roofline)",
)
def matmul(ctx):
    sizes = ctx.pick((2048, 4096), (1024,))
    repeats = ctx.pick(5, 3)
    device = "/GPU:0" if ctx.device == "gpu" else "/CPU:0"
    ctx.log(f"square matmuls {sizes}, best of {repeats}")
    rate = matmul_rate(sizes, repeats=repeats, device=device)
    rows = [
        [
            f"{n} x {n}",
            v["gflop"],
            v["best_gflops"],
            v["median_gflops"],
            v["best_gflops_per_cpu_s"],
        ]
        for n, v in rate["per_size"].items()
    ]
    return Result(
        setup={"sizes": list(sizes), "repeats": repeats, "device": device},
        method=(
            "`tf.matmul` of two random float32 square matrices in a "
            "`tf.function` (TensorFlow's own kernel, the one `Dense` "
            "uses), reduced to a scalar on the device; one warm-up call, "
            f"then {repeats} calls per size, sizes interleaved. The limit is "
            "the best rate over sizes (a best case by design). GFLOP per "
            "CPU-second divides by the process CPU time (all threads) "
            "instead of the wall time."
        ),
        columns=[
            "size",
            "GFLOP per call",
            "best GFLOP/s",
            "median GFLOP/s",
            "best GFLOP per CPU-second",
        ],
        rows=rows,
        measurements=rate,
        notes=[
            f"Machine limit used for MFU: {rate['best_gflops']:.1f} GFLOP/s "
            f"({rate['best_size']} x {rate['best_size']})."
        ],
    )
