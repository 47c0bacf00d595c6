"""Runs benchmarks, each in its own fresh process, and writes the results.

`run(...)` starts `python -m benchmarks _child NAME` per benchmark (so one
benchmark's memory, threads, compiled functions or crash never affect the
next), collects the JSON each child writes, adds the hardware record and
the load average, and writes `<machine>-<date>.json` and `.md`. Results of
benchmarks not re-run are kept from an existing file of the same machine
and date, so a single benchmark can be re-measured.
"""

import collections
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from benchmarks import machine as machine_lib
from benchmarks import registry
from benchmarks import report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "benchmarks", "results")


class HarnessError(Exception):
    """A user error of the harness (printed as one line, exit status 2)."""


def gpu_name():
    """The first visible NVIDIA GPU's name, or None (no TF import)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
    return names[0] if out.returncode == 0 and names else None


def check_gpu():
    """Raises HarnessError unless TensorFlow sees a GPU; returns its name."""
    name = gpu_name()
    probe = (
        "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; "
        "import tensorflow as tf; "
        "print(len(tf.config.list_physical_devices('GPU')))"
    )
    count = 0
    if name is not None:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True
        )
        lines = out.stdout.strip().splitlines()
        count = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    if not count:
        raise HarnessError(
            "--device gpu: no GPU is visible "
            + (
                "(nvidia-smi found none)"
                if name is None
                else f"to TensorFlow (nvidia-smi shows {name})"
            )
            + ". Run on a machine with a CUDA GPU, or use --device cpu."
        )
    return name


def child_env(device):
    """Environment of a benchmark process on `device`."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = REPO_ROOT + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.pop("KERAS_BACKEND", None)  # TensorFlow unless a benchmark says
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
        env["JAX_PLATFORMS"] = "cpu"
    return env


def run_child(name, result_path, quick, device):
    """Runs one benchmark in this process and writes its result JSON."""
    bench = registry.get_benchmark(name)
    ctx = registry.Context(name=bench.name, quick=quick, device=device)
    entry = {
        "name": bench.name,
        "number": bench.number,
        "title": bench.title,
        "goal": bench.goal,
        "quick": quick,
        "device": device,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": {"start": machine_lib.load_average()},
    }
    start = time.perf_counter()
    try:
        if device not in bench.devices:
            raise registry.Skip(
                f"runs on {', '.join(bench.devices)} only (--device {device})"
            )
        result = bench.fn(ctx)
        entry.update(
            status="ok",
            setup=result.setup,
            method=result.method,
            columns=result.columns,
            rows=result.rows,
            goals=result.goals,
            measurements=result.measurements,
            notes=result.notes,
        )
    except registry.Skip as skip:
        entry.update(status="skipped", reason=str(skip))
    except Exception:  # noqa: BLE001  (recorded, the harness goes on)
        entry.update(status="error", reason=traceback.format_exc())
        traceback.print_exc()
    entry["wall_s"] = round(time.perf_counter() - start, 1)
    entry["load_average"]["end"] = machine_lib.load_average()
    report.write_json(result_path, entry)
    return 0 if entry["status"] != "error" else 1


def _spawn(name, quick, device, timeout, tmp_dir):
    """Runs benchmark `name` in a child process; returns its entry."""
    result_path = os.path.join(tmp_dir, f"{name}.json")
    cmd = [sys.executable, "-m", "benchmarks", "_child", name]
    cmd += ["--result", result_path, "--device", device]
    cmd += ["--quick"] if quick else []
    tail = collections.deque(maxlen=40)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=child_env(device),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    # A watchdog: the child is killed when it runs past `timeout`.
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            tail.append(line.rstrip())
            if line.startswith("["):
                print(line.rstrip(), file=sys.stderr, flush=True)
        proc.wait()
    finally:
        watchdog.cancel()
    timed_out = time.perf_counter() - start >= timeout and proc.returncode
    if os.path.exists(result_path) and not timed_out:
        with open(result_path) as f:
            return json.load(f)
    print("\n".join(list(tail)[-15:]), file=sys.stderr, flush=True)
    bench = registry.get_benchmark(name)
    reason = (
        f"timed out after {timeout} s"
        if timed_out
        else f"process exited with status {proc.returncode}"
    )
    return {
        "name": bench.name,
        "number": bench.number,
        "title": bench.title,
        "goal": bench.goal,
        "status": "error",
        "reason": reason + "\n" + "\n".join(tail),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def _warn_if_loaded(results, where, load=None):
    """Prints and records a warning when the machine is not quiet."""
    warning = machine_lib.load_warning(where, load, results["machine"]["cores"])
    if warning:
        print(
            f"warning: {warning}: other jobs share the CPU, so wall times "
            "are inflated (goals are judged on process CPU time); measure "
            "on a quiet machine for the record.",
            file=sys.stderr,
            flush=True,
        )
        results["load_warnings"].append(warning)


def resolve_names(names):
    """Benchmark names (or numbers) -> registered names, in number order.

    Raises:
        HarnessError: an unknown name (with close matches).
    """
    if not names:
        return [b.name for b in registry.list_benchmarks()]
    chosen = []
    for name in names:
        try:
            bench = registry.get_benchmark(name)
        except KeyError as err:
            raise HarnessError(err.args[0]) from None
        if bench.name not in chosen:
            chosen.append(bench.name)
    order = [b.name for b in registry.list_benchmarks()]
    return sorted(chosen, key=order.index)


def run(
    names=(),
    quick=False,
    device="cpu",
    label=None,
    out_dir=DEFAULT_OUT,
    timeout=3600,
    command=None,
):
    """Runs the benchmarks and writes the results; returns the JSON path.

    Args:
        names: benchmark names or numbers (all when empty).
        quick: fewer repetitions, smaller sweeps.
        device: "cpu" (GPUs hidden) or "gpu" (fails unless one is visible).
        label: machine label for the file name (default: CPU + cores).
        out_dir: results folder.
        timeout: seconds allowed per benchmark.
        command: the command line recorded in the results.
    """
    if device not in ("cpu", "gpu"):
        raise HarnessError(
            f"--device must be cpu or gpu. Received: --device {device}"
        )
    selected = resolve_names(names)
    gpu = check_gpu() if device == "gpu" else None
    started = time.perf_counter()
    now = datetime.datetime.now()
    machine = machine_lib.describe(label)
    machine["gpu"] = gpu
    results = {
        "harness": {
            "command": command or "python -m benchmarks run",
            "date": now.strftime("%Y-%m-%d"),
            "started": now.isoformat(timespec="seconds"),
            "quick": quick,
            "device": device,
        },
        "machine": machine,
        "load_average": {"start": machine_lib.load_average()},
        "benchmarks": {},
    }
    stem = report.results_stem(machine["label"], results["harness"]["date"])
    stem += "-quick" if quick else ""
    existing = os.path.join(out_dir, stem + ".json")
    provenance = {
        name: {
            "command": results["harness"]["command"],
            "started": results["harness"]["started"],
        }
        for name in selected
    }
    results["harness"]["provenance"] = provenance
    results["load_warnings"] = []
    _warn_if_loaded(results, "run start", results["load_average"]["start"])
    if os.path.exists(existing):
        with open(existing) as f:
            previous = json.load(f)
        if previous.get("harness", {}).get("device") == device:
            kept = {
                k: v
                for k, v in previous.get("benchmarks", {}).items()
                if k not in selected
            }
            results["benchmarks"].update(kept)
            # Where each kept result came from (several earlier runs when a
            # file was re-measured more than once).
            earlier = previous["harness"].get("provenance") or {}
            here = {
                "command": previous["harness"].get("command"),
                "started": previous["harness"].get("started"),
            }
            provenance.update({k: earlier.get(k, here) for k in kept})
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp_dir:
        for name in selected:
            print(f"== {name}", file=sys.stderr, flush=True)
            _warn_if_loaded(results, name)
            entry = _spawn(name, quick, device, timeout, tmp_dir)
            results["benchmarks"][name] = entry
            if name == "matmul" and entry.get("status") == "ok":
                machine["matmul_gflops"] = entry["measurements"]["best_gflops"]
            print(
                f"== {name}: {entry['status']} in {entry.get('wall_s')} s",
                file=sys.stderr,
                flush=True,
            )
    if "matmul_gflops" not in machine:
        earlier = results["benchmarks"].get("matmul", {})
        if earlier.get("status") == "ok":
            machine["matmul_gflops"] = earlier["measurements"]["best_gflops"]
    results["load_average"]["end"] = machine_lib.load_average()
    results["harness"]["wall_s"] = round(time.perf_counter() - started, 1)
    json_path, md_path = report.write_results(results, out_dir)
    return json_path, md_path, results
