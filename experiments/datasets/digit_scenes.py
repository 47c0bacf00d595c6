"""TFDS builder: scenes of real scikit-learn digits with left-to-right captions.

For the Show, Attend and Tell experiments (Xu et al. 2015) without network
access: each scene places 2-4 real handwritten digits from
`sklearn.datasets.load_digits` (1,797 8x8 images, the UCI optdigits test set)
at random, non-overlapping positions on a black canvas. The caption names the
digits left to right ("three seven one"); each digit's box is kept, so a
captioner's attention can be checked against where the named digit is.

Default config (`digit_scenes/default`):
- Canvas 48x48x1 uint8 (one channel: the digits are grey-level; a CNN
  encoder that wants RGB can tile it). 48x48 keeps a small CNN cheap on CPU
  and leaves room for 2-D layouts of up to 4 digits.
- Digits upsampled 2x by pixel replication to 16x16, grey levels 0..16 mapped
  to 0..255, so every pixel is an original pixel.
- Boxes never overlap (they may touch). Left edges, hence box centres, are
  at least 8 px (half a digit) apart, so "left to right" is never ambiguous
  even when one digit sits above another.
- Source images are split before any scene is made (stratified by digit,
  seed 1234): 70% for train scenes, 10% validation, 20% test, so test scenes
  show only digit images never seen in training.
- 10,000 train / 1,000 validation / 1,000 test scenes; scene `i` of a split
  is a pure function of (seed, split, i).
`digit_scenes/tiny` (200/50/50 scenes) is the same with fewer scenes, for
smoke tests. Other layouts: pass `config=DigitScenesConfig(name=..., ...)`.

Boxes are `tfds.features.BBox` (ymin, xmin, ymax, xmax), normalised to
[0, 1]; multiply by the canvas height/width and round for pixel corners.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

DIGIT_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
SOURCE_SIZE = 8  # sklearn digits are 8x8 with grey levels 0..16.
SOURCE_MAX = 16
SPLITS = ("train", "validation", "test")

_CITATION = r"""
@misc{alpaydin1998optdigits,
  title = {Optical Recognition of Handwritten Digits},
  author = {Alpaydin, E. and Kaynak, C.},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49},
}
@inproceedings{xu2015show,
  title = {Show, Attend and Tell: Neural Image Caption Generation with
           Visual Attention},
  author = {Xu, Kelvin and Ba, Jimmy and Kiros, Ryan and Cho, Kyunghyun and
            Courville, Aaron and Salakhutdinov, Ruslan and Zemel, Richard and
            Bengio, Yoshua},
  booktitle = {International Conference on Machine Learning (ICML)},
  year = {2015},
}
"""

_DESCRIPTION = """\
Scenes of 2-4 real handwritten digits (scikit-learn's load_digits, the UCI
optdigits test set) at random non-overlapping positions on a black canvas,
captioned with the digit words left to right ("three seven one"), with each
digit's bounding box. Source digit images are split train/validation/test
before scenes are composed, so test scenes use unseen digit images.
"""


@dataclasses.dataclass(eq=False)
class DigitScenesConfig(tfds.core.BuilderConfig):
    """Layout and size of a `digit_scenes` variant.

    Args:
        canvas_height: canvas height in pixels.
        canvas_width: canvas width in pixels.
        digit_size: side of a placed digit, a multiple of 8 (the 8x8 source
            is upsampled by pixel replication).
        min_digits: fewest digits per scene.
        max_digits: most digits per scene.
        min_x_gap: least distance in pixels between two digits' left edges,
            which keeps the left-to-right order unambiguous.
        num_train: number of train scenes.
        num_validation: number of validation scenes.
        num_test: number of test scenes.
        validation_fraction: fraction of source images (per digit class)
            reserved for validation scenes.
        test_fraction: fraction of source images reserved for test scenes.
        seed: seed of the source split and of the scene layouts.
    """

    canvas_height: int = 48
    canvas_width: int = 48
    digit_size: int = 16
    min_digits: int = 2
    max_digits: int = 4
    min_x_gap: int = 8
    num_train: int = 10_000
    num_validation: int = 1_000
    num_test: int = 1_000
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 1234

    def __post_init__(self):
        for field in (
            "canvas_height",
            "canvas_width",
            "digit_size",
            "min_digits",
            "min_x_gap",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{field}` expected a positive integer. "
                    f"Received: {field}={value!r}"
                )
        for field in ("num_train", "num_validation", "num_test"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"`{field}` expected a non-negative integer. "
                    f"Received: {field}={value!r}"
                )
        if self.digit_size % SOURCE_SIZE:
            raise ValueError(
                "`digit_size` expected a multiple of 8. "
                f"Received: digit_size={self.digit_size}"
            )
        if self.max_digits < self.min_digits:
            raise ValueError(
                "`max_digits` expected to be >= min_digits. Received: "
                f"min_digits={self.min_digits}, max_digits={self.max_digits}"
            )
        if self.digit_size > min(self.canvas_height, self.canvas_width):
            raise ValueError(
                "`digit_size` expected to fit the canvas. Received: "
                f"digit_size={self.digit_size}, canvas="
                f"{self.canvas_height}x{self.canvas_width}"
            )
        span = self.canvas_width - self.digit_size
        if (self.max_digits - 1) * self.min_x_gap > span:
            raise ValueError(
                f"{self.max_digits} digits with left edges {self.min_x_gap} "
                f"px apart do not fit a canvas {self.canvas_width} px wide. "
                f"Received: max_digits={self.max_digits}, "
                f"min_x_gap={self.min_x_gap}, canvas_width={self.canvas_width}"
            )
        validation, test = self.validation_fraction, self.test_fraction
        if not (validation > 0 and test > 0 and validation + test < 1):
            raise ValueError(
                "`validation_fraction` and `test_fraction` expected positive "
                "with a sum below 1. Received: "
                f"validation_fraction={validation}, test_fraction={test}"
            )

    def num_scenes(self, split):
        return getattr(self, f"num_{split}")


def load_source_digits():
    """Returns sklearn's digits as (uint8 images [N, 8, 8] 0..255, labels)."""

    digits = load_digits()
    images = np.round(digits.images * (255.0 / SOURCE_MAX)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def split_sources(labels, config):
    """Stratified, seeded split of source image indices.

    Returns:
        A dict split name -> sorted array of indices into `labels`.
    """
    rng = np.random.default_rng(config.seed)
    parts = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(config.test_fraction * len(members)))
        n_val = int(round(config.validation_fraction * len(members)))
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {split: np.sort(np.concatenate(parts[split])) for split in SPLITS}


def _fits(y, x, placed, size, min_x_gap):
    for other_y, other_x in placed:
        if abs(x - other_x) < min_x_gap:
            return False
        overlap_y = y < other_y + size and other_y < y + size
        overlap_x = x < other_x + size and other_x < x + size
        if overlap_y and overlap_x:
            return False
    return True


def place_digits(rng, count, config, max_restarts=1000, tries=64):
    """Random top-left corners for `count` digits, sorted left to right.

    Rejection sampling: a digit position is redrawn until it neither
    overlaps a placed digit nor comes closer than `min_x_gap` to one's left
    edge; a scene that gets stuck starts again. Candidates are drawn
    `tries` at a time and scanned in order, which is the same distribution
    as drawing them one by one at a fraction of the cost.

    Returns:
        A list of `(y, x)` pixel corners sorted by `x`.
    """
    size = config.digit_size
    for _ in range(max_restarts):
        placed = []
        for _ in range(count):
            ys = rng.integers(0, config.canvas_height - size + 1, tries)
            xs = rng.integers(0, config.canvas_width - size + 1, tries)
            for y, x in zip(ys.tolist(), xs.tolist()):
                if _fits(y, x, placed, size, config.min_x_gap):
                    placed.append((y, x))
                    break
            else:
                break
        if len(placed) == count:
            return sorted(placed, key=lambda corner: corner[1])
    raise ValueError(
        f"Could not place {count} digits of {size} px on a "
        f"{config.canvas_height}x{config.canvas_width} canvas with "
        f"min_x_gap={config.min_x_gap}; use a larger canvas or fewer digits."
    )


def make_scene(rng, images, labels, pool, config):
    """Composes one scene from source images whose indices are in `pool`.

    Returns:
        A dict with the canvas `image` [H, W, 1] uint8, the `labels` and
        `source_ids` left to right, and the `corners` (y, x) in pixels.
    """
    count = int(rng.integers(config.min_digits, config.max_digits + 1))
    chosen = rng.choice(pool, size=count, replace=False)
    corners = place_digits(rng, count, config)
    scale = config.digit_size // SOURCE_SIZE
    size = config.digit_size
    canvas = np.zeros((config.canvas_height, config.canvas_width), np.uint8)
    for index, (y, x) in zip(chosen, corners):
        digit = images[index].repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[y : y + size, x : x + size] = digit
    return {
        "image": canvas[:, :, None],
        "labels": labels[chosen].tolist(),
        "source_ids": chosen.tolist(),
        "corners": corners,
    }


def caption_for(labels):
    """`[3, 7, 1]` -> `"three seven one"`."""
    return " ".join(DIGIT_WORDS[label] for label in labels)


class DigitScenes(tfds.core.GeneratorBasedBuilder):
    """Captioned scenes of real sklearn digits with per-digit boxes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
    }
    BUILDER_CONFIGS = [
        DigitScenesConfig(
            name="default",
            description="48x48 canvas, 2-4 digits of 16x16, 10k/1k/1k.",
        ),
        DigitScenesConfig(
            name="tiny",
            description="Default layout, 200/50/50 scenes (smoke tests).",
            num_train=200,
            num_validation=50,
            num_test=50,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        config = self.builder_config
        shape = (config.canvas_height, config.canvas_width, 1)
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=shape, dtype=np.uint8, encoding_format="png"
                    ),
                    "caption": tfds.features.Text(
                        doc="Digit words left to right."
                    ),
                    "labels": tfds.features.Sequence(
                        tfds.features.ClassLabel(names=DIGIT_WORDS),
                        doc="Digit classes left to right.",
                    ),
                    "bboxes": tfds.features.Sequence(
                        tfds.features.BBoxFeature(),
                        doc="Digit boxes left to right, normalised.",
                    ),
                    "source_ids": tfds.features.Sequence(
                        tfds.features.Scalar(dtype=np.int32),
                        doc="Indices into sklearn's load_digits().",
                    ),
                }
            ),
            supervised_keys=("image", "caption"),
            homepage=(
                "https://archive.ics.uci.edu/dataset/80/"
                "optical+recognition+of+handwritten+digits"
            ),
            citation=_CITATION,
            license="CC BY 4.0 (UCI optdigits)",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The digits ship inside scikit-learn.
        images, labels = load_source_digits()
        pools = split_sources(labels, self.builder_config)
        return {
            split: self._generate_examples(
                split_number, pools[split], images, labels
            )
            for split_number, split in enumerate(SPLITS)
        }

    def _generate_examples(self, split_number, pool, images, labels):
        config = self.builder_config
        height, width = config.canvas_height, config.canvas_width
        size = config.digit_size
        split = SPLITS[split_number]
        for i in range(config.num_scenes(split)):
            rng = np.random.default_rng([config.seed, split_number, i])
            scene = make_scene(rng, images, labels, pool, config)
            bboxes = [
                tfds.features.BBox(
                    ymin=y / height,
                    xmin=x / width,
                    ymax=(y + size) / height,
                    xmax=(x + size) / width,
                )
                for y, x in scene["corners"]
            ]
            yield (
                i,
                {
                    "image": scene["image"],
                    "caption": caption_for(scene["labels"]),
                    "labels": scene["labels"],
                    "bboxes": bboxes,
                    "source_ids": scene["source_ids"],
                },
            )
