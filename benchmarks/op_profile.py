"""Where a benchmark step's time goes, op by op.

`python -m benchmarks profile TARGET` answers it for the benchmarks' steps.
The goals that stay missed (CBAM's overhead, MultiHeadAttention against
Keras, the Transformer's MFU) are decided by the ops a step runs, so this
runs one of those steps under TensorFlow's profiler
(`tf.profiler.experimental`) and sums the executed ops' durations from the
trace it writes (the XSpace protobuf; TensorBoard is not needed to read
it). Each op event of TensorFlow's executor threads counts its own wall
duration; two ops running at once on two cores both count in full, so the
ops' total per step lies between the step's wall time and its CPU time.
The step's wall and CPU times are measured separately, outside the
profiler, which slows the step down a little.

    python -m benchmarks profile transformer_mfu          # by op type
    python -m benchmarks profile cbam_resnet20_inference --by name
    python -m benchmarks profile self_attention_ours --steps 40

Example (a step of one matmul):

>>> import tensorflow as tf
>>> a = tf.ones((64, 64))
>>> step = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
>>> result = profile_step(lambda: step().numpy(), steps=3, warmup=1)
>>> any(row.op_type.endswith("MatMul") for row in result.rows)
True
"""

import collections
import dataclasses
import glob
import os
import re
import tempfile

import numpy as np

from benchmarks.suite import vision_overhead
from experiments.timing import time_calls

GROUPINGS = ("op", "name")


def _transformer_mfu():
    from benchmarks.suite import transformer_mfu

    return transformer_mfu.recipe_step()[1]


def _self_attention(contender):
    def build():
        from benchmarks.suite import self_attention

        return self_attention.self_attention_steps(128)[contender]

    return build


def _vision(model, mode):
    def build():
        _, train, inference = vision_overhead.model_steps(model)
        return train if mode == "train" else inference

    return build


# Target name -> builder of a zero-argument step callable (synchronous).
TARGETS = {
    "transformer_mfu": _transformer_mfu,
    "self_attention_ours": _self_attention("ours"),
    "self_attention_keras": _self_attention("keras"),
    **{
        f"{model}_{mode}": _vision(model, mode)
        for model in vision_overhead.MODELS
        for mode in ("train", "inference")
    },
}


@dataclasses.dataclass
class OpRow:
    """One group of ops: total milliseconds and calls per step."""

    op_type: str
    name: str
    ms_per_step: float
    calls_per_step: float


@dataclasses.dataclass
class Profile:
    """A profiled step: medians of its wall / CPU time and its op groups."""

    wall_ms: float
    cpu_ms: float
    steps: int
    rows: list

    @property
    def op_ms(self):
        return sum(row.ms_per_step for row in self.rows)


def read_op_events(logdir):
    """`[(op_name, op_type, duration_ms)]` of every executed op in the
    newest trace under `logdir` (what `tf.profiler.experimental` wrote)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    traces = sorted(
        glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
        key=os.path.getmtime,
    )
    if not traces:
        raise RuntimeError(f"The profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(traces[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            # TensorFlow's executor threads; op events read "name:Type".
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = names[event.metadata_id].name
                if ":" not in label or "::" in label:
                    # Executor bookkeeping (`ExecutorState::Process`, which
                    # spans the ops it runs), thread-pool regions.
                    continue
                name, op_type = label.rsplit(":", 1)
                events.append((name, op_type, event.duration_ps / 1e9))
    return events


def _layer_name(op_name):
    # "model_1/block1_ff1_1/Gelu/mul_2" -> "model/block1_ff1/Gelu/mul_2":
    # the scopes' uniquifying suffixes differ between builds of the same
    # model; the op's own suffix tells ops of one scope apart.
    return re.sub(r"(_\d+)+(?=/)", "", op_name)


def summarize(events, steps, by="op"):
    """Groups `read_op_events` output per op type (`by="op"`) or per op
    name and type (`by="name"`), per step, largest first."""
    from layers.validation import check_choice

    check_choice("by", by, GROUPINGS)
    totals = collections.defaultdict(lambda: [0.0, 0])
    for name, op_type, ms in events:
        key = (op_type, "" if by == "op" else _layer_name(name))
        totals[key][0] += ms
        totals[key][1] += 1
    rows = [
        OpRow(op_type, name, ms / steps, calls / steps)
        for (op_type, name), (ms, calls) in totals.items()
    ]
    return sorted(rows, key=lambda row: -row.ms_per_step)


def _check_arguments(steps, warmup, by, top=1):
    # Deferred: `python -m benchmarks list` must not load TensorFlow, which
    # the `layers` package imports.
    from layers.validation import check_choice
    from layers.validation import check_int

    check_int("steps", steps, 1)
    check_int("warmup", warmup, 0)
    check_int("top", top, 1)
    check_choice("by", by, GROUPINGS)


def profile_step(step, steps=20, warmup=5, by="op"):
    """Times `step()` and profiles `steps` more calls; returns a `Profile`."""
    import tensorflow as tf

    _check_arguments(steps, warmup, by)
    for _ in range(warmup):
        step()
    wall, cpu = time_calls(step, steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                step()
        finally:
            tf.profiler.experimental.stop()
        events = read_op_events(logdir)
    return Profile(
        wall_ms=float(np.median(wall)),
        cpu_ms=float(np.median(cpu)),
        steps=steps,
        rows=summarize(events, steps, by),
    )


def render(target, profile, top=25):
    """The profile as markdown: a header line and the largest groups."""
    total = profile.op_ms
    lines = [
        f"`{target}`: step {profile.wall_ms:.2f} ms wall, "
        f"{profile.cpu_ms:.2f} ms CPU (medians of {profile.steps}, outside "
        f"the profiler); ops {total:.2f} ms per step (sum of op durations).",
        "",
        "| op | name | ms per step | share | calls per step |",
        "|---|---|---:|---:|---:|",
    ]
    for row in profile.rows[:top]:
        share = row.ms_per_step / total if total else 0.0
        lines.append(
            f"| {row.op_type} | {row.name or '(all)'} | "
            f"{row.ms_per_step:.3f} | {share:.1%} | {row.calls_per_step:g} |"
        )
    left = profile.rows[top:]
    if left:
        ms = sum(row.ms_per_step for row in left)
        share = ms / total if total else 0.0
        lines.append(f"| ({len(left)} more) | | {ms:.3f} | {share:.1%} | |")
    return "\n".join(lines)


def run(target, steps=20, warmup=5, by="op", top=25):
    """Builds `target`'s step, profiles it and returns the markdown."""
    if target not in TARGETS:
        raise ValueError(
            f"Unknown profile target {target!r}; choose one of "
            f"{', '.join(TARGETS)}"
        )
    _check_arguments(steps, warmup, by, top)
    step = TARGETS[target]()
    return render(target, profile_step(step, steps, warmup, by), top)
