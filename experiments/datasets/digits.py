"""TFDS builder for scikit-learn's 8x8 handwritten digits (UCI optdigits).

The 1,797 real 8x8 images ship inside the scikit-learn wheel
(`sklearn.datasets.load_digits`), so this dataset is prepared offline. Pixel
counts 0..16 are scaled to uint8 0..255; the train/test split is stratified
and seeded, hence identical on every machine.

Alpaydin & Kaynak 1998, "Optical Recognition of Handwritten Digits" (UCI
Machine Learning Repository).
"""

import numpy as np
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.2
SPLIT_SEED = 0

_CITATION = """\
@misc{alpaydin1998optdigits,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {Optical Recognition of Handwritten Digits},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49}
}"""


def split_indices(labels, test_fraction=TEST_FRACTION, seed=SPLIT_SEED):
    """Deterministic stratified split: `(train_indices, test_indices)`."""

    indices = np.arange(len(labels))
    train, test = train_test_split(
        indices,
        test_size=test_fraction,
        stratify=labels,
        random_state=seed,
        shuffle=True,
    )
    return np.sort(train), np.sort(test)


def scale_to_uint8(images):
    """Maps the 0..16 pixel counts of `load_digits` to uint8 0..255."""
    scaled = np.rint(np.asarray(images, "float64") * (255.0 / 16.0))
    return np.clip(scaled, 0, 255).astype("uint8")


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 1,797 handwritten digits as 8x8x1 uint8 images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 80/20 train/test split, seed 0."}

    def _info(self):
        return self.dataset_info_from_configs(
            description=(
                "Handwritten digits from scikit-learn (UCI optdigits test "
                "set): 8x8 grey images, pixel counts 0..16 scaled to "
                "0..255. Stratified seeded 80/20 train/test split."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(
                        names=[str(i) for i in range(10)]
                    ),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The data ships with scikit-learn.
        digits = load_digits()
        images = scale_to_uint8(digits.images)[..., None]
        labels = digits.target.astype("int64")
        train, test = split_indices(labels)
        return {
            "train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test),
        }

    def _generate_examples(self, images, labels, indices):
        for index in indices:
            # Keyed by the index in load_digits(), stable across versions.
            yield (
                int(index),
                {
                    "image": images[index],
                    "label": int(labels[index]),
                },
            )
