"""TFDS builder: German->English sentence pairs from the Ding dictionary.

Source: Debian's `trans-de-en` package (Frank Richter's Ding de-en
dictionary, GPL-2+), installed at `/usr/share/trans/de-en`. The data is read
where the package puts it and never copied into this repository.

Each dictionary line is `DE | DE ... :: EN | EN ...`: the `|`-separated
sub-entries of the two sides are aligned, and many entries end with example
sentences. Parsing, per aligned sub-entry pair: strip the annotations
`{...}` (gender, word class), `[...]` (register, domain), `(...)`
(explanations) and `<...>` (alternative spellings), take the first
`;`-separated alternative, normalise whitespace and space before
punctuation; keep the pair when both sides are full sentences (at least 4
words, ending in `.`, `?` or `!` -- but not in a placeholder such as `sth.`
or `etw.`, which marks a phrase template like "in consultation with sb.").
Slash alternatives inside a sentence ("little/no") are kept as written.

Deduplication and split: exact duplicate pairs are dropped; pairs that share
a German or an English sentence (compared case-insensitively) form one group,
and a whole group goes to one split, so no sentence of the test split is seen
in training. Groups are assigned by a seeded hash of the group's key (seed
1234): 80% train, 10% validation, 10% test. A hash rather than a permutation
keeps every pair in its split when a newer dictionary adds entries. With the
2023-01-30 dictionary (trans-de-en 1.9-6): 18,528 pairs, split 14,810 train /
1,888 validation / 1,830 test. Text is kept as written (the English side
mixes ’ and ' apostrophes; normalise in the tokeniser if needed).

Configs: `sentences` (the default) is the above. `sentences_and_phrases`
adds the dictionary's short phrase pairs (2-8 words on both sides, not
sentences: "Abholung der Waren am Bahnhof" / "collection of the goods from
the station") to the training split only: validation and test are the
same sentences, and no phrase is taken from a dictionary line that holds a
validation or test sentence, or equals one.

Usage: `tfds.builder("ding_de_en", data_dir=...)` reads the default path;
`tfds.builder("ding_de_en", data_dir=..., path="/elsewhere/de-en")` another
copy (only the location changes, so the prepared data is the same dataset).
"""

import collections
import logging
import os
import re

import tensorflow_datasets as tfds

from experiments import offline_data
from experiments.datasets import pair_splits

DEFAULT_PATH = "/usr/share/trans/de-en"
INSTALL_COMMAND = offline_data.DING_DE_EN_INSTALL_COMMAND
SPLIT_SEED = 1234
SPLIT_FRACTIONS = pair_splits.SPLIT_FRACTIONS
MIN_WORDS = 4
PHRASE_WORDS = (2, 8)

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:?!])")
_SENTENCE_END = (".", "?", "!")
# Ding's placeholders ("etw. mit jdm. besprechen", "to give sb. sth."): a
# phrase ending in one ends in "." without being a sentence.
_PLACEHOLDER_END = re.compile(r"(?:^|[\s/])(?:sth|sb|etw|jdn|jdm|jds|jd)\.$")

_CITATION = r"""
@misc{richter2023ding,
  title = {Ding: a dictionary lookup program; German-English dictionary},
  author = {Richter, Frank},
  year = {2023},
  howpublished = {\url{https://dict.tu-chemnitz.de/}},
  note = {Debian package trans-de-en},
}
"""

_DESCRIPTION = """\
German->English example-sentence pairs extracted from the Ding de-en
dictionary (Debian package trans-de-en, GPL-2+). Annotations in {}, [], ()
and <> are removed, the first ;-alternative is kept, and only pairs whose
sides are both full sentences (>= 4 words ending in . ? !, not in a
placeholder like sth. or etw.) are kept. Exact duplicates are dropped; pairs
sharing a German or English sentence stay in one split; split by a seeded
hash (80/10/10, seed 1234).
"""


def clean_phrase(text):
    """Strips Ding annotations and returns the first `;` alternative.

    Annotations are removed first, because some of them contain `;`.
    Nested brackets are removed from the inside out.
    """
    previous = None
    while previous != text:
        previous, text = text, _ANNOTATION.sub(" ", text)
    text = text.split(";")[0]
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


def is_sentence(text, min_words=MIN_WORDS):
    """True when `text` has `min_words` words and ends in `.`, `?` or `!`.

    A final `.` that belongs to a placeholder (`sth.`, `sb.`, `etw.`,
    `jdm.`, ...) does not count: such entries are phrase templates.
    """
    return (
        len(text.split()) >= min_words
        and text.endswith(_SENTENCE_END)
        and not _PLACEHOLDER_END.search(text)
    )


def aligned_entries(line):
    """The cleaned `(de, en)` sub-entry pairs of one dictionary line.

    Comment lines (`#`), lines without exactly one ` :: `, and lines whose
    two sides have different numbers of ` | ` sub-entries yield nothing.
    """
    line = line.strip()
    if not line or line.startswith("#"):
        return []
    sides = line.split(" :: ")
    if len(sides) != 2:
        return []
    german, english = (side.split(" | ") for side in sides)
    if len(german) != len(english):
        return []
    return [
        (clean_phrase(de), clean_phrase(en)) for de, en in zip(german, english)
    ]


def parse_line(line, min_words=MIN_WORDS):
    """Returns the `(de, en)` sentence pairs of one dictionary line."""
    return [
        (de, en)
        for de, en in aligned_entries(line)
        if is_sentence(de, min_words) and is_sentence(en, min_words)
    ]


def is_phrase(text, words=PHRASE_WORDS):
    """True for a short phrase: `words[0]`..`words[1]` words, no sentence."""
    return words[0] <= len(text.split()) <= words[1] and not is_sentence(text)


def read_phrases(path, held_out):
    """Phrase pairs of the lines that hold no `held_out` sentence.

    Args:
        path: the dictionary file.
        held_out: `(de, en)` sentence pairs of validation and test.

    Returns:
        Unique `(de, en)` phrase pairs (file order), none equal to a
        held-out sentence (case-insensitively) or taken from a line that
        contains one.
    """
    held = {_key(text) for pair in held_out for text in pair}
    phrases = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            entries = aligned_entries(line)
            if any(_key(t) in held for pair in entries for t in pair):
                continue
            for de, en in entries:
                if is_phrase(de) and is_phrase(en):
                    phrases.setdefault((de, en), None)
    return list(phrases)


def read_source_version(path):
    """Returns the `# Version :: ...` header value, or "unknown"."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.startswith("#"):
                break
            if line.startswith("# Version ::"):
                return line.split("::", 1)[1].strip()
    return "unknown"


def read_pairs(path, min_words=MIN_WORDS):
    """Parses the dictionary file; returns unique pairs in file order."""
    pairs = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            for pair in parse_line(line, min_words):
                pairs.setdefault(pair, None)
    return list(pairs)


def _key(text):
    return " ".join(text.casefold().split())


def group_pairs(pairs):
    """Groups pairs connected by a shared German or English sentence.

    Returns:
        A list parallel to `pairs` with each pair's group key: the smallest
        German key of its group, so it does not depend on pair order.
    """
    groups = pair_splits.UnionFind()
    for de, en in pairs:
        groups.union(("de", _key(de)), ("en", _key(en)))
    members = collections.defaultdict(list)
    for de, _ in pairs:
        members[groups.find(("de", _key(de)))].append(_key(de))
    smallest = {root: min(keys) for root, keys in members.items()}
    return [smallest[groups.find(("de", _key(de)))] for de, _ in pairs]


def assign_split(group_key, seed=SPLIT_SEED, fractions=None):
    """Maps a group key to a split name by a seeded hash (the corpus's
    seed by default; see `pair_splits.assign_split`)."""
    return pair_splits.assign_split(group_key, seed, fractions)


def split_pairs(pairs, seed=SPLIT_SEED):
    """Returns a dict split name -> list of pairs (in input order)."""
    splits = {name: [] for name in SPLIT_FRACTIONS}
    for pair, group in zip(pairs, group_pairs(pairs)):
        splits[assign_split(group, seed)].append(pair)
    return splits


def missing_source_message(path):
    return (
        f"ding_de_en needs the Ding German-English dictionary at {path}, "
        "which does not exist. Install it with:\n"
        f"  {INSTALL_COMMAND}\n"
        "(or pass path=... to the builder, e.g. "
        'tfds.builder("ding_de_en", path="/somewhere/de-en")).'
    )


class DingDeEn(tfds.core.GeneratorBasedBuilder):
    """German->English example sentences from the Ding dictionary."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: grouped 80/10/10 hash split, seed 1234.",
        "1.1.0": "Configs: `sentences` (as 1.0.0) and "
        "`sentences_and_phrases` (short phrase pairs added to train).",
    }
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(
            name="sentences",
            description="Full-sentence pairs only (all splits).",
        ),
        tfds.core.BuilderConfig(
            name="sentences_and_phrases",
            description="Training split plus the dictionary's 2-8-word "
            "phrase pairs; validation and test unchanged.",
        ),
    ]

    def __init__(self, *, path=None, **kwargs):
        super().__init__(**kwargs)
        self.path = os.fspath(path) if path is not None else DEFAULT_PATH
        # Keep the argument when TFDS pickles the builder.
        self._original_state["path"] = path

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.Translation(languages=("de", "en")),
            supervised_keys=("de", "en"),
            homepage="https://dict.tu-chemnitz.de/",
            citation=_CITATION,
            license="GPL-2.0-or-later",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The data is a local file; nothing is downloaded.
        if not os.path.isfile(self.path):
            raise FileNotFoundError(missing_source_message(self.path))
        pairs = read_pairs(self.path)
        if not pairs:
            raise ValueError(
                f"ding_de_en found no sentence pairs in {self.path}; expected "
                "Ding lines 'DE | DE :: EN | EN'."
            )
        version = read_source_version(self.path)
        self.info.metadata["source_path"] = self.path
        self.info.metadata["source_version"] = version
        splits = split_pairs(pairs)
        if self.builder_config.name == "sentences_and_phrases":
            phrases = read_phrases(
                self.path, splits["validation"] + splits["test"]
            )
            self.info.metadata["phrase_pairs"] = len(phrases)
            splits["train"] = splits["train"] + phrases
        logging.info(
            "ding_de_en: %s (version %s): %s",
            self.path,
            version,
            {name: len(split) for name, split in splits.items()},
        )
        return {
            name: self._generate_examples(split)
            for name, split in splits.items()
        }

    def _generate_examples(self, pairs):
        for index, (de, en) in enumerate(pairs):
            yield index, {"de": de, "en": en}
