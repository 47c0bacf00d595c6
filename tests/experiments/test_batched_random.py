"""`experiments.batched_random`: TensorFlow's stateless random ops for a
batch of seeds, equal row by row to the ops themselves."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from experiments import batched_random
from experiments.tasks import get_task
from tests.experiments.conftest import tiny_config


def _seeds():
    rng = np.random.default_rng(0)
    full_range = rng.integers(-(2**63), 2**63 - 1, (40, 2), dtype=np.int64)
    # TrainStream's seeds: (epoch seed, position), small and non-negative.
    small = np.stack([np.full(40, 7), np.arange(40)], axis=-1)
    return tf.constant(np.concatenate([full_range, small]), tf.int64)


@pytest.mark.parametrize("num", [1, 2, 3])
def test_split_equals_stateless_split(num):
    seeds = _seeds()
    expected = [tf.random.experimental.stateless_split(s, num) for s in seeds]
    got = batched_random.stateless_split(seeds, num)
    assert got.shape == (len(seeds), num, 2)
    np.testing.assert_array_equal(got, np.stack(expected))


@pytest.mark.parametrize("size, maxval", [(1, 10), (3, 2**31 - 1), (6, 17)])
def test_uniform_int_equals_stateless_uniform(size, maxval):
    seeds = _seeds()
    expected = [
        tf.random.stateless_uniform(
            [size], s, minval=0, maxval=maxval, dtype=tf.int32
        )
        for s in seeds
    ]
    got = batched_random.stateless_uniform_int(seeds, size, maxval)
    np.testing.assert_array_equal(got, np.stack(expected))


def test_uniform_float_equals_stateless_uniform():
    seeds = _seeds()
    expected = [tf.random.stateless_uniform([], s) for s in seeds]
    got = batched_random.stateless_uniform(seeds)
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got, np.stack(expected))
    assert 0.0 <= float(tf.reduce_min(got)) < float(tf.reduce_max(got)) < 1.0


def _per_example_prepare(augment, pad, shape, num_classes):
    """The reference: TensorFlow's per-example stateless image ops."""

    def prepare(example, seed):
        image, label = example
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 2)
        )
        if augment in ("crop", "crop_flip") and pad > 0:
            padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
            image = tf.image.stateless_random_crop(padded, shape, crop_seed)
        if augment in ("flip", "crop_flip"):
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return image, tf.one_hot(label, num_classes)

    return prepare


@pytest.mark.parametrize(
    "augment, pad", [("crop", 1), ("crop_flip", 4), ("flip", 0)]
)
def test_batched_image_augmentation_equals_per_example_ops(
    digits_dir, augment, pad
):
    config = tiny_config(
        extra=[f"data.augment={augment}", f"data.crop_padding={pad}"]
    )
    data = get_task("image_classification").load_data(config, digits_dir, None)
    stream = data.train_stream
    reference = dataclasses.replace(
        stream,
        prepare_batch=None,
        prepare=_per_example_prepare(
            augment, pad, data.info["input_shape"], data.info["num_classes"]
        ),
    )
    for epoch in (0, 2):
        got, expected = list(stream.epoch(epoch)), list(reference.epoch(epoch))
        assert len(got) == len(expected) == stream.steps_per_epoch
        for (images, labels), (ref_images, ref_labels) in zip(got, expected):
            assert images.dtype == ref_images.dtype == tf.uint8
            np.testing.assert_array_equal(images, ref_images)
            np.testing.assert_array_equal(labels, ref_labels)
    # The augmentation does something: not every image is the original.
    plain = dataclasses.replace(reference, prepare=lambda example, _: example)
    originals = np.concatenate([b[0] for b in plain.epoch(0)])
    augmented = np.concatenate([b[0] for b in stream.epoch(0)])
    assert not np.array_equal(originals, augmented)


def test_batched_augmentation_draws_batch_by_batch_beyond_its_epoch_table(
    digits_dir,
):
    # The augmentation looks a batch's draws up in a table of its epoch's
    # positions (0 .. training examples - 1); positions past the table
    # (here: the split read twice in one epoch) are drawn batch by batch,
    # and both give TensorFlow's per-example numbers.
    config = tiny_config(
        extra=["data.augment=crop_flip", "data.crop_padding=2"]
    )
    data = get_task("image_classification").load_data(config, digits_dir, None)
    stream = data.train_stream
    doubled = dataclasses.replace(
        stream,
        examples=stream.examples.concatenate(stream.examples),
        num_examples=2 * stream.num_examples,
        shuffle_buffer=1,
    )
    reference = dataclasses.replace(
        doubled,
        prepare_batch=None,
        prepare=_per_example_prepare(
            "crop_flip", 2, data.info["input_shape"], data.info["num_classes"]
        ),
    )
    got, expected = list(doubled.epoch(1)), list(reference.epoch(1))
    assert len(got) == len(expected) == doubled.steps_per_epoch
    assert doubled.steps_per_epoch > stream.steps_per_epoch
    for (images, _), (ref_images, _) in zip(got, expected):
        np.testing.assert_array_equal(images, ref_images)
