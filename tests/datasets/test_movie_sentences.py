"""Tests for the movie_sentences TFDS builder (synthetic and real archive)."""

import io
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

import experiments.datasets  # noqa: F401  (registers the builders)
from experiments.datasets import movie_sentences

REAL_ARCHIVE = os.environ.get(
    "VADER_ARCHIVE", "/tmp/vader/vaderSentiment-3.3.2.tar.gz"
)


def _tar_bytes(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _synthetic_rows(count=80, seed=0):
    """Rows (id, score, text bytes) with zeros and non-ASCII text."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, count + 1):
        score = float(np.round(rng.uniform(-3, 3), 3))
        if i % 10 == 0:
            score = 0.0
        rows.append((i, score, f"Sentence number {i} is ok .".encode()))
    # Non-ASCII: proper UTF-8, a cp1252 line and an undecodable byte.
    rows[0] = (1, 2.5, "A café scene with Amélie .".encode())
    rows[1] = (2, -1.5, b"\x93Quoted\x94 in Windows-1252 .")
    rows[2] = (3, 1.25, b"Broken \x81 byte .")
    return rows


def _ground_truth(rows):
    return b"".join(
        f"{i}\t{score}\t".encode() + text + b"\r\n" for i, score, text in rows
    )


def write_synthetic_archive(directory, rows):
    """Writes a vaderSentiment-3.3.2.tar.gz with the real layout."""
    inner = _tar_bytes(
        {
            # Other domains first: the builder must pick the movie file.
            "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"1\t1.0\tnot me\r\n",
            "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": (
                _ground_truth(rows)
            ),
            "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt": (
                b"1\t-1.0\tnor me\r\n"
            ),
        }
    )
    outer = _tar_bytes(
        {
            "vaderSentiment-3.3.2/setup.py": b"",
            "vaderSentiment-3.3.2/additional_resources/"
            "hutto_ICWSM_2014.tar.gz": inner,
        }
    )
    path = pathlib.Path(directory) / movie_sentences.ARCHIVE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(outer)
    return path


def _read_all(builder):
    return {
        split: list(tfds.as_numpy(builder.as_dataset(split=split)))
        for split in ("train", "validation", "test")
    }


def test_parse_ground_truth_drops_zero_and_decodes_bytes():
    rows = _synthetic_rows()
    examples = movie_sentences.parse_ground_truth(_ground_truth(rows))
    expected_ids = [i for i, score, _ in rows if score != 0]
    assert [e[0] for e in examples] == expected_ids
    texts = {i: text for i, _, text in examples}
    assert texts[1] == "A café scene with Amélie ."
    assert texts[2] == "\u201cQuoted\u201d in Windows-1252 ."
    assert texts[3] == "Broken \ufffd byte ."
    assert all(not text.endswith("\r") for text in texts.values())


def test_parse_ground_truth_rejects_malformed_lines():
    with pytest.raises(ValueError, match="line 2 is malformed"):
        movie_sentences.parse_ground_truth(b"1\t1.0\tgood\n2\tbad score\n")
    with pytest.raises(ValueError, match="repeats id 1"):
        movie_sentences.parse_ground_truth(b"1\t1.0\ta\n1\t-1.0\tb\n")


def test_split_indices_is_stratified_seeded_and_complete():
    labels = np.array([0] * 53 + [1] * 47)
    first = movie_sentences.split_indices(labels)
    assert first == movie_sentences.split_indices(labels)
    assert first != movie_sentences.split_indices(labels, seed=7)
    everything = sorted(sum(first.values(), []))
    assert everything == list(range(100))
    for split, fraction in movie_sentences.SPLIT_FRACTIONS.items():
        for label, count in ((0, 53), (1, 47)):
            got = int(np.sum(labels[first[split]] == label))
            assert abs(got - fraction * count) <= 1


def test_builds_from_manual_dir(tmp_path):
    rows = _synthetic_rows()
    manual = tmp_path / "manual"
    write_synthetic_archive(manual, rows)
    builder = tfds.builder("movie_sentences", data_dir=tmp_path / "data")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual)
    )
    splits = _read_all(builder)
    kept = {i: score for i, score, _ in rows if score != 0}
    sizes = {split: len(examples) for split, examples in splits.items()}
    assert sum(sizes.values()) == len(kept) == 72
    assert sizes["test"] >= 6 and sizes["validation"] >= 6
    seen = []
    for examples in splits.values():
        for example in examples:
            seen.append(int(example["id"]))
            score = kept[int(example["id"])]
            assert example["label"] == int(score > 0)
            assert example["score"] == pytest.approx(score)
    assert sorted(seen) == sorted(kept)
    texts = {
        int(e["id"]): e["text"].decode("utf-8")
        for examples in splits.values()
        for e in examples
    }
    assert texts[1] == "A café scene with Amélie ."
    assert builder.info.features["label"].names == ["negative", "positive"]
    assert builder.info.supervised_keys == ("text", "label")


def test_archive_path_argument_and_tfds_load(tmp_path):
    rows = _synthetic_rows()
    archive = write_synthetic_archive(tmp_path / "src", rows)
    train = tfds.load(
        "movie_sentences",
        split="train",
        data_dir=tmp_path / "data",
        builder_kwargs={"archive_path": archive},
        as_supervised=True,
    )
    text, label = next(iter(train))
    assert text.dtype.name == "string" and label.dtype.name == "int64"
    examples = movie_sentences.parse_ground_truth(_ground_truth(rows))
    labels = [int(score > 0) for _, score, _ in examples]
    expected = movie_sentences.split_indices(labels)["train"]
    assert sum(1 for _ in train) == len(expected)


def test_missing_archive_names_the_fetch_command(tmp_path):
    builder = tfds.builder("movie_sentences", data_dir=tmp_path)
    fix = "pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d"
    with pytest.raises(FileNotFoundError, match=fix) as error:
        builder.download_and_prepare()
    assert str(tmp_path / "downloads" / "manual") in str(error.value)
    missing = tfds.builder(
        "movie_sentences",
        data_dir=tmp_path,
        archive_path=tmp_path / "nowhere" / "vader.tar.gz",
    )
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        missing.download_and_prepare()
    assert fix in str(error.value)


def test_archive_without_ground_truth_is_rejected(tmp_path):
    path = tmp_path / movie_sentences.ARCHIVE_NAME
    path.write_bytes(_tar_bytes({"vaderSentiment-3.3.2/setup.py": b""}))
    with pytest.raises(ValueError, match="holds no movieReviewSnippets"):
        movie_sentences.read_ground_truth_bytes(path)


def _real_archive(tmp_path):
    if os.path.exists(REAL_ARCHIVE):
        return REAL_ARCHIVE
    command = movie_sentences.fetch_command(tmp_path).split()
    command[0:1] = [sys.executable]
    subprocess.run(command, check=True)
    return tmp_path / movie_sentences.ARCHIVE_NAME


@pytest.mark.slow
def test_real_archive_split_sizes(tmp_path):
    builder = tfds.builder(
        "movie_sentences",
        data_dir=tmp_path / "data",
        archive_path=_real_archive(tmp_path),
    )
    builder.download_and_prepare()
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sizes == {"train": 8455, "validation": 1057, "test": 1056}
    splits = _read_all(builder)
    labels = np.concatenate(
        [[e["label"] for e in examples] for examples in splits.values()]
    )
    assert np.bincount(labels).tolist() == [5326, 5242]
    texts = [e["text"].decode() for ex in splits.values() for e in ex]
    assert not any("\ufffd" in text for text in texts)
    assert any("é" in text for text in texts)
