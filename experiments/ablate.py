"""Ablation: the same experiment with several models and seeds, one table.

`python -m experiments ablate digits_cbam_resnet20` trains the plain / SE /
CBAM / ECA variants of the experiment's ResNet with seeds 0, 1, 2 (or the
`--models` given, each a zoo name with optional `:key=value` builder
arguments, e.g. `cbam_resnet20:attention_kwargs.kernel_size=3`; each a
normal run folder under `--out`, resumable and skipped when finished),
measures every variant's training-step time fairly (`experiments.timing`)
and writes `ablation.md` and `ablation.json` with mean ± std of the task's
primary metric.
"""

import os
import platform
import re

import keras
import numpy as np

from experiments import config as config_lib
from experiments import report
from experiments import rundir as rundir_lib
from experiments import runner
from experiments import timing
from experiments import training
from experiments.errors import UserError
from experiments.tasks import get_task


def parse_model_spec(spec):
    """`"cbam_resnet20:attention_kwargs.kernel_size=3"` -> overrides.

    A spec is a zoo model name optionally followed by `:key=value` builder
    arguments (dotted keys go into nested dicts), so one ablation can
    compare settings of the same model.
    """
    name, *arguments = spec.split(":")
    overrides = [f"model.name={name}"]
    for argument in arguments:
        if "=" not in argument:
            raise UserError(
                f"Model spec arguments are key=value. Received: {spec!r}"
            )
        overrides.append(f"model.kwargs.{argument}")
    return overrides


def _folder_name(spec):
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)


def _mean_std(values):
    values = np.asarray(values, "float64")
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), std


def ablate(
    name,
    *,
    models=None,
    seeds=(0, 1, 2),
    overrides=(),
    epochs=None,
    out=None,
    data_dir=None,
    strategy="default",
    timing_rounds=50,
    timing_steps=2,
    verbose="auto",
):
    """Runs the ablation and returns its results dict (see module doc)."""

    base = runner.resolve(name, overrides, epochs)
    task = get_task(base.task)
    models = list(models or task.ablation_models(base))
    if len(seeds) < 1:
        raise UserError("ablate needs at least one seed")
    configs = {}
    for model in models:
        config = config_lib.apply_overrides(base, parse_model_spec(model))
        task.validate(config)
        configs[model] = config
    out = out or rundir_lib.create_unique("runs", f"ablate-{name}")
    os.makedirs(out, exist_ok=True)

    results = {}
    run_dirs = []
    seed_runs = {}  # model spec -> its run folders, one per seed
    for model, config in configs.items():
        for seed in seeds:
            seeded = config_lib.apply_overrides(
                config, [f"seed={seed}", "export=false"]
            )
            path = os.path.join(out, f"{_folder_name(model)}-seed{seed}")
            run_dirs.append(path)
            metrics = rundir_lib.finished_metrics(path, seeded)
            if metrics is None:
                print(f"\n=== {model}, seed {seed} ===", flush=True)
                metrics = runner.run(
                    seeded,
                    name=f"{name}-{_folder_name(model)}-seed{seed}",
                    out=path,
                    data_dir=data_dir,
                    strategy=strategy,
                    verbose=verbose,
                )
            else:
                print(f"{model}, seed {seed}: finished earlier, reusing.")
            results.setdefault(model, []).append(metrics)
            seed_runs.setdefault(model, []).append(path)

    times = {}
    batch_size = None
    if timing_rounds > 0:
        # Step time: every variant on the same batch, after warm-up,
        # interleaved.
        print(
            "\nTiming training steps (same batch, after warm-up)...",
            flush=True,
        )
        keras.backend.clear_session()
        training.set_seed(0)
        data = task.load_data(base, data_dir, None)
        batch = task.timing_batch(data)
        batch_size = int(np.shape(keras.tree.flatten(batch[0])[0])[0])
        compiled = {}
        for model, config in configs.items():
            net = task.build_model(config, data)
            net.compile(
                optimizer=training.build_optimizer(
                    config.train, data.steps_per_epoch
                ),
                loss=task.loss(config),
            )
            compiled[model] = net
        times = timing.compare_step_times(
            compiled, batch, steps=timing_steps, rounds=timing_rounds
        )
    metric = task.primary_metric
    extra_metrics = [m for m in task.secondary_metrics if m != metric]
    rows = []
    for model in models:
        columns = {}
        for name_ in (metric, *extra_metrics):
            values = [m[name_] for m in results[model]]
            mean, std = _mean_std(values)
            columns.update(
                {
                    f"{name_}_mean": mean,
                    f"{name_}_std": std,
                    f"{name_}_per_seed": values,
                }
            )
        rows.append(
            {
                "model": model,
                "num_parameters": results[model][0]["num_parameters"],
                **columns,
                "seeds": list(seeds),
                **_timing_columns(times, model, models[0]),
                "train_time_s_mean": float(
                    np.mean(
                        [m["train_time_s_all_epochs"] for m in results[model]]
                    )
                ),
            }
        )
    summary = {
        "experiment": name,
        "overrides": list(overrides),
        "epochs": base.train.epochs,
        "metric": metric,
        "secondary_metrics": extra_metrics,
        "batch_size": batch_size,
        "timing": {"rounds": timing_rounds, "steps_per_round": timing_steps},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()),
        },
        "rows": rows,
        "notes": task.ablation_notes(results),
        "figures": [
            os.path.relpath(path, out)
            for path in task.ablation_figures(base, seed_runs, out, data_dir)
        ],
    }
    table = markdown_table(summary)
    report.write_summary_report(out, f"Ablation of {name}", table, run_dirs)
    return rundir_lib.write_summary(out, "ablation", summary, table)


def _timing_columns(times, model, reference):
    if not times:
        return {"step_time_ms": None, "step_time_ratio": None}
    return {
        "step_time_ms": times[model]["median_ms"],
        "step_time_p10_ms": times[model]["p10_ms"],
        "step_time_p90_ms": times[model]["p90_ms"],
        "step_time_ratio": times[model]["median_ms"]
        / times[reference]["median_ms"],
        "step_cpu_time_ms": times[model]["cpu_median_ms"],
        "step_cpu_time_ratio": times[model]["cpu_median_ms"]
        / times[reference]["cpu_median_ms"],
    }


def markdown_table(summary):
    """The ablation as a markdown table (mean ± std over seeds)."""
    metric = summary["metric"]
    extra_metrics = summary.get("secondary_metrics", [])
    seeds = summary["rows"][0]["seeds"]
    timing = summary["timing"]
    if summary["batch_size"]:
        how = (
            f"step time: median wall and process CPU time of "
            f"{timing['rounds']} x {timing['steps_per_round']} training "
            f"steps on one batch of {summary['batch_size']} after warm-up, "
            "models interleaved"
        )
    else:
        how = "step time not measured"
    lines = [
        f"Ablation of `{summary['experiment']}` "
        f"({summary['epochs']} epochs, seeds {seeds}; {how}).",
        "",
        f"| model | parameters | {metric} (mean ± std) | per seed | "
        + "".join(f"{m} (mean ± std) | " for m in extra_metrics)
        + "step time (ms) | vs. first | CPU time/step (ms) | vs. first |",
        "|---|---:|---:|---|" + "---:|" * len(extra_metrics) + "---:|" * 4,
    ]
    for row in summary["rows"]:
        per_seed = ", ".join(f"{v:.4f}" for v in row[f"{metric}_per_seed"])
        if row["step_time_ms"] is None:
            timing = "– | – | – | –"
        else:
            timing = (
                f"{row['step_time_ms']:.1f} | {row['step_time_ratio']:.2f}x | "
                f"{row['step_cpu_time_ms']:.1f} | "
                f"{row['step_cpu_time_ratio']:.2f}x"
            )
        extras = "".join(
            f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f} | "
            for m in extra_metrics
        )
        lines.append(
            f"| {row['model']} | {row['num_parameters']:,} | "
            f"{row[f'{metric}_mean']:.4f} ± {row[f'{metric}_std']:.4f} | "
            f"{per_seed} | {extras}{timing} |"
        )
    notes = summary.get("notes") or []
    if notes:
        lines.extend(["", *notes])
    figures = summary.get("figures") or []
    if figures:
        lines.extend(["", "Figures: " + ", ".join(figures) + "."])
    return "\n".join(lines) + "\n"
