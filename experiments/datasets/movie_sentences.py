"""TFDS builder: VADER's 10,568 movie-review sentences (Hutto & Gilbert 2014).

The sentences are Rotten Tomatoes snippets from Pang & Lee (2004) that Hutto
and Gilbert had rated by at least 20 people each, for the VADER paper. They
ship inside the `vaderSentiment==3.3.2` source archive (MIT licence) as
`additional_resources/hutto_ICWSM_2014.tar.gz` ->
`movieReviewSnippets_GroundTruth.txt` (lines `id TAB mean-score TAB text`,
10,605 lines). The 37 sentences with mean score exactly 0 are dropped; the
label is `score > 0`, which leaves 5,326 negative and 5,242 positive.

Split (fixed, seed 1234): stratified by label, 80/10/10 per class, so
train 8,455 / validation 1,057 / test 1,056 (rounded per class).

The archive is read, never downloaded: from `archive_path=` (constructor
argument, e.g. `tfds.builder("movie_sentences", archive_path=...)`) or from
TFDS's manual directory (`<data_dir>/downloads/manual/` by default). It may be
the pip source archive, the inner `hutto_ICWSM_2014.tar.gz`, or the extracted
`movieReviewSnippets_GroundTruth.txt`.
"""

import io
import logging
import os
import pathlib
import tarfile
import unicodedata

import numpy as np
import tensorflow_datasets as tfds

from experiments import offline_data

ARCHIVE_NAME = "vaderSentiment-3.3.2.tar.gz"
INNER_ARCHIVE_NAME = "hutto_ICWSM_2014.tar.gz"
GROUND_TRUTH_NAME = "movieReviewSnippets_GroundTruth.txt"
LABEL_NAMES = ("negative", "positive")
SPLIT_SEED = 1234
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}

_CITATION = r"""
@inproceedings{hutto2014vader,
  title = {{VADER}: A Parsimonious Rule-Based Model for Sentiment Analysis
           of Social Media Text},
  author = {Hutto, Clayton J. and Gilbert, Eric},
  booktitle = {Proceedings of the Eighth International AAAI Conference on
               Weblogs and Social Media (ICWSM-14)},
  year = {2014},
  pages = {216--225},
}
@inproceedings{pang2004sentimental,
  title = {A Sentimental Education: Sentiment Analysis Using Subjectivity
           Summarization Based on Minimum Cuts},
  author = {Pang, Bo and Lee, Lillian},
  booktitle = {Proceedings of the 42nd Annual Meeting of the Association for
               Computational Linguistics (ACL)},
  year = {2004},
  pages = {271--278},
}
"""

_DESCRIPTION = """\
10,568 movie-review sentences (Rotten Tomatoes snippets, Pang & Lee 2004)
with mean human sentiment ratings in [-4, 4] from the VADER paper (Hutto &
Gilbert 2014). Label: positive if the mean rating is > 0, negative if < 0;
sentences rated exactly 0 are dropped. Fixed stratified 80/10/10 split
(seed 1234). Text is kept as in the source (Pang & Lee tokenisation, e.g.
'' for quotes), decoded as UTF-8.
"""


# The one shell command that puts the archive in a directory.
fetch_command = offline_data.movie_sentences_fetch_command


def decode_line(raw):
    """Decodes one line of the ground-truth file.

    The file is UTF-8; a line that is not (a hand-edited copy saved as
    Windows-1252, say) falls back to cp1252, then to UTF-8 with U+FFFD
    replacement characters, so a stray byte never aborts the build.
    """
    for encoding in ("utf-8", "cp1252"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = raw.decode("utf-8", errors="replace")
    return unicodedata.normalize("NFC", text)


def parse_ground_truth(data):
    """Parses `id TAB mean-score TAB text` lines.

    Args:
        data: the file content as bytes.

    Returns:
        A list of `(id, score, text)` tuples in file order, sentences with
        score 0 or empty text dropped.

    Raises:
        ValueError: a line lacks three fields or a numeric id/score.
    """
    examples = []
    seen_ids = set()
    for line_number, raw in enumerate(data.splitlines(), start=1):
        line = decode_line(raw).strip("\r\n\ufeff")
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        try:
            if len(fields) != 3:
                raise ValueError("expected 3 tab-separated fields")
            sentence_id, score = int(fields[0]), float(fields[1])
        except ValueError as error:
            raise ValueError(
                f"{GROUND_TRUTH_NAME} line {line_number} is malformed "
                f"({error}). Received: {line[:80]!r}"
            ) from None
        text = " ".join(fields[2].split())
        if sentence_id in seen_ids:
            raise ValueError(
                f"{GROUND_TRUTH_NAME} repeats id {sentence_id} at line "
                f"{line_number}."
            )
        seen_ids.add(sentence_id)
        if score == 0 or not text:
            continue
        examples.append((sentence_id, score, text))
    return examples


def split_indices(labels, seed=SPLIT_SEED, fractions=None):
    """Stratified, seeded split of example positions.

    Args:
        labels: sequence of integer labels.
        seed: permutation seed.
        fractions: mapping split name -> fraction, in split order; the last
            split takes the remainder of each class.

    Returns:
        A dict split name -> sorted list of positions into `labels`.
    """
    fractions = fractions or SPLIT_FRACTIONS
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    names = list(fractions)
    result = {name: [] for name in names}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for i, name in enumerate(names):
            if i == len(names) - 1:
                stop = len(members)
            else:
                stop = start + int(round(fractions[name] * len(members)))
            result[name].extend(members[start:stop].tolist())
            start = stop
    return {name: sorted(positions) for name, positions in result.items()}


def _read_member(tar, suffix):
    for member in tar.getmembers():
        if member.isfile() and member.name.endswith(suffix):
            return tar.extractfile(member).read()
    return None


def read_ground_truth_bytes(path):
    """Returns the movie ground-truth file's bytes from `path`.

    `path` may be the vaderSentiment source archive, the inner
    `hutto_ICWSM_2014.tar.gz`, or the ground-truth text file itself.
    """
    path = pathlib.Path(path)
    if path.suffix == ".txt":
        return path.read_bytes()
    with tarfile.open(path, "r:*") as tar:
        data = _read_member(tar, GROUND_TRUTH_NAME)
        if data is not None:
            return data
        inner = _read_member(tar, INNER_ARCHIVE_NAME)
    if inner is not None:
        with tarfile.open(fileobj=io.BytesIO(inner), mode="r:*") as tar:
            data = _read_member(tar, GROUND_TRUTH_NAME)
        if data is not None:
            return data
    raise ValueError(
        f"{path} holds no {GROUND_TRUTH_NAME} (directly or inside "
        f"{INNER_ARCHIVE_NAME}); expected the vaderSentiment==3.3.2 source "
        "archive."
    )


class MovieSentences(tfds.core.GeneratorBasedBuilder):
    """VADER movie-review sentence polarity (10,568 sentences, 2 classes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: stratified 80/10/10 split, seed 1234.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Put the vaderSentiment 3.3.2 source archive ({ARCHIVE_NAME}) in the
    manual directory (default `<data_dir>/downloads/manual/`):

        {fetch_command("<manual_dir>")}

    or pass `archive_path=` to the builder
    (`tfds.builder("movie_sentences", archive_path=...)`).
    """

    def __init__(self, *, archive_path=None, **kwargs):
        super().__init__(**kwargs)
        self.archive_path = (
            None if archive_path is None else os.fspath(archive_path)
        )
        # Keep the argument when TFDS pickles the builder.
        self._original_state["archive_path"] = self.archive_path

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=LABEL_NAMES),
                    "id": tfds.features.Scalar(
                        dtype=np.int32,
                        doc="Sentence id in the ground-truth file.",
                    ),
                    "score": tfds.features.Scalar(
                        dtype=np.float32,
                        doc="Mean human rating in [-4, 4] (never 0).",
                    ),
                }
            ),
            supervised_keys=("text", "label"),
            homepage="https://github.com/cjhutto/vaderSentiment",
            citation=_CITATION,
            license="MIT",
        )

    def _find_archive(self, dl_manager):
        if self.archive_path is not None:
            if os.path.exists(self.archive_path):
                return self.archive_path
            raise FileNotFoundError(
                "movie_sentences: archive_path="
                f"{self.archive_path!r} does not exist. Fetch it with:\n  "
                + fetch_command(os.path.dirname(self.archive_path) or ".")
            )
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError:  # TFDS: manual dir missing or empty.
            manual_dir = None
        if manual_dir is not None:
            for name in (ARCHIVE_NAME, INNER_ARCHIVE_NAME, GROUND_TRUTH_NAME):
                if (manual_dir / name).exists():
                    return os.fspath(manual_dir / name)
        # The configured manual dir is only reachable through a private
        # attribute when it does not exist yet; the default is public.
        target = getattr(dl_manager, "_manual_dir", None) or (
            dl_manager.download_dir / "manual"
        )
        raise FileNotFoundError(
            f"movie_sentences needs {ARCHIVE_NAME} in the TFDS manual "
            f"directory {target}. Fetch it with:\n  {fetch_command(target)}\n"
            "(or give its path: --set data.archive_path=PATH on the command "
            "line, archive_path=... to the builder)."
        )

    def _split_generators(self, dl_manager):
        path = self._find_archive(dl_manager)
        examples = parse_ground_truth(read_ground_truth_bytes(path))
        labels = [int(score > 0) for _, score, _ in examples]
        logging.info(
            "movie_sentences: %d sentences from %s", len(examples), path
        )
        return {
            name: self._generate_examples([examples[i] for i in positions])
            for name, positions in split_indices(labels).items()
        }

    def _generate_examples(self, examples):
        for sentence_id, score, text in examples:
            yield (
                sentence_id,
                {
                    "text": text,
                    "label": int(score > 0),
                    "id": sentence_id,
                    "score": score,
                },
            )
