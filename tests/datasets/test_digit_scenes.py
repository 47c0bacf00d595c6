"""Tests for the digit_scenes TFDS builder: layout, captions, pixels, seeds."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import experiments.datasets  # noqa: F401  (registers the builders)
from experiments.datasets import digit_scenes

SMALL = dict(num_train=40, num_validation=12, num_test=12)


def _build(data_dir, **overrides):
    config = digit_scenes.DigitScenesConfig(
        name="small", **{**SMALL, **overrides}
    )
    builder = tfds.builder("digit_scenes", data_dir=data_dir, config=config)
    builder.download_and_prepare()
    return builder


def _read_all(builder):
    return {
        split: list(tfds.as_numpy(builder.as_dataset(split=split)))
        for split in digit_scenes.SPLITS
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = _build(tmp_path_factory.mktemp("digit_scenes"))
    return builder, _read_all(builder)


def _pixel_boxes(example, config):
    scale = np.array(
        [config.canvas_height, config.canvas_width] * 2, dtype=np.float64
    )
    boxes = np.round(example["bboxes"].astype(np.float64) * scale)
    return boxes.astype(int)  # [N, 4] as ymin, xmin, ymax, xmax


def test_split_sizes_and_features(built):
    builder, splits = built
    assert {s: len(e) for s, e in splits.items()} == {
        "train": 40,
        "validation": 12,
        "test": 12,
    }
    image = splits["train"][0]["image"]
    assert image.shape == (48, 48, 1) and image.dtype == np.uint8
    names = builder.info.features["labels"].feature.names
    assert names == list(digit_scenes.DIGIT_WORDS)
    assert builder.info.supervised_keys == ("image", "caption")


def test_boxes_are_digit_sized_ordered_and_non_overlapping(built):
    builder, splits = built
    config = builder.builder_config
    size = config.digit_size
    counts = set()
    for examples in splits.values():
        for example in examples:
            boxes = _pixel_boxes(example, config)
            counts.add(len(boxes))
            assert np.all(boxes[:, 2] - boxes[:, 0] == size)
            assert np.all(boxes[:, 3] - boxes[:, 1] == size)
            assert np.all(boxes >= 0)
            assert np.all(boxes[:, 2] <= config.canvas_height)
            assert np.all(boxes[:, 3] <= config.canvas_width)
            assert np.all(np.diff(boxes[:, 1]) >= config.min_x_gap)
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, b = boxes[i], boxes[j]
                    overlap_y = a[0] < b[2] and b[0] < a[2]
                    overlap_x = a[1] < b[3] and b[1] < a[3]
                    assert not (overlap_y and overlap_x)
    assert counts == {2, 3, 4}


def test_captions_name_the_labels_left_to_right(built):
    _, splits = built
    for examples in splits.values():
        for example in examples:
            words = example["caption"].decode().split()
            labels = example["labels"].tolist()
            assert words == [digit_scenes.DIGIT_WORDS[k] for k in labels]


def test_pixels_inside_boxes_are_the_source_digits(built):
    builder, splits = built
    config = builder.builder_config
    images, labels = digit_scenes.load_source_digits()
    scale = config.digit_size // 8
    for examples in splits.values():
        for example in examples:
            image = example["image"][:, :, 0]
            inside = np.zeros_like(image, dtype=bool)
            boxes = _pixel_boxes(example, config)
            for box, source, label in zip(
                boxes, example["source_ids"], example["labels"]
            ):
                crop = image[box[0] : box[2], box[1] : box[3]]
                expected = np.kron(images[source], np.ones((scale, scale)))
                np.testing.assert_array_equal(crop, expected)
                assert labels[source] == label
                assert crop.sum() > 0
                inside[box[0] : box[2], box[1] : box[3]] = True
            # All ink lies inside the boxes: mass outside is exactly zero.
            assert image[~inside].sum() == 0
            assert image[inside].sum() > 0


def test_test_scenes_use_unseen_source_images(built):
    _, splits = built
    used = {
        split: set(np.concatenate([e["source_ids"] for e in examples]))
        for split, examples in splits.items()
    }
    assert not used["train"] & used["test"]
    assert not used["train"] & used["validation"]
    assert not used["validation"] & used["test"]


def test_source_split_is_stratified_and_disjoint():
    _, labels = digit_scenes.load_source_digits()
    config = digit_scenes.DigitScenesConfig(name="x")
    pools = digit_scenes.split_sources(labels, config)
    assert sum(len(p) for p in pools.values()) == len(labels) == 1797
    assert len(np.unique(np.concatenate(list(pools.values())))) == 1797
    for split, fraction in (("test", 0.2), ("validation", 0.1)):
        per_class = np.bincount(labels[pools[split]], minlength=10)
        expected = fraction * np.bincount(labels)
        assert np.all(np.abs(per_class - expected) <= 1)


def test_two_builds_are_identical(built, tmp_path):
    _, first = built
    second = _read_all(_build(tmp_path))
    for split in digit_scenes.SPLITS:
        assert len(first[split]) == len(second[split])
        for a, b in zip(first[split], second[split]):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def test_seed_changes_the_scenes():
    config = digit_scenes.DigitScenesConfig(name="x")
    other = digit_scenes.DigitScenesConfig(name="y", seed=99)
    images, labels = digit_scenes.load_source_digits()
    pool = np.arange(len(labels))
    scenes = [
        digit_scenes.make_scene(
            np.random.default_rng([c.seed, 0, 0]), images, labels, pool, c
        )
        for c in (config, config, other)
    ]
    np.testing.assert_array_equal(scenes[0]["image"], scenes[1]["image"])
    assert not np.array_equal(scenes[0]["image"], scenes[2]["image"])


def test_tfds_load_tiny_config(tmp_path):
    test = tfds.load("digit_scenes/tiny", split="test", data_dir=tmp_path)
    assert sum(1 for _ in test) == 50
    image, caption = next(
        iter(
            tfds.load(
                "digit_scenes/tiny",
                split="train[:1]",
                data_dir=tmp_path,
                as_supervised=True,
            )
        )
    )
    assert image.shape == (48, 48, 1)
    assert len(caption.numpy().split()) in (2, 3, 4)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"digit_size": 12}, "multiple of 8. Received: digit_size=12"),
        ({"digit_size": 0}, "positive integer. Received: digit_size=0"),
        ({"min_digits": 3, "max_digits": 2}, "max_digits` expected to be"),
        ({"canvas_width": 8, "canvas_height": 48}, "fit the canvas"),
        ({"max_digits": 6}, "do not fit a canvas 48 px wide"),
        ({"num_test": -1}, "non-negative integer. Received: num_test=-1"),
        ({"test_fraction": 0.95}, "with a sum below 1"),
        ({"validation_fraction": 0.0}, "validation_fraction=0.0"),
    ],
)
def test_invalid_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        digit_scenes.DigitScenesConfig(name="bad", **overrides)


def test_impossible_layout_raises():
    config = digit_scenes.DigitScenesConfig(
        name="crowded",
        canvas_height=16,
        canvas_width=40,
        min_digits=3,
        max_digits=3,
        min_x_gap=8,
    )
    with pytest.raises(ValueError, match="Could not place 3 digits"):
        digit_scenes.place_digits(
            np.random.default_rng(0), 3, config, max_restarts=5
        )
