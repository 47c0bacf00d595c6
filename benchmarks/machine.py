"""What the numbers were measured on, and the machine's matmul limit.

Results are labelled with a hostname-free description of the hardware
(CPU model and core count, or a `--machine` label), the software versions
and the load average, because absolute times mean nothing without them.
The machine limit is a measured large float32 matmul rate (GFLOP/s), the
roofline against which model FLOP utilisation (MFU) is computed.
"""

import importlib.metadata
import os
import platform
import re

import numpy as np

from experiments.timing import interleave

PACKAGES = (
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "tensorflow-datasets",
    "numpy",
)


def cpu_model():
    """The CPU model name (from /proc/cpuinfo, else `platform`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_count():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gb(field="MemTotal"):
    """A /proc/meminfo field in GiB (None where unavailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def slug(text):
    """`"AMD EPYC 7B13"` -> `"amd-epyc-7b13"` (safe in a file name)."""
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text or "machine"


def machine_label(label=None):
    """The results' machine name: `label` (slugged), else CPU + cores."""
    if label:
        return slug(label)
    return f"{slug(cpu_model())}-{cpu_count()}c"


def versions():
    """Installed versions of the packages that decide the numbers."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def load_average():
    """`os.getloadavg()` as a list (1, 5, 15 minutes), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def load_warning(where, load=None, cores=None):
    """A warning when the 1-minute load average exceeds the core count.

    Other jobs then compete for the cores: wall times mostly measure
    waiting, so the numbers are not those of a quiet machine. Returns
    None on a quiet machine (or where the load is unknown).

    Args:
        where: what was about to run (e.g. "run start", a benchmark name).
        load: `load_average()` (read now when None).
        cores: core count (`cpu_count()` when None).
    """
    load = load_average() if load is None else load
    cores = cpu_count() if cores is None else cores
    if not load or load[0] <= cores:
        return None
    return f"{where}: 1-minute load average {load[0]} > {cores} cores"


def describe(label=None):
    """The hardware/software record written into every results file."""
    return {
        "label": machine_label(label),
        "cpu_model": cpu_model(),
        "cores": cpu_count(),
        "memory_gb": None if memory_gb() is None else round(memory_gb(), 1),
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": versions(),
    }


def matmul_rate(sizes=(2048, 4096), repeats=5, device=None):
    """Measured float32 matmul rate: the machine limit for MFU.

    Square `n x n` float32 matmuls in a `tf.function` (TensorFlow's own
    kernel, the one Dense layers use), after a warm-up call; the rate of
    the fastest of `repeats` calls per size (a limit is a best case), and
    the median. The product is reduced to a scalar on the device so the
    host copy does not count.

    Args:
        sizes: matrix sizes `n`.
        repeats: timed calls per size, interleaved across sizes.
        device: optional TensorFlow device string (e.g. "/GPU:0").

    Returns:
        `{"best_gflops", "best_size", "per_size": {n: {...}}}` where each
        size has `best_gflops`, `median_gflops` (wall time) and
        `best_gflops_per_cpu_s` (GFLOP per second of process CPU time: the
        rate of the work itself, robust to other load on a shared CPU).
    """
    # Deferred: `python -m benchmarks list` imports every suite module,
    # which must not load TensorFlow.
    import tensorflow as tf

    fns = {}
    with tf.device(device or ""):
        for n in sizes:
            rng = np.random.default_rng(n)
            a = tf.constant(rng.standard_normal((n, n)), tf.float32)
            b = tf.constant(rng.standard_normal((n, n)), tf.float32)
            product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
            fns[n] = lambda p=product, a=a, b=b: p(a, b).numpy()
    samples = interleave(fns, warmup=1, steps=1, rounds=repeats)
    per_size = {}
    for n, s in samples.items():
        gflop = 2.0 * n**3 / 1e9
        wall = np.asarray(s["wall_ms"]) / 1e3
        cpu = np.maximum(np.asarray(s["cpu_ms"]) / 1e3, 1e-9)
        per_size[str(n)] = {
            "gflop": gflop,
            "best_gflops": float(gflop / wall.min()),
            "median_gflops": float(gflop / np.median(wall)),
            "best_gflops_per_cpu_s": float(gflop / cpu.min()),
            "wall_ms": s["wall_ms"],
            "cpu_ms": s["cpu_ms"],
        }
    best = max(per_size, key=lambda k: per_size[k]["best_gflops"])
    return {
        "best_gflops": per_size[best]["best_gflops"],
        "best_gflops_per_cpu_s": max(
            v["best_gflops_per_cpu_s"] for v in per_size.values()
        ),
        "best_size": int(best),
        "per_size": per_size,
    }
