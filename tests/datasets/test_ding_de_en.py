"""Tests for the ding_de_en TFDS builder: line parser, split, builds."""

import os

import pytest
import tensorflow_datasets as tfds

import experiments.datasets  # noqa: F401  (registers the builders)
from experiments.datasets import ding_de_en

REAL_PATH = ding_de_en.DEFAULT_PATH


def test_parse_line_strips_annotations_and_takes_first_alternative():
    line = (
        "gelten als {vi} | Er gilt als sehr reich.; Er soll sehr reich sein."
        " :: to be reputed | He is reputed to be very rich."
    )
    assert ding_de_en.parse_line(line) == [
        ("Er gilt als sehr reich.", "He is reputed to be very rich.")
    ]
    line = (
        "Kino {n} | Das Buch wird für das Kino (ugs.) verfilmt. | "
        "Wie wär’s mit einem Kinoabend [ugs.]? :: cinema | The book is being "
        "adapted for the {hum.} silver screen. | Fancy a night at the "
        "flicks? [Br.] <flix>"
    )
    assert ding_de_en.parse_line(line) == [
        (
            "Das Buch wird für das Kino verfilmt.",
            "The book is being adapted for the silver screen.",
        ),
        ("Wie wär’s mit einem Kinoabend?", "Fancy a night at the flicks?"),
    ]


def test_parse_line_handles_nested_and_semicolon_annotations():
    line = (
        "Er kam (spät (sehr spät); zu spät) nach Hause. :: "
        "He came home (late; very late) at last."
    )
    assert ding_de_en.parse_line(line) == [
        ("Er kam nach Hause.", "He came home at last.")
    ]


@pytest.mark.parametrize(
    "line",
    [
        "# Version :: devel 2023-01-30",
        "",
        "Aal {m} :: eel",
        "Komm her. :: Come here.",  # Fewer than 4 words.
        "Das ist ein Haus :: This is a house",  # No sentence end.
        "Das ist ein Haus. | Das ist gut. :: This is a house.",  # Unaligned.
        "Das ist ein Haus. :: This is a house. :: extra",
        "Eins. Zwei. Drei. Vier. | Das Haus ist groß. :: One | It is big",
        # Phrase templates ending in a placeholder abbreviation.
        "in Absprache mit jdm. :: in consultation with sb.",
        "auf dem gleichen Niveau sein wie jd./etw. :: to be on a par with "
        "sb./sth.",
    ],
)
def test_parse_line_rejects_non_sentences(line):
    assert ding_de_en.parse_line(line) == []


def test_clean_phrase_and_is_sentence():
    assert ding_de_en.clean_phrase("  a  {n}  b [Br.] ( c ) . ") == "a b."
    assert ding_de_en.is_sentence("Wo ist der Bahnhof?")
    assert ding_de_en.is_sentence("Das ist sehr gut!")
    assert not ding_de_en.is_sentence("Wo ist es?")
    assert ding_de_en.is_sentence("Wo ist es?", min_words=3)
    assert not ding_de_en.is_sentence("die strenge Auslegung von etw.")
    assert ding_de_en.is_sentence("Er gab mir etw. zu essen.")


def test_groups_keep_shared_sentences_in_one_split():
    pairs = [
        ("Ich habe Hunger, sagt er.", "I am hungry, he says."),
        ("Ich bin hungrig, sagt er.", "I am hungry, he says."),
        ("ich bin hungrig, sagt  er.", "I'm starving, he says."),
        ("Das Wetter ist heute schön.", "The weather is nice today."),
    ]
    groups = ding_de_en.group_pairs(pairs)
    assert groups[0] == groups[1] == groups[2] != groups[3]
    assert groups == ding_de_en.group_pairs(pairs[::-1])[::-1]
    splits = ding_de_en.split_pairs(pairs)
    assert sorted(sum(splits.values(), [])) == sorted(pairs)
    assert sum(pairs[0] in split for split in splits.values()) == 1
    owner = next(s for s in splits.values() if pairs[0] in s)
    assert pairs[1] in owner and pairs[2] in owner


def test_assign_split_is_seeded_and_follows_fractions():
    keys = [f"satz {i}" for i in range(4000)]
    first = [ding_de_en.assign_split(key) for key in keys]
    assert first == [ding_de_en.assign_split(key) for key in keys]
    assert first != [ding_de_en.assign_split(key, seed=7) for key in keys]
    for name, fraction in ding_de_en.SPLIT_FRACTIONS.items():
        assert abs(first.count(name) / len(keys) - fraction) < 0.025


def _write_synthetic_dictionary(path, count=60):
    lines = ["# Version :: test 2024-01-01", "# License :: GPL"]
    for i in range(count):
        lines.append(
            f"Haus {{n}} [arch.] | Das ist Haus Nummer {i}.; Variante. :: "
            f"house | This is house number {i} (building)."
        )
    lines.append("Aal {m} :: eel")
    # An exact duplicate of an earlier pair is dropped.
    lines.append("Das ist Haus Nummer 0. :: This is house number 0.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_builds_from_tiny_file_and_loads(tmp_path):
    source = _write_synthetic_dictionary(tmp_path / "de-en")
    builder = tfds.builder(
        "ding_de_en", data_dir=tmp_path / "data", path=source
    )
    builder.download_and_prepare()
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sum(sizes.values()) == 60
    assert set(sizes) == {"train", "validation", "test"}
    assert builder.info.metadata["source_version"] == "test 2024-01-01"
    seen = set()
    for split in sizes:
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            de, en = example["de"].decode(), example["en"].decode()
            number = de.split()[-1].rstrip(".")
            assert de == f"Das ist Haus Nummer {number}."
            assert en == f"This is house number {number}."
            seen.add(int(number))
    assert seen == set(range(60))
    test = tfds.load(
        "ding_de_en",
        split="test",
        data_dir=tmp_path / "data",
        builder_kwargs={"path": source},
        as_supervised=True,
    )
    de, en = next(iter(test))
    assert de.dtype.name == en.dtype.name == "string"


def test_missing_file_names_the_apt_command(tmp_path):
    builder = tfds.builder(
        "ding_de_en", data_dir=tmp_path, path=tmp_path / "no-such-file"
    )
    with pytest.raises(FileNotFoundError, match="apt-get install trans-de-en"):
        builder.download_and_prepare()


def test_file_without_pairs_is_rejected(tmp_path):
    source = tmp_path / "de-en"
    source.write_text("Aal {m} :: eel\n", encoding="utf-8")
    builder = tfds.builder("ding_de_en", data_dir=tmp_path, path=source)
    with pytest.raises(ValueError, match="found no sentence pairs"):
        builder.download_and_prepare()


@pytest.mark.slow
def test_real_dictionary_split_sizes(tmp_path):
    assert os.path.isfile(REAL_PATH), ding_de_en.missing_source_message(
        REAL_PATH
    )
    builder = tfds.builder("ding_de_en", data_dir=tmp_path)
    builder.download_and_prepare()
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sizes["test"] >= 1000 and sizes["validation"] >= 1000
    assert 15_000 <= sum(sizes.values()) <= 25_000
    sentences = {
        split: {
            (e["de"].decode().casefold(), e["en"].decode().casefold())
            for e in tfds.as_numpy(builder.as_dataset(split=split))
        }
        for split in sizes
    }
    for split, pairs in sentences.items():
        assert len(pairs) == sizes[split]  # No duplicates within a split.
    train_de = {de for de, _ in sentences["train"]}
    train_en = {en for _, en in sentences["train"]}
    for de, en in sentences["test"]:
        assert de not in train_de and en not in train_en


def test_phrases_skip_lines_holding_held_out_sentences(tmp_path):
    source = tmp_path / "de-en"
    source.write_text(
        "gelten als {vi} | Er gilt als sehr reich. :: to be reputed | "
        "He is reputed to be very rich.\n"
        "Abholung {f} | Abholung der Waren am Bahnhof :: collection | "
        "collection of the goods from the station\n",
        encoding="utf-8",
    )
    held_out = [("Er gilt als sehr reich.", "He is reputed to be very rich.")]
    assert ding_de_en.read_phrases(source, held_out) == [
        (
            "Abholung der Waren am Bahnhof",
            "collection of the goods from the station",
        )
    ]
    assert len(ding_de_en.read_phrases(source, [])) == 2
