"""Tests for the gettext_de_en TFDS builder: catalog reading, cleaning,
template-aware grouping, leak measurement, missing packages."""

import random
import subprocess

import pytest
import tensorflow_datasets as tfds

import experiments.datasets  # noqa: F401  (registers the builders)
from experiments.datasets import gettext_de_en as gettext
from experiments.datasets import pair_splits

PO = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgctxt "menu"
msgid "_Open File"
msgstr "Datei ö_ffnen"

msgid "Deleted %d file"
msgid_plural "Deleted %d files"
msgstr[0] "%d Datei gelöscht"
msgstr[1] "%d Dateien gelöscht"

msgid "Untranslated"
msgstr ""
"""


def test_read_mo_keeps_context_and_plurals(tmp_path):
    po = tmp_path / "de.po"
    po.write_text(PO, encoding="utf-8")
    mo = tmp_path / "de.mo"
    subprocess.run(["msgfmt", "-o", str(mo), str(po)], check=True)
    entries = dict(gettext.read_mo(str(mo)))
    assert entries["menu\x04_Open File"] == "Datei ö_ffnen"
    plural = entries["Deleted %d file\x00Deleted %d files"]
    assert plural == "%d Datei gelöscht\x00%d Dateien gelöscht"
    pairs = {gettext.clean_pair(k, v) for k, v in entries.items()}
    assert pairs == {
        None,  # the header
        ("Datei öffnen", "Open File"),
        ("Datei gelöscht", "Deleted file"),
    }


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Save _As…", "Save As..."),
        ("~Datei speichern", "Datei speichern"),
        ("&Save &amp; close", "Save & close"),
        ("<b>Bold</b> text with <span foreground='red'>red</span>", None),
        ("Could not open “%s”: %s", "Could not open"),
        ("Copy %1$s to %2$s?", "Copy to?"),
        ("%(count)d items in {folder}", "items in"),
        ("%PRODUCTNAME Writer", "Writer"),
        ("Use --force to overwrite", None),
        ("See https://example.org", None),
        ("First line\nsecond line", None),
        ("%s", None),
        ("1234", None),
    ],
)
def test_clean_message(raw, clean):
    if clean is None and raw.startswith("<b>"):
        clean = "Bold text with red"
    assert gettext.clean_message(raw) == clean


def test_context_prefixes_and_untranslated_entries():
    assert gettext.strip_context("Column|Width", "Breite") == (
        "Width",
        "Breite",
    )
    assert gettext.clean_pair("OK", "OK") is None  # untranslated
    assert gettext.clean_pair("Name", "") is None


def test_template_key_ignores_numbers_case_and_punctuation():
    assert gettext.template_key("Heading 8.") == gettext.template_key(
        "heading 10"
    )


def _corpus():
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.sample(letters, 5)) for _ in range(300)]
    pairs = []
    for _ in range(400):
        en = " ".join(rng.sample(words, 6))
        pairs.append((f"de {en}", en))
        # A near-duplicate template: one word changed.
        pairs.append((f"de {en} x", en.rsplit(" ", 1)[0] + " changed"))
    pairs += [("Speichern", "Save"), ("Spalten", "Columns")]
    return pairs


def test_near_duplicates_and_short_labels_stay_in_one_split():
    pairs = _corpus()
    splits, groups = gettext.split_pairs(pairs)
    where = {}
    for name, indices in splits.items():
        for index in indices:
            where[index] = name
    for index in range(0, 800, 2):
        assert where[index] == where[index + 1]
        assert groups[index] == groups[index + 1]
    assert where[800] == where[801] == "train"
    assert len(splits["test"]) > 0 and len(splits["validation"]) > 0


def test_near_duplicates_that_blocking_misses_stay_in_one_split():
    # Two edits in the first letters of the first and last words: no
    # shared blocking key (word pairs, one-word edits, word prefixes),
    # character similarity still above 0.8. The exhaustive search of the
    # held-out splits joins them.
    rng = random.Random(2)
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = []
    for _ in range(300):
        first, middle, last = (
            "".join(rng.choices(letters, k=8)) for _ in range(3)
        )
        en = f"{first} {middle} {last}"
        twin = f"{rng.choice(letters)}{first[1:]} {middle} z{last[1:]}"
        pairs += [(f"de {en}", en), (f"de {twin}", twin)]
    english = [en for _, en in pairs]
    near = pair_splits.near_duplicate_groups(english)
    missed = sum(near[i] != near[i + 1] for i in range(0, len(pairs), 2))
    assert missed > 250  # blocking alone leaves them apart
    splits, _ = gettext.split_pairs(pairs)
    where = {i: name for name, indices in splits.items() for i in indices}
    for index in range(0, len(pairs), 2):
        # Training or held out together (validation and test are both
        # held out).
        assert (where[index] == "train") == (where[index + 1] == "train")
    held_out = [english[i] for i in splits["validation"] + splits["test"]]
    train = [english[i] for i in splits["train"]]
    assert held_out
    assert pair_splits.cross_split_near_duplicates(held_out, train) == 0.0


def test_cross_split_measure_matches_brute_force():
    rng = random.Random(1)
    alphabet = "abcdefgh "
    train = [
        "".join(rng.choices(alphabet, k=rng.randint(5, 14))) for _ in range(300)
    ]
    held = [t[:-1] + "z" for t in train[:20]] + [
        "".join(rng.choices(alphabet, k=10)) for _ in range(40)
    ]
    expected = sum(
        any(pair_splits.similarity(h, t) >= 0.8 for t in train) for h in held
    ) / len(held)
    assert pair_splits.cross_split_near_duplicates(held, train) == expected
    assert expected > 0


def test_missing_package_names_the_apt_command():
    with pytest.raises(FileNotFoundError, match="apt-get install"):
        gettext.read_packages(("coreutils", "no-such-package-xyz"))
    message = gettext.missing_packages_message(["a", "b"])
    assert message.count("\n") == 1 and "apt-get install" in message


@pytest.mark.slow
def test_real_catalogs_build(tmp_path):
    builder = tfds.builder("gettext_de_en", data_dir=tmp_path)
    builder.download_and_prepare()
    sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert sizes["train"] > 30_000
    assert sizes["test"] > 2_000 and sizes["validation"] > 2_000
    metadata = builder.info.metadata
    # The goal: at most 2% of test messages near-duplicate a training one.
    assert metadata["test_near_duplicates_in_train"] <= 0.02
    assert set(metadata["packages"]) == set(gettext.PACKAGES)


def test_ci_installs_every_pinned_package():
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    with open(os.path.join(root, ".ci", "run"), encoding="utf-8") as f:
        script = f.read()
    for package in gettext.PACKAGES + ("trans-de-en",):
        assert f" {package} " in script.replace("\\\n", " ").replace(
            '"', " "
        ), package
