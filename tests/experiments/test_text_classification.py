"""The text classification task end to end on small synthetic data.

A tiny `movie_sentences` (a synthetic vaderSentiment archive in the TFDS
manual directory, as CI has no real archive) is trained for a few steps,
evaluated (report, confusion matrix, word attention, TF-IDF baseline) and
exported; the SavedModel is then served raw strings (empty, whitespace,
very long, non-ASCII, invalid UTF-8, an empty batch) in a process that
never imports this project. A prepared TFDS directory with other feature
keys and empty texts checks the generic path and the empty-text count;
official datasets load through `tfds.testing.mock_data`.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from experiments import data as data_lib
from experiments import runner
from experiments.cli import main
from experiments.errors import UserError
from experiments.tasks import get_task
from experiments.tasks.text_classification import BLANK_PATTERN
from experiments.tasks.text_classification import is_blank
from experiments.tasks.text_classification import write_attention_files
from tests.datasets.test_movie_sentences import write_synthetic_archive
from zoo.text import tokenize
from zoo.text.word_attention import from_outputs

pytestmark = pytest.mark.tf_only

# A few steps of a tiny Transformer (no recurrent loop to trace: the
# recurrent models are covered by tests/zoo/test_text_models.py).
EXPERIMENT = "movie_sentences_transformer_classifier"
TINY = [
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "model.embedding_dim=8",
    "model.num_heads=2",
    "model.ff_dim=8",
    "model.num_layers=1",
    "model.sequence_length=12",
    "eval.attention_maps=3",
]
SERVED_TEXTS = [
    "a good fun film",
    "",
    "   ",
    "dull " * 40000,  # ~200 kB, truncated to the sequence length
    "映画 café Ünïcödé !!",
    b"bad \xff\xfe bytes \xc3",  # not UTF-8
]


def _rows(count=120, seed=0):
    """`(id, score, text)` rows whose polarity words carry the label."""
    rng = np.random.default_rng(seed)
    good = ["good", "fun", "moving", "great"]
    bad = ["bad", "dull", "boring", "awful"]
    fillers = ["film", "plot", "the", "cast", "story", "a", "is"]
    rows = []
    for i in range(1, count + 1):
        positive = i % 2 == 0
        words = list(rng.choice(fillers, 4)) + list(
            rng.choice(good if positive else bad, 2)
        )
        rng.shuffle(words)
        score = float(rng.uniform(0.5, 3)) * (1 if positive else -1)
        rows.append((i, round(score, 3), (" ".join(words) + " .").encode()))
    rows[0] = (1, -1.5, "Un film ennuyeux , café froid .".encode())
    return rows


@pytest.fixture(scope="module")
def movie_dir(tmp_path_factory):
    """A TFDS data dir whose manual dir holds a synthetic archive."""
    data_dir = tmp_path_factory.mktemp("text_tfds")
    write_synthetic_archive(data_dir / "downloads" / "manual", _rows())
    return str(data_dir)


def _config(name=EXPERIMENT, extra=(), epochs=1):
    return runner.resolve(name, [*TINY, *extra], epochs=epochs)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, movie_dir):
    out = str(tmp_path_factory.mktemp("text_runs") / "movie")
    metrics = runner.run(
        _config(epochs=2),
        name=EXPERIMENT,
        out=out,
        data_dir=movie_dir,
        verbose=0,
    )
    return out, metrics


def test_run_outputs(finished_run):
    out, metrics = finished_run
    for name in (
        "config.json",
        "metrics.json",
        "history.csv",
        "model.keras",
        "classification_report.txt",
        "baseline_classification_report.txt",
        "confusion_matrix.json",
        "plots/training_curves.png",
        "plots/confusion_matrix.png",
        "plots/word_attention.png",
        "plots/word_attention.html",
        "saved_model/1/saved_model.pb",
    ):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["data"]["dataset"] == "movie_sentences/1.0.0"
    assert saved["data"]["dropped_empty_train_texts"] == 0
    assert saved["num_test_examples"] == saved["data"]["num_test_examples"]
    assert 0.0 <= saved["test_macro_f1"] <= 1.0
    assert saved["classification_report"]["accuracy"] == pytest.approx(
        saved["test_accuracy"]
    )
    baseline = saved["baseline_tfidf_logreg"]
    # The polarity words separate the classes: the linear baseline is exact.
    assert baseline["test_accuracy"] == 1.0
    assert saved["test_accuracy_minus_baseline"] == pytest.approx(
        saved["test_accuracy"] - 1.0
    )
    examples = saved["attention_examples"]
    assert len(examples) == 3
    for example in examples:
        assert example["tokens"] == tokenize([example["text"]])[0][:12]
        assert len(example["weights"]) == len(example["tokens"])
        assert sum(example["weights"]) == pytest.approx(1.0, abs=1e-3)
    with open(os.path.join(out, "plots/word_attention.html")) as f:
        html = f.read()
    assert html.count('<span class="w"') == sum(
        len(e["tokens"]) for e in examples
    )
    assert metrics["run_dir"] == out


_SERVE = textwrap.dedent(
    """
    import json, sys
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf
    fn = tf.saved_model.load({path!r}).signatures["serving_default"]
    texts = [bytes.fromhex(h) for h in json.load(open({texts!r}))]
    out = fn(text=tf.constant(texts))
    result = {{k: v.numpy().tolist() for k, v in out.items()}}
    result = json.loads(json.dumps(result, default=lambda b: b.hex()))
    empty = fn(text=tf.constant([], tf.string))
    result["empty_shapes"] = {{k: v.shape.as_list() for k, v in empty.items()}}
    errors = {{}}
    for case, value in (("float", tf.constant([1.0])),
                        ("rank2", tf.constant([["a"]]))):
        try:
            fn(text=value)
            errors[case] = "no error"
        except Exception as err:  # noqa: BLE001
            errors[case] = type(err).__name__
    result["errors"] = errors
    result["leaked"] = sorted(
        m for m in sys.modules if m.split(".")[0] in {packages!r})
    json.dump(result, open({result!r}, "w"))
    """
)


def _serve_in_fresh_process(path, texts, tmp_path):
    texts_path = str(tmp_path / "texts.json")
    with open(texts_path, "w") as f:
        json.dump(
            [(t.encode() if isinstance(t, str) else t).hex() for t in texts],
            f,
        )
    result_path = str(tmp_path / "served.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    script = _SERVE.format(
        root=root,
        path=path,
        texts=texts_path,
        result=result_path,
        packages=("layers", "zoo", "experiments", "benchmarks", "tests"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=str(tmp_path),  # outside the repository: nothing importable
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(result_path) as f:
        return json.load(f)


def test_export_serves_raw_strings_in_a_fresh_process(finished_run, tmp_path):
    out, _ = finished_run
    served = _serve_in_fresh_process(
        os.path.join(out, "saved_model", "1"), SERVED_TEXTS, tmp_path
    )
    assert served["leaked"] == []
    probs = np.asarray(served["probabilities"])
    assert probs.shape == (len(SERVED_TEXTS), 2)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # Same numbers as the trained model in this process.
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    inputs = [t.encode() if isinstance(t, str) else t for t in SERVED_TEXTS]
    expected = np.asarray(model(tf.constant(inputs)))
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    names = [bytes.fromhex(n).decode() for n in served["label_names"][0]]
    assert names == ["negative", "positive"]
    labels = [bytes.fromhex(n).decode() for n in served["label"]]
    assert labels == [names[i] for i in probs.argmax(-1)]
    # Tokens and weights: empty texts have none, long ones are truncated.
    tokens = [
        [bytes.fromhex(t).decode() for t in row] for row in served["tokens"]
    ]
    assert tokens[0][:4] == ["a", "good", "fun", "film"]
    assert not any(tokens[1]) and not any(tokens[2])
    assert tokens[3] == ["dull"] * 12
    assert tokens[4][:4] == ["映画", "café", "ünïcödé", "!"]
    assert tokens[5][:2] == ["bad", "bytes"]
    weights = np.asarray(served["attention_weights"])
    np.testing.assert_allclose(weights[[0, 3, 4, 5]].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(weights[[1, 2]], 0.0)
    # An empty batch gives empty outputs; bad requests fail cleanly.
    assert served["empty_shapes"]["probabilities"] == [0, 2]
    assert served["empty_shapes"]["tokens"] == [0, 12]
    assert served["errors"] == {
        "float": "InvalidArgumentError",
        "rank2": "InvalidArgumentError",
    }

    # The word-attention pictures can be drawn from the served outputs.
    outputs = {
        "tokens": np.asarray(
            [[bytes.fromhex(t) for t in row] for row in served["tokens"]],
            dtype=object,
        ),
        "attention_weights": weights,
        "probabilities": probs,
    }
    attended = from_outputs(SERVED_TEXTS[:1], outputs)
    records = write_attention_files(
        attended, ["served"], str(tmp_path), "served", png=True
    )
    assert records[0]["tokens"] == ["a", "good", "fun", "film"]
    assert os.path.exists(tmp_path / "word_attention.png")


def test_attention_pictures_from_the_exported_model(
    finished_run, tmp_path, capsys
):
    from experiments import text_attention

    out, _ = finished_run
    code = text_attention.main(
        [out, "a good fun film", "Ünïcödé !", "--out", str(tmp_path)]
    )
    assert code == 0
    assert "most attended: " in capsys.readouterr().out
    with open(tmp_path / "word_attention.html") as f:
        html = f.read()
    assert html.count('<span class="w"') == 4 + 2
    assert os.path.exists(tmp_path / "word_attention.png")
    assert text_attention.main([str(tmp_path), "text"]) == 2
    assert "holds no SavedModel" in capsys.readouterr().err


# --- A prepared TFDS directory with other keys and empty texts ----------


class ZooTestReviews(tfds.core.GeneratorBasedBuilder):
    """Three-class reviews under keys `review`/`stars`, some texts empty."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "review": tfds.features.Text(),
                    "stars": tfds.features.ClassLabel(
                        names=["bad", "okay", "good"]
                    ),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(60, 0),
            "test": self._generate_examples(15, 1),
        }

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        words = [["awful", "bad"], ["fine", "okay"], ["great", "good"]]
        for i in range(count):
            label = i % 3
            text = " ".join(rng.choice(words[label], 3)) + " meal"
            blanks = {4: "", 9: "   ", 17: "\t\n ", 23: "\u00a0\u3000 "}
            if seed == 0 and i in blanks:
                text = blanks[i]
            yield i, {"review": text, "stars": label}


@pytest.fixture(scope="module")
def reviews_path(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("reviews")
    builder = ZooTestReviews(data_dir=str(data_dir))
    builder.download_and_prepare()
    return os.path.join(str(data_dir), "zoo_test_reviews", "1.0.0")


def _reviews_overrides(path):
    return [
        f"data.name={path}",
        "data.text_key=review",
        "data.label_key=stars",
        "data.validation_split=",
        "train.run_eagerly=true",
        "export=false",
        "eval.plots=false",
        "eval.attention_maps=0",
    ]


def test_prepared_directory_drops_and_counts_empty_texts(
    reviews_path, tmp_path, capsys
):
    config = _config(extra=_reviews_overrides(reviews_path))
    metrics = runner.run(
        config, name="reviews", out=str(tmp_path / "run"), verbose=0
    )
    assert "Dropped 4 empty or whitespace-only training text(s) of 60" in (
        capsys.readouterr().out
    )
    with open(tmp_path / "run" / "metrics.json") as f:
        saved = json.load(f)
    assert saved["data"]["dropped_empty_train_texts"] == 4
    assert saved["data"]["num_train_examples"] == 56
    assert saved["data"]["num_classes"] == 3
    assert saved["num_test_examples"] == 15
    assert set(saved["classification_report"]) >= {"bad", "okay", "good"}
    assert metrics["baseline_tfidf_logreg"]["test_accuracy"] == 1.0


def test_training_pipeline_never_yields_empty_texts(reviews_path):
    config = _config(extra=_reviews_overrides(reviews_path))
    data = get_task("text_classification").load_data(config, None, None)
    # Each epoch: 3 full global batches of 16 (the partial batch of the
    # reshuffled 56 texts is dropped), never an empty text.
    epochs = [
        [t for batch, _ in data.train_stream.epoch(e) for t in batch.numpy()]
        for e in range(2)
    ]
    for texts in epochs:
        assert len(texts) == 48 and not any(map(is_blank, texts))
    assert epochs[0] != epochs[1]  # reshuffled per epoch
    assert data.steps_per_epoch == 3


def test_blank_texts_agree_between_python_and_the_pipeline():
    # Every character Python calls whitespace (NBSP, ideographic space,
    # ...) is blank for both the Python count and the tf.data filter.
    spaces = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
    texts = [*spaces, spaces, "", "a", "\u200b", " x\u3000", "\xff"]
    encoded = [t.encode() if isinstance(t, str) else t for t in texts]
    encoded[-1] = b"\xff"  # invalid UTF-8 is not blank
    expected = [is_blank(t) for t in encoded]
    assert expected == [True] * (len(spaces) + 2) + [False] * 4
    matched = tf.strings.regex_full_match(tf.constant(encoded), BLANK_PATTERN)
    assert matched.numpy().tolist() == expected


@pytest.mark.parametrize(
    "name, text_key, classes",
    [
        ("imdb_reviews", "text", 2),
        ("ag_news_subset", "title,description", 4),
        ("yelp_polarity_reviews", "text", 2),
    ],
)
def test_official_datasets_load_through_tfds(
    name, text_key, classes, monkeypatch
):
    # mock_data fakes the prepared data; the loading path is the real one.
    monkeypatch.setattr(data_lib, "network_available", lambda: True)
    config = _config(
        extra=[
            f"data.name={name}",
            f"data.text_key={text_key}",
            "data.validation_split=",
            # mock_data's random words occur once each.
            "data.min_token_count=1",
            "data.batch_size=4",
        ]
    )
    with tfds.testing.mock_data(num_examples=12):
        data = get_task("text_classification").load_data(config, None, None)
        texts, labels = next(iter(data.train))
    assert texts.dtype == tf.string and labels.shape[-1] == classes
    assert data.info["num_classes"] == classes
    assert (
        data.info["num_train_examples"] + data.info["dropped_empty_train_texts"]
        == 12
    )
    if "," in text_key:  # title and description joined
        assert all(b". " in t for t in texts.numpy())


# --- Bad input ----------------------------------------------------------


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def test_missing_movie_archive_gives_the_fetch_command(tmp_path, capsys):
    code, err = _cli(
        capsys, "run", "movie_sentences", "--data-dir", str(tmp_path)
    )
    assert code == 2
    manual = os.path.join(str(tmp_path), "downloads", "manual")
    fetch = (
        "python -m pip download --no-deps --no-binary :all: "
        f"vaderSentiment==3.3.2 -d {manual}"
    )
    assert fetch in err
    assert err.count("error:") == 1
    # No half-made run folder is left behind.
    assert not os.path.exists("runs") or not [
        d
        for d in os.listdir("runs")
        if d.startswith("movie_sentences-")
        and not os.listdir(os.path.join("runs", d))
    ]
    code, err = _cli(
        capsys,
        "run",
        "movie_sentences",
        "--data-dir",
        str(tmp_path),
        "--set",
        f"data.archive_path={tmp_path}/nowhere/vader.tar.gz",
    )
    assert code == 2 and "does not exist" in err and "pip download" in err


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["data.text_key=review"], "no feature 'review'"),
        (["model.num_head=3"], "Valid keys: model.kwargs.vocabulary"),
        (["model.name=bigru_atention"], "Did you mean: bigru_attention"),
        (["model.name=resnet20"], "not a text_classification model"),
        (["data.vocabulary_size=2"], "data.vocabulary_size must be >= 3"),
        (
            ["data.name=imdb_reviews", "data.archive_path=/tmp/x.tgz"],
            "movie_sentences dataset only",
        ),
        (["data.label_key=score"], "is not a ClassLabel"),
        (["data.train_split=unsupervised"], "has no split 'unsupervised'"),
        (["model.pooling=sum"], "`pooling` must be one of"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    overrides, expected, movie_dir, capsys, tmp_path
):
    code, err = _cli(
        capsys,
        "run",
        EXPERIMENT,
        "--data-dir",
        movie_dir,
        "--out",  # errors found while building leave no folder in runs/
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--set",
        *TINY,
        *overrides,
    )
    assert code == 2
    assert expected in err


def test_ablation_compares_attention_maxpool_hard_and_transformer():
    task = get_task("text_classification")
    config = runner.resolve("movie_sentences")
    models = task.ablation_models(config)
    assert models == [
        "bigru_attention",
        "bigru_maxpool",
        "bigru_hard_attention",
        "transformer_classifier",
    ]
    # The experiment's model arguments suit every compared model.
    from experiments import ablate
    from experiments.config import apply_overrides

    for model in models:
        task.validate(apply_overrides(config, ablate.parse_model_spec(model)))


def test_unknown_task_options_are_user_errors(movie_dir):
    with pytest.raises(UserError, match="data.text_key is empty"):
        runner.run(_config(extra=["data.text_key= "]), data_dir=movie_dir)


def test_ablation_table_has_macro_f1_and_the_baseline():
    from experiments import ablate

    task = get_task("text_classification")
    runs = {
        "bigru_attention": [
            {
                "test_accuracy": 0.8,
                "test_macro_f1": 0.79,
                "baseline_tfidf_logreg": {"test_accuracy": 0.77},
            },
            {
                "test_accuracy": 0.7,
                "test_macro_f1": 0.69,
                "baseline_tfidf_logreg": {"test_accuracy": 0.77},
            },
        ]
    }
    notes = task.ablation_notes(runs)
    assert notes == [
        "Same-split reference: TF-IDF (word 1-2 grams) + logistic "
        "regression, test accuracy 0.7700."
    ]
    row = {
        "model": "bigru_attention",
        "num_parameters": 1234,
        "seeds": [0, 1],
        "test_accuracy_mean": 0.75,
        "test_accuracy_std": 0.0707,
        "test_accuracy_per_seed": [0.8, 0.7],
        "test_macro_f1_mean": 0.74,
        "test_macro_f1_std": 0.0707,
        "step_time_ms": None,
    }
    table = ablate.markdown_table(
        {
            "experiment": "movie_sentences",
            "epochs": 3,
            "metric": task.primary_metric,
            "secondary_metrics": list(task.secondary_metrics),
            "batch_size": None,
            "timing": {"rounds": 0, "steps_per_round": 2},
            "rows": [row],
            "notes": notes,
        }
    )
    assert "| test_macro_f1 (mean ± std) |" in table
    assert "| 0.7500 ± 0.0707 | 0.8000, 0.7000 | 0.7400 ± 0.0707 |" in table
    assert table.rstrip().endswith("test accuracy 0.7700.")
