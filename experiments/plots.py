"""PNG figures of a run (matplotlib, Agg backend): training curves,
confusion matrices and attention maps overlaid on images."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(history, path, title=""):
    """Plots every metric of `history` (list of row dicts) per epoch.

    One panel per metric; `val_<metric>` is drawn beside `<metric>`.

    Returns:
        `path`, or `None` when the history is empty.
    """
    if not history:
        return None
    skip = {"epoch", "learning_rate", "epoch_time_s"}
    names = [
        k for k in history[-1] if k not in skip and not k.startswith("val_")
    ]
    names.append("learning_rate")
    epochs = [row["epoch"] for row in history]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        ax.plot(epochs, [r.get(name, np.nan) for r in history], label="train")
        if any(f"val_{name}" in r for r in history):
            ax.plot(
                epochs,
                [r.get(f"val_{name}", np.nan) for r in history],
                label="validation",
            )
            ax.legend()
        ax.set_title(name)
        ax.set_xlabel("epoch")
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
    ax.set_title(title)
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

    Args:
        images: `[N, H, W, C]` uint8 images.
        maps: `{name: [N, h, w]}` attention maps (any resolution; each is
            stretched over its image and normalised to [0, 1] per image).
        path: output PNG.
        captions: optional N strings (e.g. "true 3, predicted 3").
        title: figure title.
    """
    images = np.asarray(images)
    names = list(maps)
    n, cols = len(images), 1 + len(names)
    fig, axes = plt.subplots(
        n, cols, figsize=(2.1 * cols, 2.1 * n), squeeze=False
    )
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
            # Stretch the (coarser) map over the whole image, smoothly.
            axes[i, j].imshow(
                heat,
                cmap="jet",
                alpha=0.5,
                vmin=0,
                vmax=1,
                interpolation="bilinear",
                extent=(-0.5, width - 0.5, height - 0.5, -0.5),
            )
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


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
    for ax, (weights, source, target, caption) in zip(axes.flat, alignments):
        weights = np.asarray(weights, "float32")[: len(target), : len(source)]
        ax.imshow(weights, cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source)))
        ax.set_xticklabels(source, rotation=90, fontsize=8)
        ax.set_yticks(range(len(target)))
        ax.set_yticklabels(target, fontsize=8)
        ax.xaxis.tick_top()
        if caption:
            ax.set_xlabel(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
