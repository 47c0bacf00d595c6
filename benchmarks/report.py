"""Results files: `<machine>-<date>.json` and the markdown table beside it.

The JSON holds everything (hardware, versions, load, every benchmark's
setup, raw statistics and goals); the markdown is rendered from it alone,
so `python -m benchmarks report FILE.json` can redraw it.
"""

import math
import os

from experiments import atomic


def results_stem(label, date, quick=False):
    """`"amd-epyc-2c-2025-01-31"` (`-quick` appended for quick runs)."""
    return f"{label}-{date}" + ("-quick" if quick else "")


def write_json(path, data):
    """Writes `data` to `path` atomically (strict JSON); returns `path`."""
    atomic.write_json(path, data, indent=1)
    return path


def write_text(path, text):
    """Writes `text` to `path` atomically; returns `path`."""
    atomic.write_text(path, text)
    return path


def fmt(value, digits=3):
    """A table cell: `None` -> "–", floats to `digits` significant
    figures (no exponent below 1e6), ints with thousands separators."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def fmt_ratio(value):
    """`1.234` -> `"1.23x"` ("–" when missing)."""
    return "–" if value is None else f"{value:.2f}x"


def fmt_stat(summary, scale=1.0, digits=3):
    """`"12.3 (11.9–13.0)"`: a median and its interquartile range."""
    if summary is None:
        return "–"
    return (
        f"{fmt(summary['median'] * scale, digits)} "
        f"({fmt(summary['p25'] * scale, digits)}–"
        f"{fmt(summary['p75'] * scale, digits)})"
    )


def _status_word(met):
    return {True: "**met**", False: "**not met**", None: "not measured"}[met]


def markdown_table(columns, rows):
    """A markdown table; numeric columns right-aligned."""
    if not columns:
        return ""

    def numeric(i):
        values = [r[i] for r in rows if i < len(r) and r[i] is not None]
        return bool(values) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in values
        )

    align = ["---:" if numeric(i) else "---" for i in range(len(columns))]
    lines = [
        "| " + " | ".join(fmt(c) for c in columns) + " |",
        "|" + "|".join(align) + "|",
    ]
    for row in rows:
        cells = [fmt(v) for v in row] + [""] * (len(columns) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goal_rows(results):
    """`(number, benchmark, goal, measured, verdict)` of every goal."""
    rows = []
    for entry in _ordered(results["benchmarks"]):
        goals = entry.get("goals") or []
        if entry.get("status") != "ok" and entry.get("goal"):
            goals = [
                {
                    "goal": entry["goal"],
                    "measured": f"{entry.get('status')}: "
                    f"{_first_line(entry.get('reason', ''))}",
                    "met": None,
                }
            ]
        for g in goals:
            measured = _measured_text(g.get("measured"))
            rows.append(
                [
                    entry.get("number", ""),
                    entry["name"],
                    g["goal"],
                    "–" if measured is None else str(measured),
                    _status_word(g.get("met")),
                ]
            )
    return rows


def goals_table(results):
    """The markdown table of `goal_rows`, under its header."""
    return markdown_table(
        ["#", "benchmark", "goal", "measured", "verdict"], goal_rows(results)
    )


def _measured_text(measured):
    """A goal's measured value as shown: floats formatted by `fmt`."""
    return fmt(measured) if isinstance(measured, float) else measured


def _first_line(text):
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _ordered(benchmarks):
    def key(entry):
        digits = "".join(c for c in str(entry.get("number", "")) if c.isdigit())
        return (int(digits or 99), str(entry.get("number")), entry["name"])

    return sorted(benchmarks.values(), key=key)


def render_markdown(results):
    """The markdown report of a results dict (see `runner.run`)."""
    machine = results["machine"]
    harness = results["harness"]
    v = machine["versions"]
    load = results.get("load_average") or {}
    roofline = machine.get("matmul_gflops")
    lines = [
        f"# Benchmarks: {machine['label']}, {harness['date']}"
        + (" (quick run, indicative only)" if harness.get("quick") else ""),
        "",
        f"- Hardware: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{fmt(machine.get('memory_gb'))} GiB RAM, {machine['platform']}; "
        f"device: {harness['device']}"
        + (f" ({machine['gpu']})" if machine.get("gpu") else "")
        + ".",
        f"- Software: Python {v.get('python')}, TensorFlow "
        f"{v.get('tensorflow')}, Keras {v.get('keras')}, JAX {v.get('jax')}.",
        "- Machine limit (float32 matmul, best of several): "
        + (f"{fmt(roofline)} GFLOP/s." if roofline else "not measured."),
        f"- Load average (1/5/15 min) at start {load.get('start')}, at end "
        f"{load.get('end')} on {machine['cores']} cores"
        + (
            " — other jobs shared the CPU: wall times are inflated, ratios "
            "were measured interleaved side by side."
            if _loaded(results)
            else "."
        ),
        f"- Command: `{harness['command']}` ({fmt(harness.get('wall_s'))} s "
        "wall)." + _kept_text(harness),
        *_warning_lines(results),
        "",
        "## Goals",
        "",
        goals_table(results),
        "",
    ]
    for entry in _ordered(results["benchmarks"]):
        lines.append(
            f"## {entry.get('number', '')}. {entry.get('title', entry['name'])}"
            f" (`{entry['name']}`)"
        )
        lines.append("")
        status = entry.get("status")
        load = entry.get("load_average") or {}
        lines.append(
            f"Status: {status}; {fmt(entry.get('wall_s'))} s; load average "
            f"{(load.get('start') or ['?'])[0]} → "
            f"{(load.get('end') or ['?'])[0]}."
        )
        if status != "ok":
            lines += ["", f"Reason: {_first_line(entry.get('reason', ''))}", ""]
            continue
        if entry.get("method"):
            lines += ["", entry["method"]]
        if entry.get("columns"):
            lines += ["", markdown_table(entry["columns"], entry["rows"])]
        for g in entry.get("goals") or []:
            measured = _measured_text(g.get("measured"))
            basis = f" ({g['basis']})" if g.get("basis") else ""
            note = f" {g['note']}" if g.get("note") else ""
            lines += [
                "",
                f"Goal: {g['goal']} — measured {measured}{basis}: "
                f"{_status_word(g.get('met'))}.{note}",
            ]
        notes = entry.get("notes") or []
        if notes:
            lines.append("")
            lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _kept_text(harness):
    """Which benchmarks were measured by earlier runs (re-measured files)."""
    provenance = harness.get("provenance") or {}
    groups = {}
    for name, source in sorted(provenance.items()):
        if source.get("started") == harness.get("started"):
            continue
        key = (source.get("command"), source.get("started"))
        groups.setdefault(key, []).append(name)
    return "".join(
        f" Kept from the earlier run `{command}` (started {started}): "
        f"{', '.join(names)}."
        for (command, started), names in sorted(
            groups.items(), key=lambda item: str(item[0][1])
        )
    )


def _warning_lines(results):
    """The harness's load warnings: this was not a quiet machine."""
    warnings = results.get("load_warnings") or []
    if not warnings:
        return []
    return [
        "- **Warning: not a quiet machine.** The 1-minute load average "
        "exceeded the core count (other jobs shared the CPU: wall times are "
        "inflated, goals judged on process CPU time) at "
        + "; ".join(warnings)
        + "."
    ]


def _loaded(results):
    start = (results.get("load_average") or {}).get("start") or [0]
    return start[0] > results["machine"]["cores"] * 0.5


def render_readme(results, json_path):
    """The README's "## Performance" section: hardware, the command that
    regenerates the figures, and every goal marked met or not met."""
    machine = results["machine"]
    harness = results["harness"]
    load = results.get("load_average") or {}
    roofline = machine.get("matmul_gflops")
    md_path = os.path.splitext(json_path)[0] + ".md"
    lines = [
        "## Performance",
        "",
        "Measured by the benchmark harness (`benchmarks/`): every comparison "
        "is a ratio of two contenders measured side by side in one process "
        "on the same shapes (interleaved, after warm-up, median of several "
        "repetitions); absolute times hold only for the hardware below. "
        "Regenerate with:",
        "",
        "```sh",
        "python -m benchmarks run"
        + (" --quick" if harness.get("quick") else ""),
        "```",
        "",
        f"- Hardware: {machine['cpu_model']}, {machine['cores']} cores"
        + (" (shared with other jobs)" if _loaded(results) else "")
        + f", {fmt(machine.get('memory_gb'))} GiB RAM, "
        + (f"GPU {machine['gpu']}" if machine.get("gpu") else "no GPU")
        + f"; device `{harness['device']}`.",
        "- Machine limit (measured float32 matmul): "
        + (f"{fmt(roofline)} GFLOP/s." if roofline else "not measured."),
        f"- Run: {harness.get('started')}, {fmt(harness.get('wall_s'))} s; "
        f"load average {load.get('start')} at the start, {load.get('end')} "
        "at the end. Under load, goals are judged on process CPU time "
        "(wall times mostly measure waiting for a core); both are shown."
        + _kept_text(harness),
        f"- Full results: `{json_path}` and `{md_path}` (method, setup, "
        "every sample).",
        *_warning_lines(results),
        "",
        goals_table(results),
        "",
    ]
    for entry in _ordered(results["benchmarks"]):
        if entry.get("status") != "ok" or not entry.get("columns"):
            continue
        lines += [
            f"### {entry.get('number', '')}. {entry.get('title')}",
            "",
            markdown_table(entry["columns"], entry["rows"]),
            "",
        ]
        lines += [f"- {n}" for n in entry.get("notes") or []]
        if entry.get("notes"):
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_results(results, out_dir):
    """Writes `<stem>.json` and `<stem>.md` into `out_dir`; returns paths."""
    stem = results_stem(
        results["machine"]["label"],
        results["harness"]["date"],
        results["harness"].get("quick", False),
    )
    json_path = write_json(os.path.join(out_dir, stem + ".json"), results)
    md_path = write_text(
        os.path.join(out_dir, stem + ".md"), render_markdown(results)
    )
    return json_path, md_path
