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
