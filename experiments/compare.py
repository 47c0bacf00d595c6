"""Comparison: several named experiments, one table of their results.

`python -m experiments compare "ding_*"` runs every experiment whose name
matches (each a normal run folder under `--out`, resumable, and skipped
when already finished with the same config), then writes
`comparison.md` and `comparison.json`: one row per experiment with the
columns its task declares (`Task.comparison_columns`; e.g. BLEU greedy and
beam, parameters and training time for translation).
"""

import fnmatch
import os
import platform
import time

from experiments import config as config_lib
from experiments import report
from experiments import rundir as rundir_lib
from experiments import runner
from experiments.errors import UserError
from experiments.tasks import get_task


def expand_names(patterns):
    """Experiment names matching any of the wildcard `patterns`, in order."""
    known = config_lib.experiment_names()
    names = []
    for pattern in patterns:
        matches = [n for n in known if fnmatch.fnmatch(n, pattern)]
        if not matches:
            # Unknown exact names get the usual close-match message.
            config_lib.get_experiment(pattern)
        names.extend(n for n in matches if n not in names)
    if not names:
        raise UserError("No experiment to compare.")
    return names


def _format(value, fmt):
    if value is None:
        return "—"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def markdown_table(summary):
    """The comparison as a markdown table."""
    columns = summary["columns"]
    lines = [
        "| experiment | model | " + " | ".join(c[0] for c in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for row in summary["rows"]:
        cells = [_format(row.get(key), fmt) for _, key, fmt in columns]
        lines.append(
            f"| {row['experiment']} | {row['model']} | "
            + " | ".join(cells)
            + " |"
        )
    machine = summary["machine"]
    lines += [
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['platform']}; load "
        f"average at the end {machine['load_average']}. Epochs: "
        + ", ".join(f"{r['experiment']} {r['epochs']}" for r in summary["rows"])
        + ".",
    ]
    return "\n".join(lines) + "\n"


def compare(
    patterns,
    *,
    overrides=(),
    epochs=None,
    out=None,
    data_dir=None,
    strategy="default",
    verbose="auto",
):
    """Runs (or reuses) the experiments and returns the comparison dict."""

    names = expand_names(patterns)
    configs = {name: runner.resolve(name, overrides, epochs) for name in names}
    tasks = {get_task(c.task) for c in configs.values()}
    if len(tasks) != 1:
        raise UserError(
            "compare needs experiments of one task. Received: "
            + ", ".join(f"{n} ({c.task})" for n, c in configs.items())
        )
    task = tasks.pop()
    for config in configs.values():
        task.validate(config)
    out = out or rundir_lib.create_unique("runs", "compare")
    os.makedirs(out, exist_ok=True)

    rows = []
    for name, config in configs.items():
        path = os.path.join(out, name)
        metrics = rundir_lib.finished_metrics(path, config)
        if metrics is None:
            print(f"\n=== {name} ===", flush=True)
            start = time.time()
            metrics = runner.run(
                config,
                name=name,
                out=path,
                data_dir=data_dir,
                strategy=strategy,
                verbose=verbose,
            )
            print(f"{name}: {time.time() - start:.0f} s in all", flush=True)
        else:
            print(f"{name}: finished earlier, reusing.", flush=True)
        rows.append(
            {
                "experiment": name,
                "model": config.model.name,
                "model_kwargs": config.model.kwargs,
                "epochs": config.train.epochs,
                **{
                    key: metrics.get(key)
                    for _, key, _ in task.comparison_columns
                },
            }
        )
    summary = {
        "experiments": names,
        "overrides": list(overrides),
        "data_dir": data_dir,
        "columns": [list(c) for c in task.comparison_columns],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "rows": rows,
    }
    table = markdown_table(summary)
    report.write_summary_report(
        out,
        f"Comparison: {', '.join(names)}",
        table,
        [os.path.join(out, name) for name in configs],
    )
    return rundir_lib.write_summary(out, "comparison", summary, table)
