"""Side-by-side attention overlays of several trained captioners.

For the captioner ablation: the same test images captioned greedily by
each run's model (`model.keras` of its run folder), one figure per image
with one row per model and one panel per generated word, as in Xu et al.
2015, fig. 2/3 (for hard attention the panel shows the one selected
location).
"""

import os

import numpy as np

from experiments import plots

END = 3  # the end token's id (experiments.tasks.captioning)


def _test_images(config, data_dir, count):
    """The first `count` test images, their references and boxes, and the
    vocabulary (as the run's task built it)."""
    from experiments.tasks import get_task

    task = get_task(config.task)
    data = task.load_data(config, data_dir, None)
    images, references, boxes = [], [], []
    for batch_images, batch_refs, batch_boxes in data.test:
        images += list(batch_images.numpy())
        references += [r[0].decode("utf-8") for r in batch_refs.numpy()]
        boxes += [b[b[:, 0] >= 0] for b in batch_boxes.numpy()]
        if len(images) >= count:
            break
    return (
        np.stack(images[:count]),
        references[:count],
        boxes[:count],
        list(data.vocabulary),
    )


def _caption(model, images, vocabulary):
    """Greedy words (then "[END]") and their attention maps per image."""
    result = model.generate(images, method="greedy")
    tokens = np.asarray(result.tokens)
    attention = np.asarray(result.attention, "float32")
    rows, cols = model.feature_grid
    outputs = []
    for ids, maps in zip(tokens.tolist(), attention):
        length = ids.index(END) + 1 if END in ids else len(ids)
        words = [vocabulary[t] for t in ids[: length - (END in ids)]]
        words += ["[END]"] if END in ids else []
        outputs.append((words, maps[:length].reshape(-1, rows, cols)))
    return outputs


def compare_captioners(runs, config, out, count=4, data_dir=None):
    """Draws `count` test images captioned by every run, one PNG each.

    Args:
        runs: `(label, run_dir)` pairs; every run folder holds the
            `model.keras` the runner wrote.
        config: an `ExperimentConfig` of the runs' data (its test split
            and vocabulary).
        out: folder of the PNGs (`attention_comparison_<i>.png`).
        count: number of test images (the first of the test split).
        data_dir: TFDS data directory.

    Returns:
        The PNG paths.
    """
    import zoo

    if not runs:
        return []
    images, references, boxes, vocabulary = _test_images(
        config, data_dir, count
    )
    captions = {}
    for label, run_dir in runs:
        model = zoo.load_model(
            os.path.join(run_dir, "model.keras"), compile=False
        )
        captions[label] = _caption(model, images, vocabulary)
    os.makedirs(out, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        rows = [(label, *captions[label][i]) for label, _ in runs]
        paths.append(
            plots.caption_attention_comparison(
                image,
                rows,
                os.path.join(out, f"attention_comparison_{i}.png"),
                boxes=boxes[i],
                title=f"reference: {references[i]!r}",
            )
        )
    return paths
