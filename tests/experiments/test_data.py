"""TFDS data: the digits builder, official datasets (mocked), errors."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import data as data_lib
from experiments.datasets import digits
from experiments.errors import UserError
from experiments.tasks import get_task
from tests.experiments.conftest import tiny_config


def test_digits_builder_splits(digits_dir):
    builder = tfds.builder("digits", data_dir=digits_dir)
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == 1437
    assert builder.info.splits["test"].num_examples == 360
    assert builder.info.features["label"].names == [str(i) for i in range(10)]
    assert builder.info.features["image"].shape == (8, 8, 1)
    test = list(tfds.as_numpy(builder.as_dataset("test")))
    images = np.stack([ex["image"] for ex in test])
    labels = np.array([ex["label"] for ex in test])
    assert images.dtype == np.uint8 and images.max() == 255
    # Stratified: every class holds ~20% of its examples in the test split.
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_digits_split_is_deterministic_and_disjoint():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train_a, test_a = digits.split_indices(labels)
    train_b, test_b = digits.split_indices(labels)
    np.testing.assert_array_equal(train_a, train_b)
    np.testing.assert_array_equal(test_a, test_b)
    assert not set(train_a) & set(test_a)
    assert len(train_a) + len(test_a) == len(labels)


def test_digits_pixels_match_sklearn(digits_dir):
    from sklearn.datasets import load_digits

    raw = load_digits()
    builder = tfds.builder("digits", data_dir=digits_dir)
    _, test_idx = digits.split_indices(raw.target)
    first = next(iter(tfds.as_numpy(builder.as_dataset("test"))))
    # The generator keys are load_digits() indices; find this example.
    matches = [
        i
        for i in test_idx
        if np.array_equal(
            digits.scale_to_uint8(raw.images[i]), first["image"][..., 0]
        )
    ]
    assert matches and raw.target[matches[0]] == first["label"]
    assert digits.scale_to_uint8(np.array([0, 8, 16])).tolist() == [0, 128, 255]


def test_own_builders_are_listed():
    assert "digits" in data_lib.own_builder_names()


@pytest.mark.parametrize(
    "name, shape",
    [
        ("mnist", (28, 28, 1)),
        ("fashion_mnist", (28, 28, 1)),
        ("cifar10", (32, 32, 3)),
        ("cifar100", (32, 32, 3)),
    ],
)
def test_official_datasets_load_through_tfds(name, shape, monkeypatch):
    # tfds.testing.mock_data fakes the prepared data; the loading path
    # (builder, features, splits, pipeline) is the real one.
    monkeypatch.setattr(data_lib, "network_available", lambda: True)
    config = tiny_config(
        "digits_resnet20",
        # Training drops the last partial global batch: 20 examples need a
        # batch of at most 20.
        extra=[
            f"data.name={name}",
            "data.augment=crop_flip",
            "data.batch_size=16",
        ],
    )
    with tfds.testing.mock_data(num_examples=20):
        data = get_task("image_classification").load_data(config, None, None)
        images, labels = next(iter(data.train))
        test_images, test_labels = next(iter(data.test))
    assert tuple(images.shape[1:]) == shape
    assert images.dtype.name == "uint8"
    classes = 100 if name == "cifar100" else 10
    assert labels.shape[-1] == classes  # one-hot for the loss
    assert data.info["num_classes"] == classes
    assert len(data.info["label_names"]) == classes
    # mnist and cifar have no validation split: 10% of train is held out.
    assert data.info["num_train_examples"] == 18
    assert test_labels.dtype.name == "int32"


def test_network_probe_can_be_forced_offline(monkeypatch):
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    assert data_lib.network_available() is False


def test_load_builder_errors(tmp_path):
    with pytest.raises(UserError, match="No dataset"):
        data_lib.load_builder("")
    with pytest.raises(UserError, match="Did you mean: .*cifar10"):
        data_lib.load_builder("cifar_10", data_dir=str(tmp_path))
    with pytest.raises(
        UserError, match="(?s)downloads are off.*tfds build mnist"
    ):
        data_lib.load_builder("mnist", data_dir=str(tmp_path), download=False)
