"""`report.html`: one self-contained page per run, comparison or ablation.

The page is built from the files the run already wrote (config, metrics,
history, plots, samples), so every task gets one without a hook of its
own. Images are inlined as `data:` URIs and the page loads nothing else
(no scripts, fonts or style sheets from elsewhere): it opens offline, and
can be mailed or archived as one file.
"""

import base64
import csv
import datetime
import glob
import html
import json
import os
import re

from experiments.rundir import write_text

# Search-dependent scores: `bleu_beam`, `bleu4_greedy`, `exact_beam`, ...
_SEARCH_METRIC = re.compile(
    r"^(bleu\d?|chrf|exact|attention_in_box(?:_correct_words)?)_"
    r"(greedy|beam)$"
)
# metrics.json entries too long for the metrics table (shown elsewhere).
_SKIPPED_METRICS = (
    "classification_report",
    "attention_maps",
    "run_dir",
    "field_descriptions",
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.muted { color: #666; }
"""


def _esc(value):
    return html.escape(str(value), quote=True)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _image(path, caption=None):
    """An inlined PNG figure."""
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    caption = caption or os.path.basename(path)
    return (
        f'<figure><img alt="{_esc(caption)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _format(value):
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if value and abs(value) < 1e-3:
            return f"{value:.3g}"  # a learning rate, a small loss
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _table(header, rows):
    """An HTML table; numeric cells right-aligned."""
    lines = ["<table>", "<tr>"]
    lines += [f"<th>{_esc(h)}</th>" for h in header]
    lines.append("</tr>")
    for row in rows:
        lines.append("<tr>")
        for cell in row:
            number = isinstance(cell, int | float) and not isinstance(
                cell, bool
            )
            klass = ' class="num"' if number else ""
            lines.append(f"<td{klass}>{_esc(_format(cell))}</td>")
        lines.append("</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _flatten(metrics, prefix=""):
    """`(dotted key, value)` of the scalar entries of `metrics`."""
    for key, value in metrics.items():
        if key in _SKIPPED_METRICS:
            continue
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list) or len(value) <= 8:
            yield f"{prefix}{key}", value


def _page(title, sections):
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{_esc(title)}</h1>\n{body}\n"
        f'<p class="muted">Written by Attention Zoo on {generated}.</p>\n'
        "</body></html>\n"
    )


# === A run ===


def _config_section(config, metrics):
    data, model, train = config["data"], config["model"], config["train"]
    # The splits as read (`auto` resolved), where the run recorded them.
    data = {**data, **(metrics.get("data") or {})}
    rows = [
        ("task", config.get("task")),
        ("dataset", data.get("name")),
        (
            "splits (train / validation / test)",
            f"{data.get('train_split')} / {data.get('validation_split')} / "
            f"{data.get('test_split')}",
        ),
        ("model", model.get("name")),
        ("model arguments", model.get("kwargs") or {}),
        ("epochs", train.get("epochs")),
        ("optimizer", train.get("optimizer")),
        ("learning rate", train.get("learning_rate")),
        ("schedule", train.get("schedule")),
        ("global batch size", data.get("batch_size")),
        ("seed", config.get("seed")),
    ]
    full = json.dumps(config, indent=2)
    return (
        "<h2>Configuration</h2>"
        + _table(("setting", "value"), [r for r in rows if r[1] is not None])
        + "<details><summary>Full config.json</summary>"
        f"<pre>{_esc(full)}</pre></details>"
    )


def _meaning(key, descriptions):
    """The description of `key` (or of its `test_*` family)."""
    if key in descriptions:
        return descriptions[key]
    if key.startswith("test_"):
        return descriptions.get("test_*", "")
    return ""


def _metrics_section(metrics):
    descriptions = metrics.get("field_descriptions") or {}
    items = list(_flatten(metrics))
    # Test results first, then the rest in the file's order.
    items.sort(key=lambda item: not item[0].startswith(("test_", "bleu")))
    rows = [(key, value, _meaning(key, descriptions)) for key, value in items]
    return "<h2>Metrics</h2>" + _table(("metric", "value", "meaning"), rows)


def _search_section(metrics):
    """Scores by search (greedy / beam): BLEU, chrF, exact captions."""
    scores = {}
    for key, value in metrics.items():
        match = _SEARCH_METRIC.match(key)
        if match and isinstance(value, int | float):
            scores.setdefault(match.group(1), {})[match.group(2)] = value
    if not scores:
        return ""
    rows = [
        (name, by.get("greedy", ""), by.get("beam", ""))
        for name, by in scores.items()
    ]
    return "<h2>Scores by search</h2>" + _table(
        ("score (test split)", "greedy", "beam"), rows
    )


def _confusion_section(run_dir):
    data = _read_json(os.path.join(run_dir, "confusion_matrix.json"))
    if data is None:
        return ""
    if isinstance(data, dict):
        labels, matrix = data.get("labels"), data.get("matrix", [])
    else:
        labels, matrix = None, data
    labels = labels or [str(i) for i in range(len(matrix))]
    cells = [
        "<h2>Confusion matrix</h2>",
        "<p>Rows: true class; columns: predicted class (test split).</p>",
        "<table><tr><th></th>",
    ]
    cells += [f"<th>{_esc(label)}</th>" for label in labels]
    cells.append("</tr>")
    peak = max((max(row) for row in matrix if row), default=1) or 1
    for label, row in zip(labels, matrix):
        cells.append(f"<tr><th>{_esc(label)}</th>")
        for count in row:
            shade = 255 - int(160 * count / peak)
            cells.append(
                f'<td class="num" style="background:rgb({shade},{shade},255)">'
                f"{count}</td>"
            )
        cells.append("</tr>")
    cells.append("</table>")
    return "\n".join(cells)


def _history_section(run_dir):
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return ""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return ""
    figure = os.path.join(run_dir, "plots", "training_curves.png")
    parts = ["<h2>Training curves</h2>"]
    if os.path.exists(figure):
        parts.append(_image(figure, "training curves (history.csv)"))
    parts.append(
        "<details><summary>history.csv</summary>"
        + _table(rows[0], [[_number(c) for c in r] for r in rows[1:]])
        + "</details>"
    )
    return "\n".join(parts)


def _number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _figures_section(run_dir):
    """Every figure in `plots/` except those shown elsewhere."""
    shown = {"training_curves.png"}
    paths = [
        p
        for p in sorted(glob.glob(os.path.join(run_dir, "plots", "*.png")))
        if os.path.basename(p) not in shown
    ]
    if not paths:
        return ""
    return "<h2>Figures</h2>" + "\n".join(_image(p) for p in paths)


def _samples_section(run_dir):
    samples = _read_json(os.path.join(run_dir, "samples.json"))
    if not samples or not isinstance(samples, list):
        return ""
    keys = [k for k in samples[0] if not isinstance(samples[0][k], dict)]
    rows = [
        [
            " | ".join(map(str, s.get(k)))
            if isinstance(s.get(k), list)
            else s.get(k, "")
            for k in keys
        ]
        for s in samples
    ]
    return "<h2>Sample predictions</h2>" + _table(keys, rows)


def _text_section(run_dir, filename, title):
    text = _read_text(os.path.join(run_dir, filename))
    if not text:
        return ""
    return f"<h2>{_esc(title)}</h2><pre>{_esc(text)}</pre>"


def _files_section(run_dir):
    names = sorted(
        name
        for name in os.listdir(run_dir)
        if not name.startswith(".") and name != "report.html"
    )
    links = " ".join(
        f'<a href="{_esc(name)}">{_esc(name)}</a>' for name in names
    )
    return f"<h2>Files of this run</h2><p>{links}</p>"


def write_run_report(run_dir, summary=""):
    """Writes `report.html` into a finished run folder; returns its path.

    Args:
        run_dir: the run folder (its `metrics.json` already written).
        summary: one line on the result, shown first.
    """
    config = _read_json(os.path.join(run_dir, "config.json")) or {}
    metrics = _read_json(os.path.join(run_dir, "metrics.json")) or {}
    name = metrics.get("experiment") or os.path.basename(run_dir)
    sections = [
        f"<p>{_esc(summary)}</p>" if summary else "",
        _config_section(config, metrics) if config else "",
        _metrics_section(metrics),
        _search_section(metrics),
        _history_section(run_dir),
        _confusion_section(run_dir),
        _text_section(
            run_dir, "classification_report.txt", "Classification report"
        ),
        _figures_section(run_dir),
        _samples_section(run_dir),
        _files_section(run_dir),
    ]
    path = os.path.join(run_dir, "report.html")
    model = metrics.get("model") or config.get("model", {}).get("name", "")
    title = f"{name}: {model}"
    write_text(path, _page(title, [s for s in sections if s]))
    return path


# === Comparisons and ablations ===


def _inline(text):
    text = _esc(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_to_html(text):
    """The Markdown this project writes (headings, tables, paragraphs)."""
    out, table, paragraph = [], [], []

    def flush():
        if table:
            rows = [
                [c.strip() for c in line.strip().strip("|").split("|")]
                for line in table
                if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())
            ]
            out.append("<table><tr>")
            out.extend(f"<th>{_inline(c)}</th>" for c in rows[0])
            out.append("</tr>")
            for row in rows[1:]:
                out.append(
                    "<tr>"
                    + "".join(f"<td>{_inline(c)}</td>" for c in row)
                    + "</tr>"
                )
            out.append("</table>")
            table.clear()
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            if paragraph:
                flush()
            table.append(line)
            continue
        if table:
            flush()
        heading = re.match(r"(#{1,4}) (.*)", line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 1, 4)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            paragraph.append(line.strip())
        else:
            flush()
    flush()
    return "\n".join(out)


def write_summary_report(folder, title, markdown, run_dirs=()):
    """`report.html` of a comparison or an ablation: its table(s), the
    training curves of every run, and links to each run's own report."""
    sections = [markdown_to_html(markdown)]
    runs = []
    for run_dir in run_dirs:
        name = os.path.relpath(run_dir, folder)
        report = os.path.join(run_dir, "report.html")
        href = _esc(os.path.relpath(report, folder))
        link = (
            f'<a href="{href}">{_esc(name)}</a>'
            if os.path.exists(report)
            else _esc(name)
        )
        curves = os.path.join(run_dir, "plots", "training_curves.png")
        runs.append(
            f"<h3>{link}</h3>"
            + (
                _image(curves, f"{name}: training curves")
                if os.path.exists(curves)
                else ""
            )
        )
    if runs:
        sections.append("<h2>Runs</h2>" + "\n".join(runs))
    path = os.path.join(folder, "report.html")
    write_text(path, _page(title, sections))
    return path
