"""Image captioning configs and named experiments (digit scenes, COCO).

`digit_scenes_soft` / `digit_scenes_hard` / `digit_scenes_hard_gumbel`
train Show, Attend and Tell (Xu et al. 2015; hard attention with REINFORCE
or straight-through Gumbel-softmax) and `digit_scenes_transformer` a
Transformer decoder over the same encoder, on the offline `digit_scenes`
builder (48x48 scenes of 2-4 real sklearn digits, captions naming them
left to right, a box per digit) in a few minutes on one CPU core: a
3-stage CNN (6x6 = 36 annotation vectors), a 256-unit LSTM.
`python -m experiments ablate digit_scenes_transformer` compares the four
(`CAPTIONERS`). `coco_captions` / `coco_captions_hard` are the paper's
COCO setting on the official TFDS `coco_captions` (Karpathy splits; needs
the data prepared in `--data-dir`): 224x224 images, a 4-stage CNN (14x14 =
196 annotation vectors, as the paper's VGG conv5_4), vocabulary of words
seen at least 5 times."""

import dataclasses
from functools import partial

from experiments.config import DataConfig
from experiments.config import ExperimentConfig
from experiments.config import ModelConfig
from experiments.config import TrainConfig
from experiments.config import register_experiments
from experiments.configs.seq2seq import Seq2SeqEvalConfig

# Each captioner's settings on digit_scenes beyond the shared encoder.
LSTM_DECODER = {
    "embedding_dim": 64,
    "units": 256,
    "attention_units": 128,
}
DIGIT_SCENES_RECIPES = {
    "show_attend_tell_soft": {
        **LSTM_DECODER,
        # Captions of 2-4 words over 36 locations: the paper's lambda=1
        # would push every step's attention to spread over the whole
        # canvas; a small weight keeps the regulariser's push gentle.
        "attention_regularizer": 0.01,
    },
    "show_attend_tell_hard": {
        **LSTM_DECODER,
        # 156 steps per epoch: the first 4 epochs anneal from soft to hard
        # attention (expected-context probability 1 -> 0.5, entropy bonus
        # 0.01 -> 0).
        "anneal_steps": 624,
    },
    # About the LSTM decoder's parameter count.
    "transformer_captioner": {
        "num_layers": 2,
        "model_dim": 128,
        "num_heads": 4,
        "ff_dim": 256,
    },
}


def model_spec(model, **kwargs):
    """`"name:key=value:..."` as `python -m experiments ablate` reads it."""
    return ":".join([model, *(f"{k}={v}" for k, v in kwargs.items())])


# The captioner ablation (`ablate digit_scenes_transformer`, whose model
# settings are the shared encoder's only): soft, hard with each estimator,
# Transformer, each with its digit_scenes recipe.
CAPTIONERS = (
    model_spec("show_attend_tell_soft", attention_regularizer=0.01),
    model_spec("show_attend_tell_hard", anneal_steps=624),
    model_spec("show_attend_tell_hard", anneal_steps=624, estimator="gumbel"),
    "transformer_captioner",
)


@dataclasses.dataclass
class CaptioningDataConfig(DataConfig):
    """Images with captions: feature keys, image size, word vocabulary.

    Attributes:
        image_key: feature holding the image.
        caption_key: feature holding the caption, or several captions per
            image; nested features are named with `/` (COCO:
            `captions/text`). Each caption is one training example; all of
            an image's captions are the references at evaluation.
        boxes_key: optional feature of `tfds.features.BBox` boxes, one per
            caption word in order (digit_scenes: `bboxes`); with it the
            attention localisation is measured. `""` for none.
        image_size: `[height, width]` every image is resized to; empty:
            the dataset's fixed image shape.
        min_word_count: words seen fewer times in the training captions
            map to [UNK].
        max_vocab_size: most frequent words kept (plus 4 reserved ids).
        max_caption_length: tokens kept including [START]/[END]; longer
            training captions are cut (their [END] kept); the decoding
            limit.
    """

    name: str = "digit_scenes"
    image_key: str = "image"
    caption_key: str = "caption"
    boxes_key: str = "bboxes"
    train_split: str = "train"
    validation_split: str = "auto"
    test_split: str = "test"
    batch_size: int = 64
    eval_batch_size: int = 250
    image_size: list[int] = dataclasses.field(default_factory=list)
    min_word_count: int = 1
    max_vocab_size: int = 10000
    max_caption_length: int = 8


@dataclasses.dataclass
class CaptioningEvalConfig(Seq2SeqEvalConfig):
    """Evaluation of a captioner (see `Seq2SeqEvalConfig`).

    Attributes:
        attention_maps: test images drawn with one attention panel per
            generated word.
    """

    beam_width: int = 3


def digit_scenes_experiment(model, epochs=8, **model_kwargs):
    """A captioner on the offline digit scenes (~minutes on one core)."""
    kwargs = {
        # One 3x3 convolution per stage keeps a training step cheap on a
        # CPU core; its 22-pixel receptive field covers a 16-pixel digit.
        "encoder_filters": [16, 32, 64],
        "convs_per_stage": 1,
        "dropout": 0.2,
        **DIGIT_SCENES_RECIPES.get(model, {}),
        **model_kwargs,
    }
    return ExperimentConfig(
        task="image_captioning",
        data=CaptioningDataConfig(),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=TrainConfig(
            epochs=epochs,
            optimizer="adam",
            learning_rate=2e-3,
            weight_decay=0.0,
            schedule="cosine",
            clipnorm=5.0,
        ),
        eval=CaptioningEvalConfig(),
        description=(
            f"{model_spec(model, **model_kwargs)} on digit_scenes (offline, "
            "a few minutes on 1 CPU core)"
        ),
    )


# Karpathy train+restval: ~566k captions, ~8,850 steps of 64 per epoch;
# hard attention anneals from soft to hard over the first 4 epochs, as on
# digit_scenes.
COCO_RECIPES = {"show_attend_tell_hard": {"anneal_steps": 35_000}}


def coco_experiment(model, epochs=20):
    """The paper's COCO setting (official TFDS coco_captions, Karpathy
    splits); needs the data prepared in --data-dir."""
    return ExperimentConfig(
        task="image_captioning",
        data=CaptioningDataConfig(
            name="coco_captions",
            caption_key="captions/text",
            boxes_key="",
            train_split="train+restval",
            validation_split="val[:5000]",
            test_split="test",
            batch_size=64,
            eval_batch_size=64,
            image_size=[224, 224],
            min_word_count=5,
            max_vocab_size=10000,
            max_caption_length=22,
            cache=False,
            shuffle_buffer=2000,
        ),
        model=ModelConfig(
            name=model,
            kwargs={
                "encoder_filters": [64, 128, 256, 512],
                "convs_per_stage": 2,
                "embedding_dim": 512,
                "units": 1024,
                "attention_units": 512,
                "dropout": 0.5,
                "attention_regularizer": 1.0,
                **COCO_RECIPES.get(model, {}),
            },
        ),
        train=TrainConfig(
            epochs=epochs,
            optimizer="adam",
            learning_rate=1e-3,
            weight_decay=0.0,
            schedule="cosine",
            warmup_epochs=1,
            clipnorm=5.0,
        ),
        eval=CaptioningEvalConfig(beam_width=3, attention_maps=6),
        description=(
            f"{model} on COCO captions, Karpathy splits (official TFDS; "
            "needs the data; the paper's setting)"
        ),
    )


# === Named experiments ===
EXPERIMENTS = {
    "digit_scenes_soft": partial(
        digit_scenes_experiment, "show_attend_tell_soft"
    ),
    "digit_scenes_hard": partial(
        digit_scenes_experiment, "show_attend_tell_hard"
    ),
    "digit_scenes_hard_gumbel": partial(
        digit_scenes_experiment, "show_attend_tell_hard", estimator="gumbel"
    ),
    "digit_scenes_transformer": partial(
        digit_scenes_experiment, "transformer_captioner"
    ),
    "coco_captions": partial(coco_experiment, "show_attend_tell_soft"),
    "coco_captions_hard": partial(coco_experiment, "show_attend_tell_hard"),
}
register_experiments(EXPERIMENTS)
