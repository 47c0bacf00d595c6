"""Text classification configs and named experiments.

- `movie_sentences[_MODEL]`: the offline VADER movie-review sentences
  (10,568 sentences, 2 classes; `experiments/datasets/movie_sentences.py`);
  sized for a 2-core CPU (minutes per model). Kim 2014's CNN with random
  embeddings reaches 76.1% on the full Pang & Lee sentence-polarity corpus.
- `imdb[_MODEL]`: official `imdb_reviews` (25k/25k reviews; needs the data).
  Reference: the keras.io "Text classification with Transformer" example,
  87.45% test accuracy.
- `ag_news[_MODEL]`, `yelp_polarity[_MODEL]`: official `ag_news_subset`
  (title + description, 4 classes) and `yelp_polarity_reviews`.
- Any prepared TFDS dataset directory: any of them with
  `--set data.name=/path/to/dataset/1.0.0 data.text_key=... data.label_key=...`.
"""

import dataclasses
from functools import partial

from experiments.config import DataConfig
from experiments.config import EvalConfig
from experiments.config import ExperimentConfig
from experiments.config import ModelConfig
from experiments.config import TrainConfig
from experiments.config import register_experiments


@dataclasses.dataclass
class TextDataConfig(DataConfig):
    """Text data: feature keys, vocabulary, the offline archive.

    Attributes:
        text_key: feature holding the text; several keys separated by
            commas are joined with ". " (`"title,description"`).
        label_key: feature holding the `ClassLabel`.
        vocabulary_size: vocabulary built on the training split (padding
            and `[UNK]` included); it becomes part of the model.
        min_token_count: tokens seen fewer times in training are `[UNK]`.
        archive_path: `movie_sentences` only: the vaderSentiment-3.3.2
            archive, instead of TFDS's manual directory.
    """

    text_key: str = "text"
    label_key: str = "label"
    vocabulary_size: int = 20000
    min_token_count: int = 1
    archive_path: str = ""


@dataclasses.dataclass
class TextEvalConfig(EvalConfig):
    """Text evaluation outputs.

    Attributes:
        baseline: also train and score the TF-IDF + logistic regression
            reference (scikit-learn) on the same split.
        attention_maps: number of test texts whose word attention is drawn.
    """

    baseline: bool = True
    attention_maps: int = 8


# What `ablate` compares by default: attention vs max-pool vs hard
# attention vs Transformer pooling (same data, recipe and seeds).
ABLATION_MODELS = (
    "bigru_attention",
    "bigru_maxpool",
    "bigru_hard_attention",
    "transformer_classifier",
)

# Sentences: 99% of them have <= 41 tokens, the longest 51; HAN reads
# each as (mostly) one sentence. Word dropout 0.3 on the embeddings; the
# recipe (3 epochs, AdamW 2e-3 with decay 0.01, tokens seen once -> [UNK])
# was chosen on the validation split with bigru_attention, seed 0.
_SENTENCE_KWARGS = {
    "han": {"max_sentences": 4, "sentence_length": 48},
}


def movie_sentences_experiment(model="bigru_attention"):
    """Offline movie-review sentences, a few minutes per model on 2 cores."""
    kwargs = dict(_SENTENCE_KWARGS.get(model, {"sequence_length": 48}))
    kwargs["embedding_dropout"] = 0.3
    return ExperimentConfig(
        task="text_classification",
        data=TextDataConfig(
            name="movie_sentences",
            train_split="train",
            test_split="test",
            batch_size=32,
            eval_batch_size=256,
            vocabulary_size=20000,
            min_token_count=2,
        ),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=TrainConfig(
            epochs=3,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=0.01,
            schedule="cosine",
            warmup_epochs=0,
            clipnorm=1.0,
        ),
        eval=TextEvalConfig(),
        description=f"{model} on movie-review sentences (offline, minutes)",
    )


def imdb_experiment(model="transformer_classifier"):
    """IMDB reviews: 25k train / 25k test; the keras.io reference setup."""
    if model == "han":
        kwargs = {"max_sentences": 16, "sentence_length": 40}
    else:
        kwargs = {"sequence_length": 256}
    return ExperimentConfig(
        task="text_classification",
        data=TextDataConfig(
            name="imdb_reviews",
            test_split="test",
            batch_size=32,
            vocabulary_size=20000,
        ),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=TrainConfig(
            epochs=4,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            schedule="cosine",
            clipnorm=1.0,
        ),
        eval=TextEvalConfig(),
        description=f"{model} on imdb_reviews (official TFDS; needs the data)",
    )


def news_like_experiment(dataset, model, text_key, epochs):
    """A news or review corpus of the official TFDS (AG News, Yelp)."""
    if model == "han":
        kwargs = {"max_sentences": 8, "sentence_length": 40}
    else:
        kwargs = {"sequence_length": 128}
    return ExperimentConfig(
        task="text_classification",
        data=TextDataConfig(
            name=dataset,
            text_key=text_key,
            validation_fraction=0.05,
            test_split="test",
            batch_size=64,
            vocabulary_size=50000,
            min_token_count=2,
        ),
        model=ModelConfig(name=model, kwargs=kwargs),
        train=TrainConfig(
            epochs=epochs,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            schedule="cosine",
            clipnorm=1.0,
        ),
        eval=TextEvalConfig(),
        description=f"{model} on {dataset} (official TFDS; needs the data)",
    )


def ag_news_experiment(model):
    """AG News (4 topics) on title and description."""
    return news_like_experiment("ag_news_subset", model, "title,description", 4)


def yelp_polarity_experiment(model):
    """Yelp review polarity."""
    return news_like_experiment("yelp_polarity_reviews", model, "text", 2)


# === Named experiments ===
EXPERIMENTS = {
    "movie_sentences": partial(movie_sentences_experiment, "bigru_attention"),
    "imdb": partial(imdb_experiment, "transformer_classifier"),
    "ag_news": partial(ag_news_experiment, "bigru_attention"),
    "yelp_polarity": partial(yelp_polarity_experiment, "bigru_attention"),
    "movie_sentences_bigru_attention": partial(
        movie_sentences_experiment, "bigru_attention"
    ),
    "imdb_bigru_attention": partial(imdb_experiment, "bigru_attention"),
    "ag_news_bigru_attention": partial(ag_news_experiment, "bigru_attention"),
    "yelp_polarity_bigru_attention": partial(
        yelp_polarity_experiment, "bigru_attention"
    ),
    "movie_sentences_bigru_luong": partial(
        movie_sentences_experiment, "bigru_luong"
    ),
    "imdb_bigru_luong": partial(imdb_experiment, "bigru_luong"),
    "ag_news_bigru_luong": partial(ag_news_experiment, "bigru_luong"),
    "yelp_polarity_bigru_luong": partial(
        yelp_polarity_experiment, "bigru_luong"
    ),
    "movie_sentences_bigru_hard_attention": partial(
        movie_sentences_experiment, "bigru_hard_attention"
    ),
    "imdb_bigru_hard_attention": partial(
        imdb_experiment, "bigru_hard_attention"
    ),
    "ag_news_bigru_hard_attention": partial(
        ag_news_experiment, "bigru_hard_attention"
    ),
    "yelp_polarity_bigru_hard_attention": partial(
        yelp_polarity_experiment, "bigru_hard_attention"
    ),
    "movie_sentences_bigru_maxpool": partial(
        movie_sentences_experiment, "bigru_maxpool"
    ),
    "imdb_bigru_maxpool": partial(imdb_experiment, "bigru_maxpool"),
    "ag_news_bigru_maxpool": partial(ag_news_experiment, "bigru_maxpool"),
    "yelp_polarity_bigru_maxpool": partial(
        yelp_polarity_experiment, "bigru_maxpool"
    ),
    "movie_sentences_han": partial(movie_sentences_experiment, "han"),
    "imdb_han": partial(imdb_experiment, "han"),
    "ag_news_han": partial(ag_news_experiment, "han"),
    "yelp_polarity_han": partial(yelp_polarity_experiment, "han"),
    "movie_sentences_transformer_classifier": partial(
        movie_sentences_experiment, "transformer_classifier"
    ),
    "imdb_transformer_classifier": partial(
        imdb_experiment, "transformer_classifier"
    ),
    "ag_news_transformer_classifier": partial(
        ag_news_experiment, "transformer_classifier"
    ),
    "yelp_polarity_transformer_classifier": partial(
        yelp_polarity_experiment, "transformer_classifier"
    ),
}
register_experiments(EXPERIMENTS)
