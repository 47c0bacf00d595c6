"""The PNG plots are written and are real images."""

import numpy as np

from experiments import plots


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_training_curves(tmp_path):
    history = [
        {
            "epoch": e,
            "loss": 1.0 / e,
            "val_loss": 1.2 / e,
            "accuracy": 0.1 * e,
            "learning_rate": 0.1,
        }
        for e in range(1, 4)
    ]
    path = plots.training_curves(history, str(tmp_path / "c.png"))
    assert _is_png(path)
    assert plots.training_curves([], str(tmp_path / "none.png")) is None


def test_confusion_matrix(tmp_path):
    matrix = np.array([[5, 1], [0, 4]])
    assert _is_png(
        plots.confusion_matrix(matrix, ["a", "b"], str(tmp_path / "m.png"))
    )


def test_attention_overlays(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 1), "uint8")
    maps = {
        "spatial": np.random.default_rng(1).random((2, 4, 4)),
        "flat": np.zeros((2, 2, 2)),
    }
    path = plots.attention_overlays(
        images, maps, str(tmp_path / "a.png"), captions=["x", "y"]
    )
    assert _is_png(path)


def test_caption_attention_comparison(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48, 1), "uint8")
    soft = rng.random((3, 6, 6))
    hard = np.zeros((4, 6, 6))
    hard[np.arange(4), [1, 1, 2, 4], [0, 3, 5, 2]] = 1.0
    boxes = np.array([[0.1, 0.0, 0.4, 0.3], [0.5, 0.4, 0.8, 0.7]])
    path = plots.caption_attention_comparison(
        image,
        [("soft", ["one", "two", "[END]"], soft), ("hard", list("abcd"), hard)],
        str(tmp_path / "compare.png"),
        boxes=boxes,
        title="one image, two captioners",
    )
    assert _is_png(path)
    from matplotlib import image as mpimg

    # Two rows of panels: taller than one row of the same width.
    single = plots.caption_attention(
        image, list("abcd"), hard, str(tmp_path / "single.png")
    )
    assert mpimg.imread(path).shape[0] > 1.5 * mpimg.imread(single).shape[0]


def _captured_figures(monkeypatch):
    """The figures the plotting functions close (to inspect them)."""
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    return figures


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_training_curves_skip_constant_metrics_and_mark_points(
    tmp_path, monkeypatch
):
    figures = _captured_figures(monkeypatch)
    history = [
        {
            "epoch": e,
            "loss": 1.0 / e,
            "val_loss": 1.2 / e,
            "top5_accuracy": 1.0,
            "val_top5_accuracy": 1.0,
            "empty": float("nan"),
            "learning_rate": 0.1 / e,
        }
        for e in (1, 2)
    ]
    plots.training_curves(history, str(tmp_path / "c.png"))
    titles = [t for t in _titles(figures[-1]) if t]
    assert titles == ["loss", "learning rate"]
    # A 1-epoch run: its single values are drawn as markers.
    plots.training_curves(history[:1], str(tmp_path / "one.png"))
    loss_axes = figures[-1].axes[0]
    assert [line.get_marker() for line in loss_axes.lines] == ["o", "o"]


def test_training_curves_draw_the_learning_rate_as_scheduled(
    tmp_path, monkeypatch
):
    import keras

    figures = _captured_figures(monkeypatch)
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=40)
    epochs, rates = plots.sample_schedule(schedule, 10, 4)
    assert epochs[0] == 0 and epochs[-1] == 4 and len(epochs) == 41
    assert rates[0] == np.float32(0.1) and rates[-1] < 1e-6
    history = [
        {"epoch": e, "loss": 1.0 / e, "learning_rate": float(schedule(10 * e))}
        for e in (1, 2, 3, 4)
    ]
    plots.training_curves(
        history, str(tmp_path / "c.png"), schedule=(epochs, rates)
    )
    lr_axes = [a for a in figures[-1].axes if a.get_title() == "learning rate"]
    scheduled, at_epoch_end = lr_axes[0].lines
    assert len(scheduled.get_xdata()) == 41  # every step, not per epoch
    np.testing.assert_allclose(
        at_epoch_end.get_ydata(), np.interp([1, 2, 3, 4], epochs, rates)
    )


def test_attention_maps_are_blocks_with_a_stated_scale(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    images = np.zeros((2, 8, 8, 1), "uint8")
    maps = {"spatial": np.random.default_rng(1).random((2, 2, 2))}
    plots.attention_overlays(images, maps, str(tmp_path / "a.png"))
    fig = figures[-1]
    overlays = [
        im for ax in fig.axes for im in ax.images if im.cmap.name == "jet"
    ]
    assert overlays and all(
        im.get_interpolation() == "nearest" for im in overlays
    )
    assert "scaled per image" in fig._suptitle.get_text()
    colorbars = [ax for ax in fig.axes if "per image" in ax.get_ylabel()]
    assert len(colorbars) == 1

    plots.caption_attention(
        images[0],
        ["one", "[END]"],
        np.full((2, 2, 2), 0.25),
        str(tmp_path / "c.png"),
    )
    labels = [ax.get_ylabel() for ax in figures[-1].axes]
    assert "attention weight (0 to 0.25)" in labels

    plots.alignment_heatmaps(
        [(np.eye(2), ["a", "b"], ["x", "y"], "")], str(tmp_path / "l.png")
    )
    labels = [ax.get_ylabel() for ax in figures[-1].axes]
    assert "attention weight (each row sums to 1)" in labels
