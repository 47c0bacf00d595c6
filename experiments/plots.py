"""Figures of a run (matplotlib, Agg backend): training curves, confusion
matrices, attention maps overlaid on images, and texts with their words
coloured by attention weight (PNG and HTML)."""

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import html

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator  # noqa: E402

from experiments import atomic  # noqa: E402


def _save(fig, path, tight=True):
    """Writes `fig` to the PNG file `path` atomically and closes it."""
    if tight:
        fig.tight_layout()
    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


def _series(history, name):
    return np.array([row.get(name, np.nan) for row in history], "float64")


def _informative(history, name):
    """Whether a metric's curves say anything: some value is finite and,
    over several epochs, not every value is the same (top-5 accuracy on
    10 classes sits at 1.0)."""
    values = np.concatenate(
        [_series(history, name), _series(history, f"val_{name}")]
    )
    values = values[np.isfinite(values)]
    if not len(values):
        return False
    return len(history) < 2 or np.ptp(values) > 1e-9


def sample_schedule(learning_rate, steps_per_epoch, epochs, points=300):
    """`(epochs, rates)` of a learning rate at up to `points` steps.

    Args:
        learning_rate: a number or a Keras `LearningRateSchedule`.
        steps_per_epoch: optimizer steps per epoch.
        epochs: epochs trained.

    Returns:
        Step `k` (the rate used by update `k + 1`) at `k / steps_per_epoch`
        epochs, so the rate a run reads at the end of epoch `e` sits at `e`.
    """
    total = max(1, int(epochs * steps_per_epoch))
    steps = np.unique(np.linspace(0, total, min(points, total + 1)).round())
    if callable(learning_rate):
        rates = [float(learning_rate(int(step))) for step in steps]
    else:
        rates = [float(learning_rate)] * len(steps)
    return steps / steps_per_epoch, np.array(rates)


def training_curves(history, path, title="", schedule=None):
    """Plots every metric of `history` (list of row dicts) per epoch.

    One panel per metric, `val_<metric>` beside `<metric>`; metrics without
    a finite value, or constant over every epoch, get no panel. Points are
    marked, so a 1-epoch run shows its values.

    Args:
        history: rows of `history.csv` (1-based `epoch`).
        path: output PNG.
        title: figure title.
        schedule: optional `(epochs, learning_rates)` of the learning rate
            at every training step (the schedule as configured); without
            it, the rate at the end of each epoch is drawn.

    Returns:
        `path`, or `None` when the history is empty.
    """
    if not history:
        return None
    skip = {"epoch", "learning_rate", "epoch_time_s"}
    names = [
        k
        for k in history[-1]
        if k not in skip
        and not k.startswith("val_")
        and _informative(history, k)
    ]
    names.append("learning_rate")
    epochs = [row["epoch"] for row in history]
    marker = "o" if len(epochs) <= 30 else None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        if name == "learning_rate" and schedule is not None:
            ax.plot(*schedule, label="scheduled (every step)")
            ax.plot(
                epochs,
                _series(history, name),
                "o",
                label="at epoch end",
                markersize=4,
            )
            ax.legend()
        else:
            ax.plot(
                epochs, _series(history, name), marker=marker, label="train"
            )
            if any(f"val_{name}" in r for r in history):
                ax.plot(
                    epochs,
                    _series(history, f"val_{name}"),
                    marker=marker,
                    label="validation",
                )
                ax.legend()
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        if len(epochs) <= 10:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(matrix, labels, path, title="Confusion matrix"):
    """Plots a confusion matrix (rows: true labels, columns: predicted)."""
    matrix = np.asarray(matrix)
    n = len(labels)
    size = min(14.0, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= 30:
        ax.set_xticks(range(n), labels, rotation=90 if n > 10 else 0)
        ax.set_yticks(range(n), labels)
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    # Wrapped to the figure: a long title on a small (2-class) matrix
    # would otherwise be cut off at the figure edge.
    ax.set_title(textwrap.fill(title, width=max(20, int(7 * size))))
    return _save(fig, path)


def _show_image(ax, image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image.astype("uint8"))
    ax.set_xticks([])
    ax.set_yticks([])


def attention_overlays(images, maps, path, captions=None, title=""):
    """Draws each image beside its attention maps overlaid on it.

    Each map is min-max normalised per image (its strongest cell 1, its
    weakest 0; the figure says so and carries a colour bar) and stretched
    over the image as blocks, so a coarse 2x2 map shows its four cells
    rather than a smooth blur.

    Args:
        images: `[N, H, W, C]` uint8 images.
        maps: `{name: [N, h, w]}` attention maps (any resolution).
        path: output PNG.
        captions: optional N strings (e.g. "true 3, predicted 3").
        title: figure title.
    """
    images = np.asarray(images)
    names = list(maps)
    n, cols = len(images), 1 + len(names)
    fig, axes = plt.subplots(
        n, cols, figsize=(2.1 * cols + 0.8, 2.1 * n + 0.4), squeeze=False
    )
    overlay = None
    for i in range(n):
        _show_image(axes[i, 0], images[i])
        if captions:
            axes[i, 0].set_title(captions[i], fontsize=8)
        for j, name in enumerate(names, start=1):
            heat = np.asarray(maps[name][i], "float32")
            heat = heat - heat.min()
            heat = heat / heat.max() if heat.max() > 0 else heat
            height, width = images[i].shape[:2]
            _show_image(axes[i, j], images[i])
            # Stretch the (coarser) map over the whole image as blocks.
            overlay = axes[i, j].imshow(
                heat,
                cmap="jet",
                alpha=0.5,
                vmin=0,
                vmax=1,
                interpolation="nearest",
                extent=(-0.5, width - 0.5, height - 0.5, -0.5),
            )
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    fig.suptitle(
        (f"{title}\n" if title else "")
        + "attention scaled per image: 0 = its weakest cell, 1 = its strongest",
        fontsize=9,
    )
    fig.tight_layout()
    if overlay is not None:
        colorbar = fig.colorbar(overlay, ax=axes.ravel().tolist(), shrink=0.6)
        colorbar.set_label("relative attention (per image)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _word_colour(weight, cmap):
    red, green, blue, _ = cmap(0.05 + 0.85 * float(weight))
    return red, green, blue


def _relative(weights):
    """Weights mapped to [0, 1] per text (min-max; flat texts -> 0.25)."""
    weights = np.asarray(weights, "float64")
    if not len(weights):
        return weights
    low, high = weights.min(), weights.max()
    if high - low < 1e-9:
        return np.full_like(weights, 0.25)
    return (weights - low) / (high - low)


def word_attention(examples, path, captions=None, title="", wrap=90):
    """Draws texts with every word's background coloured by its weight.

    Args:
        examples: list of `(tokens, weights)`; weights are scaled per text
            so its most attended word is darkest.
        path: output PNG.
        captions: optional one string per text (e.g. "true positive, pred
            negative (p=0.91)").
        title: figure title.
        wrap: characters per line before wrapping.

    Returns:
        `path`.
    """
    cmap = plt.get_cmap("Reds")
    layouts = []
    for tokens, weights in examples:
        lines, line, used = [], [], 0
        for token, weight in zip(tokens, _relative(weights)):
            if line and used + len(token) + 1 > wrap:
                lines.append(line)
                line, used = [], 0
            line.append((token, weight))
            used += len(token) + 1
        lines.append(line)
        layouts.append(lines)
    rows = sum(len(lines) + 1 for lines in layouts) + (1 if title else 0)
    # One axis unit = one character of 9-pt DejaVu Sans Mono (0.602 em).
    fig = plt.figure(figsize=(0.0753 * (wrap + 2), 0.3 * rows + 0.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, wrap + 2)
    ax.set_ylim(rows + 0.5, 0)
    ax.axis("off")
    y = 0.7
    if title:
        ax.text(1, y, title, fontsize=10, weight="bold", va="center")
        y += 1
    for i, lines in enumerate(layouts):
        caption = captions[i] if captions else f"text {i + 1}"
        ax.text(1, y, caption, fontsize=8, color="0.35", va="center")
        y += 1
        for line in lines:
            x = 1
            for token, weight in line:
                ax.text(
                    x,
                    y,
                    token,
                    family="monospace",
                    fontsize=9,
                    va="center",
                    color="white" if weight > 0.55 else "black",
                    bbox={
                        "facecolor": _word_colour(weight, cmap),
                        "edgecolor": "none",
                        "pad": 1.0,
                    },
                )
                x += len(token) + 1
            y += 1
    return _save(fig, path, tight=False)


def word_attention_html(examples, captions=None, title=""):
    """The same texts as `word_attention`, as a standalone HTML page.

    Each word is a `<span>` whose background alpha is its weight scaled per
    text (min-max; hover shows the raw weight).

    Returns:
        The HTML document as a string.
    """

    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title or 'Word attention')}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        ".t{line-height:1.9;margin:0 0 1.4em}.c{color:#666;font-size:.85em}"
        "span.w{padding:.1em .2em;border-radius:.2em}</style>",
        "</head><body>",
    ]
    if title:
        parts.append(f"<h2>{html.escape(title)}</h2>")
    for i, (tokens, weights) in enumerate(examples):
        weights = np.asarray(weights, "float64")
        caption = captions[i] if captions else f"text {i + 1}"
        parts.append(f'<div class="c">{html.escape(caption)}</div>')
        words = " ".join(
            f'<span class="w" title="{w:.4f}" style="background:'
            f'rgba(220,30,30,{r:.3f})">{html.escape(t)}</span>'
            for t, w, r in zip(tokens, weights, _relative(weights))
        )
        parts.append(f'<p class="t">{words}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def alignment_heatmaps(alignments, path, title=""):
    """Draws attention alignments: source tokens x target tokens.

    The picture of Bahdanau et al. 2014 (fig. 3): one panel per sentence,
    target tokens down the rows, source tokens along the columns, the
    weight of each (target, source) pair in grey levels.

    Args:
        alignments: list of `(weights [T, S], source_tokens, target_tokens,
            caption)`.
        path: output PNG.
        title: figure title.
    """
    n = len(alignments)
    cols = min(2, n)
    rows = math.ceil(n / cols)
    sizes = [(len(a[1]), len(a[2])) for a in alignments]
    width = max(s for s, _ in sizes)
    height = max(t for _, t in sizes)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * (1.5 + 0.32 * width), rows * (1.6 + 0.3 * height)),
        squeeze=False,
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    shown = None
    for ax, (weights, source, target, caption) in zip(axes.flat, alignments):
        weights = np.asarray(weights, "float32")[: len(target), : len(source)]
        shown = ax.imshow(
            weights,
            cmap="gray_r",
            vmin=0.0,
            vmax=1.0,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_xticks(range(len(source)))
        ax.set_xticklabels(source, rotation=90, fontsize=8)
        ax.set_yticks(range(len(target)))
        ax.set_yticklabels(target, fontsize=8)
        ax.xaxis.tick_top()
        if caption:
            ax.set_xlabel(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if shown is not None:
        colorbar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.6)
        colorbar.set_label("attention weight (each row sums to 1)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _caption_attention_row(axes, image, words, maps, boxes, top):
    """The image, then one panel per word with its attention map stretched
    over the image as blocks (scale 0 to `top`) and the word's box
    outlined. Returns the last overlay (for a colour bar), or None."""
    image = np.asarray(image)
    maps = np.asarray(maps, "float32")
    height, width = image.shape[:2]
    _show_image(axes[0], image)
    overlay = None
    for j, word in enumerate(words):
        ax = axes[j + 1]
        _show_image(ax, image)
        overlay = ax.imshow(
            maps[j],
            cmap="jet",
            alpha=0.5,
            vmin=0,
            vmax=top,
            interpolation="nearest",
            extent=(-0.5, width - 0.5, height - 0.5, -0.5),
        )
        if boxes is not None and j < len(boxes):
            ymin, xmin, ymax, xmax = np.asarray(boxes[j], "float64")
            ax.add_patch(
                Rectangle(
                    (xmin * width - 0.5, ymin * height - 0.5),
                    (xmax - xmin) * width,
                    (ymax - ymin) * height,
                    fill=False,
                    edgecolor="white",
                    linewidth=1.2,
                )
            )
        ax.set_title(word, fontsize=9)
    for ax in axes[1 + len(words) :]:
        ax.axis("off")
    return overlay


def _top(maps):
    """The common colour scale's top: the largest weight (1 if none)."""
    top = max((float(np.max(m)) for m in maps if np.size(m)), default=0.0)
    return top if top > 0 else 1.0


def _save_with_colorbar(fig, axes, overlay, top, path):
    fig.tight_layout()
    if overlay is not None:
        colorbar = fig.colorbar(overlay, ax=axes.ravel().tolist(), shrink=0.8)
        colorbar.set_label(f"attention weight (0 to {top:.2f})", fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def caption_attention(image, words, maps, path, boxes=None, title=""):
    """One panel per generated word: the attention map over the image.

    The figure of Xu et al. 2015 (fig. 2/3): the image, then for each word
    the attention of the step that produced it, stretched over the image
    as blocks (one per grid cell). The maps share one scale, 0 to the
    largest weight of any step (stated on the colour bar; the soft maps
    sum to 1), so a diffuse step looks faint.

    Args:
        image: `[H, W, C]` uint8 image.
        words: the generated tokens (words, then e.g. "[END]").
        maps: `[len(words), rows, cols]` attention maps.
        path: output PNG.
        boxes: optional `[N, 4]` normalised boxes (ymin, xmin, ymax, xmax)
            of the caption's words, outlined on the panel of word `j`.
        title: figure title.
    """
    cols = 1 + len(words)
    fig, axes = plt.subplots(
        1, cols, figsize=(1.9 * cols + 0.9, 2.5), squeeze=False
    )
    top = _top([maps])
    overlay = _caption_attention_row(axes[0], image, words, maps, boxes, top)
    axes[0, 0].set_title("image", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    return _save_with_colorbar(fig, axes, overlay, top, path)


def caption_attention_comparison(image, rows, path, boxes=None, title=""):
    """Several captioners' per-word attention on one image, one row each
    (one colour scale for all).

    Args:
        image: `[H, W, C]` uint8 image.
        rows: `(label, words, maps)` per model: its generated tokens and
            their `[len(words), rows, cols]` attention maps (a hard
            attention model's maps are its one-hot selected locations).
        path: output PNG.
        boxes: optional `[N, 4]` normalised boxes of the reference words.
        title: figure title.
    """
    cols = 1 + max(len(words) for _, words, _ in rows)
    fig, axes = plt.subplots(
        len(rows),
        cols,
        figsize=(1.9 * cols + 0.9, 2.2 * len(rows)),
        squeeze=False,
    )
    top = _top([maps for _, _, maps in rows])
    overlay = None
    for axes_row, (label, words, maps) in zip(axes, rows):
        shown = _caption_attention_row(axes_row, image, words, maps, boxes, top)
        overlay = shown if shown is not None else overlay
        axes_row[0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save_with_colorbar(fig, axes, overlay, top, path)
