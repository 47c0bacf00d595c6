"""`python -m experiments predict` on tiny finished runs of every task:
what it prints, the figures it writes, and its one-line refusals (exit 2)
of missing, unfinished or damaged runs, unreadable images and options
that do not fit the run's task. (Translation: tests/experiments/
test_translation.py.)"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from experiments import runner
from experiments.cli import main
from tests.datasets.test_movie_sentences import write_synthetic_archive
from tests.experiments.conftest import EAGER
from tests.experiments.conftest import tiny_config

pytestmark = pytest.mark.tf_only


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _refusal(capsys, *argv):
    """The one-line error of a refused command (exit status 2)."""
    code, _, err = _cli(capsys, *argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def _write_png(path, image):
    tf.io.write_file(str(path), tf.io.encode_png(np.asarray(image, "uint8")))
    return str(path)


# === Text classification ===


def _review_rows(count=64, seed=0):
    """`(id, score, text)` rows whose polarity words carry the label."""
    rng = np.random.default_rng(seed)
    words = {True: ["good", "fun", "great"], False: ["bad", "dull", "awful"]}
    fillers = ["film", "plot", "the", "cast", "a"]
    rows = []
    for i in range(1, count + 1):
        positive = i % 2 == 0
        text = list(rng.choice(fillers, 3)) + list(
            rng.choice(words[positive], 2)
        )
        rng.shuffle(text)
        score = 1.5 if positive else -1.5
        rows.append((i, score, (" ".join(text) + " .").encode()))
    return rows


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A finished movie_sentences Transformer run (a few eager steps)."""
    data_dir = tmp_path_factory.mktemp("text_tfds")
    write_synthetic_archive(data_dir / "downloads" / "manual", _review_rows())
    config = runner.resolve(
        "movie_sentences_transformer_classifier",
        [
            "data.batch_size=16",
            "model.embedding_dim=8",
            "model.num_heads=2",
            "model.ff_dim=8",
            "model.num_layers=1",
            "model.sequence_length=12",
            "eval.attention_maps=0",
            "eval.baseline=false",
            "eval.plots=false",
            *EAGER,
        ],
        epochs=1,
    )
    out = str(tmp_path_factory.mktemp("text_run") / "run")
    runner.run(config, name="text", out=out, data_dir=str(data_dir), verbose=0)
    return out


def test_text_prints_label_probabilities_and_word_weights(
    text_run, capsys, tmp_path
):
    plot = tmp_path / "figures" / "words.png"
    code, printed, _ = _cli(
        capsys,
        "predict",
        text_run,
        "a good fun film",
        "dull and awful",
        "--plot",
        plot,
        "--top",
        "2",
    )
    assert code == 0, printed
    blocks = printed.strip().split("\n\n")
    assert blocks[0].startswith("text:           a good fun film")
    for block in blocks[:2]:
        label = block.split("label:")[1].split()[0]
        assert label in ("positive", "negative")
        probabilities = block.split("probabilities:  ")[1].splitlines()[0]
        # Both classes, most probable first, summing to one.
        names = [p.split()[0] for p in probabilities.split(", ")]
        values = [float(p.split()[1]) for p in probabilities.split(", ")]
        assert names[0] == label and sorted(names) == ["negative", "positive"]
        assert values == sorted(values, reverse=True)
        assert abs(sum(values) - 1) < 2e-3
        words = block.split("attended words: ")[1].splitlines()[0]
        assert len(words.split(", ")) == 2
    first = blocks[0].split("attended words: ")[1].splitlines()[0]
    assert all(w.split()[0] in "a good fun film" for w in first.split(", "))
    assert plot.stat().st_size > 0 and f"word attention: {plot}" in printed


def test_text_refuses_search_and_bad_top(text_run, capsys):
    err = _refusal(capsys, "predict", text_run, "fine", "--search", "beam")
    assert "--search applies to translation and captioning" in err
    err = _refusal(capsys, "predict", text_run, "fine", "--top", "0")
    assert "Received: --top=0" in err


# === Image classification ===


@pytest.fixture(scope="module")
def image_run(digits_dir, tmp_path_factory):
    """A finished digits CBAM-ResNet run (one eager epoch, 64 images)."""
    out = str(tmp_path_factory.mktemp("image_run") / "run")
    config = tiny_config("digits_cbam_resnet20", [*EAGER, "eval.plots=false"])
    runner.run(config, name="image", out=out, data_dir=digits_dir, verbose=0)
    return out


def test_image_prints_label_and_top_classes(image_run, capsys, tmp_path):
    rng = np.random.default_rng(0)
    small = _write_png(tmp_path / "digit.png", rng.integers(0, 256, (8, 8, 1)))
    # A larger colour JPEG: converted to grey, resized to 8x8.
    large = str(tmp_path / "photo.jpg")
    tf.io.write_file(
        large,
        tf.io.encode_jpeg(rng.integers(0, 256, (20, 16, 3)).astype("uint8")),
    )
    plot = tmp_path / "maps.png"
    code, printed, _ = _cli(
        capsys, "predict", image_run, small, large, "--plot", plot
    )
    assert code == 0, printed
    blocks = printed.strip().split("\n\n")
    assert blocks[0].startswith(f"image:   {small} (8x8)")
    assert blocks[1].startswith(f"image:   {large} (16x20, resized to 8x8)")
    for block in blocks[:2]:
        label = block.split("label:")[1].split()[0]
        classes = block.split("classes: ")[1].splitlines()[0].split(", ")
        assert len(classes) == 5 and classes[0].split()[0] == label
        values = [float(c.split()[1]) for c in classes]
        assert values == sorted(values, reverse=True)
    assert "attention maps (CBAM spatial" in printed
    assert plot.stat().st_size > 0


def test_image_refuses_unreadable_and_missing_images(
    image_run, capsys, tmp_path
):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    err = _refusal(capsys, "predict", image_run, text)
    assert f"Cannot read the image {str(text)!r}" in err
    err = _refusal(capsys, "predict", image_run, tmp_path / "absent.png")
    assert "No image file" in err


# === Refused runs (any task) ===


def test_missing_unfinished_damaged_and_unknown_runs_are_refused(
    image_run, capsys, tmp_path
):
    err = _refusal(capsys, "predict", tmp_path / "nowhere", "x")
    assert "No run folder" in err
    err = _refusal(capsys, "predict", tmp_path, "x")
    assert "not a run folder (no config.json)" in err
    copy = tmp_path / "copy"
    shutil.copytree(image_run, copy)
    os.remove(copy / "metrics.json")
    err = _refusal(capsys, "predict", copy, "x.png")
    assert "did not finish" in err
    shutil.copy(os.path.join(image_run, "metrics.json"), copy)
    variables = copy / "saved_model" / "1" / "variables"
    with open(variables / os.listdir(variables)[0], "ab") as f:
        f.write(b"\0")
    err = _refusal(capsys, "predict", copy, "x.png")
    assert "saved_model/1 differs from its recorded SHA-256" in err
    config = json.loads((copy / "config.json").read_text())
    config["task"] = "speech_recognition"
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps(config))
    (unknown / "metrics.json").write_text("{}")
    err = _refusal(capsys, "predict", unknown, "x")
    assert "this run's task is 'speech_recognition'" in err


# === Image captioning ===


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory):
    """A finished digit-scenes Show, Attend and Tell run (a few eager
    steps of a tiny model on `digit_scenes/tiny`)."""
    out = str(tmp_path_factory.mktemp("caption_run") / "run")
    config = runner.resolve(
        "digit_scenes_soft",
        [
            "data.name=digit_scenes/tiny",
            "data.max_train_examples=32",
            "data.batch_size=16",
            "data.max_eval_examples=4",
            "model.units=8",
            "model.embedding_dim=8",
            "model.attention_units=8",
            "model.encoder_filters=[4,4,4]",
            "eval.attention_maps=0",
            "eval.samples=0",
            "eval.beam_width=2",
            "eval.plots=false",
            *EAGER,
        ],
        epochs=1,
    )
    data_dir = str(tmp_path_factory.mktemp("caption_tfds"))
    runner.run(config, name="caption", out=out, data_dir=data_dir, verbose=0)
    return out


def test_caption_prints_words_and_draws_their_attention(
    caption_run, capsys, tmp_path
):
    rng = np.random.default_rng(0)
    grey = _write_png(tmp_path / "scene.png", rng.integers(0, 256, (48, 48, 1)))
    colour = _write_png(
        tmp_path / "photo.png", rng.integers(0, 256, (30, 40, 4))
    )
    plot = tmp_path / "caption.png"
    code, printed, _ = _cli(
        capsys, "predict", caption_run, grey, colour, "--plot", plot
    )
    assert code == 0, printed
    blocks = printed.strip().split("\n\n")
    assert blocks[0].startswith(f"image:   {grey}\ncaption: ")
    assert "(beam search)" in blocks[0] and "(beam search)" in blocks[1]
    for block in blocks[:2]:
        lines = block.splitlines()
        caption = lines[1].removeprefix("caption: ").split("  (")[0]
        looked = [line.split()[0] for line in lines[2:]]
        # One line per word (then "[END]" if the model stopped early), each
        # naming a cell of the 6x6 grid of the 48x48 scene model.
        assert looked[: len(caption.split())] == caption.split()
        assert all(" of 6x6 (" in line for line in lines[2:])
    for name in ("caption_1.png", "caption_2.png"):
        assert (tmp_path / name).stat().st_size > 0
    code, printed, _ = _cli(
        capsys, "predict", caption_run, grey, "--search", "greedy"
    )
    assert code == 0 and "(greedy search)" in printed
