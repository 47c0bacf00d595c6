"""The benchmark registry: every benchmark is a function registered by name.

A benchmark function takes a `Context` and returns a `Result`; the harness
(`benchmarks.runner`) runs each one in its own process. Registration is
explicit: `benchmarks.suite` imports every benchmark module, and
`get_benchmark`/`list_benchmarks` load it first. Benchmark modules import
TensorFlow inside their functions, so listing them stays fast.
"""

import dataclasses
import sys
import time

from benchmarks.stats import meets

_REGISTRY = {}


class Skip(Exception):
    """Raised by a benchmark that cannot run here (the reason is kept)."""


@dataclasses.dataclass
class Benchmark:
    """A registered benchmark.

    Attributes:
        name: unique name, used on the command line.
        number: its number in the benchmark table (a string, e.g. "1";
            "0" for the machine limit), which orders the table and may
            name it on the command line.
        title: one line on what it measures.
        goal: the goal as text (empty when it only reports figures).
        fn: `fn(ctx) -> Result`.
        devices: devices it runs on ("cpu", "gpu").
    """

    name: str
    number: str
    title: str
    goal: str
    fn: object
    devices: tuple = ("cpu", "gpu")


def register_benchmark(name, number, title, goal="", devices=("cpu", "gpu")):
    """Decorator registering `fn(ctx) -> Result` as benchmark `name`."""

    def decorator(fn):
        if name in _REGISTRY:
            raise ValueError(
                f"Benchmark {name!r} is already registered. "
                f"Received: a second registration from {fn.__module__}"
            )
        _REGISTRY[name] = Benchmark(name, number, title, goal, fn, devices)
        return fn

    return decorator


def _load():
    import benchmarks.suite  # noqa: F401  (registers every benchmark)


def _order(benchmark):
    digits = "".join(c for c in benchmark.number if c.isdigit())
    return (int(digits or 99), benchmark.number, benchmark.name)


def list_benchmarks():
    """Every registered benchmark, in the order of their numbers."""
    _load()
    return sorted(_REGISTRY.values(), key=_order)


def get_benchmark(name):
    """The benchmark `name`, by name or number.

    Raises:
        KeyError: unknown name; the message lists close matches.
    """
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    by_number = [b for b in _REGISTRY.values() if b.number == name]
    if len(by_number) == 1:
        return by_number[0]
    # On the error path only: `layers` imports Keras, which `list` never
    # loads.
    from layers.naming import UnknownNameError
    from layers.naming import did_you_mean

    raise UnknownNameError(
        f"Unknown benchmark {name!r}.{did_you_mean(name, _REGISTRY)} "
        "`python -m benchmarks list` shows them all."
    )


@dataclasses.dataclass
class Context:
    """What a benchmark is run with.

    Attributes:
        name: the benchmark's name (prefix of log lines).
        quick: fewer repetitions and smaller sweeps (minutes, indicative).
        device: "cpu" or "gpu".
    """

    name: str
    quick: bool = False
    device: str = "cpu"

    def pick(self, full, quick):
        """`quick` under `--quick`, else `full`."""
        return quick if self.quick else full

    def log(self, message):
        """A progress line on stderr."""
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp} {self.name}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Result:
    """What a benchmark returns (written into the results JSON).

    Attributes:
        setup: the configuration measured (shapes, repetitions, ...).
        method: how it was measured, in a sentence or two.
        columns: column names of the result table.
        rows: table rows (lists of numbers or strings, one per column).
        goals: `goal(...)` dicts, each marked met / not met.
        measurements: raw statistics (medians, spreads, samples).
        notes: caveats, written under the table.
    """

    setup: dict = dataclasses.field(default_factory=dict)
    method: str = ""
    columns: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)
    goals: list = dataclasses.field(default_factory=list)
    measurements: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)


def goal(text, value, target, comparison, measured=None, basis="", note=""):
    """A goal record; `met` is decided by `stats.meets`.

    Args:
        text: the goal, e.g. "throughput vs keras MHA >= 1.25x".
        value: the measured figure the goal is judged on (None: not
            measured in this run).
        target: the threshold.
        comparison: ">=" or "<=".
        measured: how to show the measurement (default: `value`).
        basis: what `value` is (e.g. "median wall time, seq 512").
        note: an optional remark.
    """

    return {
        "goal": text,
        "value": value,
        "target": target,
        "comparison": comparison,
        "met": meets(value, target, comparison),
        "measured": measured if measured is not None else value,
        "basis": basis,
        "note": note,
    }
