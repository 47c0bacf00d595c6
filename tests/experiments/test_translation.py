"""Translation experiment: WordPiece tokeniser, an end-to-end run on a tiny
prepared TFDS directory, the string-in/string-out SavedModel served in a
fresh process that never imports this project, bad inputs, CLI errors."""

import json
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import tensorflow as tf

import zoo
from experiments import runner
from experiments.cli import main
from experiments.tasks import translation
from experiments.wordpiece import WordPieceTokenizer
from experiments.wordpiece import learn_vocabulary
from experiments.wordpiece import pretokenize
from tests.testing import run_docstring_example

pytestmark = pytest.mark.tf_only

NUMBERS = {
    "null": "zero",
    "eins": "one",
    "zwei": "two",
    "drei": "three",
    "vier": "four",
    "fünf": "five",
    "sechs": "six",
    "sieben": "seven",
}
BAD_INPUTS = [
    "",
    "eins zwei drei",
    " ".join(["sieben"] * 40),  # longer than max_source_length
    "汤姆追逐杰瑞。",  # unexpected script
    "😀 🚀 eins!",
    "   \t  ",
]
INVALID_UTF8 = b"zwei \xff\xfe drei"


def _pairs(count, seed):
    rng = np.random.default_rng(seed)
    words = list(NUMBERS)
    pairs = []
    for _ in range(count):
        chosen = [words[i] for i in rng.integers(0, len(words), 3)]
        source = " ".join(chosen).capitalize() + "."
        target = " ".join(NUMBERS[w] for w in chosen).capitalize() + "."
        pairs.append({"de": source, "en": target})
    return pairs


@pytest.fixture(scope="module")
def number_pairs_dir(tmp_path_factory):
    """A prepared TFDS dataset dir of synthetic German->English numbers."""
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("tfds")
    tfds.dataset_builders.store_as_tfds_dataset(
        name="number_pairs",
        version="1.0.0",
        features=tfds.features.FeaturesDict(
            {"de": tfds.features.Text(), "en": tfds.features.Text()}
        ),
        split_datasets={
            split: tf.data.Dataset.from_tensor_slices(
                {
                    "de": [p["de"] for p in pairs],
                    "en": [p["en"] for p in pairs],
                }
            )
            for split, pairs in (
                ("train", _pairs(96, 0)),
                ("validation", _pairs(16, 1)),
                ("test", _pairs(12, 2)),
            )
        },
        data_dir=str(root),
    )
    return str(root / "number_pairs" / "1.0.0")


@pytest.fixture(scope="module")
def finished_run(number_pairs_dir, tmp_path_factory):
    """One tiny run: seq2seq_bahdanau, two training steps, exported."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["ATTENTION_ZOO_CACHE"] = str(cache)
    config = runner.resolve(
        "ding_seq2seq_bahdanau",
        [
            f"data.name={number_pairs_dir}",
            "data.batch_size=48",
            "data.eval_batch_size=16",
            "data.vocab_size=60",
            "data.max_source_length=12",
            "data.max_target_length=10",
            "model.units=8",
            "model.embedding_dim=8",
            "eval.attention_maps=2",
            "eval.samples=3",
            "eval.beam_width=2",
            # Label smoothing (Vaswani et al.'s 0.1) is a training option.
            "train.label_smoothing=0.1",
            # No tracing in the smoke run: eager training steps and eager
            # step-by-step decoding (the export below is compiled).
            "train.run_eagerly=true",
            "eval.compiled=false",
        ],
        epochs=1,
    )
    out = tmp_path_factory.mktemp("run")
    metrics = runner.run(config, name="tiny", out=str(out), verbose=0)
    return config, metrics, str(out)


# === Tokeniser ===


def test_wordpiece_docstring_example():
    run_docstring_example(WordPieceTokenizer)


def test_wordpiece_matches_tensorflow_text():
    import tensorflow_text as text

    texts = tf.data.Dataset.from_tensor_slices(
        [
            p["de"] + " Schifffahrtsgesellschaft, „Straße“!"
            for p in _pairs(50, 3)
        ]
    )
    vocab = learn_vocabulary(texts, vocab_size=80)
    assert vocab[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    ours = WordPieceTokenizer(vocab)
    theirs = text.FastWordpieceTokenizer(
        vocab,
        suffix_indicator="##",
        unknown_token="[UNK]",
        no_pretokenization=True,
        support_detokenization=False,
        token_out_type=tf.int64,
    )
    sentences = [
        "Fünf sieben null.",
        "Schifffahrtsgesellschaft zwei-drei; eins?",
        "Zwölf Äpfel, xyz!",  # unseen characters -> [UNK]
    ]
    words = tf.strings.split(pretokenize(sentences)).flat_values
    assert (
        ours.tokenize_words(words).to_list() == theirs.tokenize(words).to_list()
    )


def test_wordpiece_normalises_and_detokenises():
    vocab = ["[PAD]", "[UNK]", "[START]", "[END]", "don", "'", "t", ",",
             "go", ".", "(", ")", "x", "-", "y", "##s", "it"]  # fmt: skip
    tokenizer = WordPieceTokenizer(vocab)
    ids = tokenizer.tokenize(["Don’t, GO (x-y) its.", ""])
    assert ids.to_list()[1] == []
    assert tokenizer.detokenize(ids).numpy().tolist() == [
        b"don't, go (x-y) its.",
        b"",
    ]
    # Bad bytes, another script, emoji: [UNK] words, never an error.
    bad = tokenizer.tokenize([INVALID_UTF8, "我爱你 😀"]).to_list()
    # "zwei" U+FFFD U+FFFD "drei"; three ideographs and an emoji.
    assert bad == [[1, 1, 1, 1], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="UNK"):
        WordPieceTokenizer(["a", "b"])


def test_shared_vocabulary_serves_both_sides(number_pairs_dir, tmp_path):
    os.environ["ATTENTION_ZOO_CACHE"] = str(tmp_path)
    overrides = [
        f"data.name={number_pairs_dir}",
        "data.batch_size=16",
        # Room for every word of both languages.
        "data.vocab_size=150",
        "data.max_source_length=12",
        "data.max_target_length=10",
    ]
    task = translation.TranslationTask()
    separate = task.load_data(
        runner.resolve("ding_transformer_translator", overrides), None, None
    )
    shared = task.load_data(
        runner.resolve(
            "ding_transformer_translator",
            overrides + ["data.shared_vocabulary=true"],
        ),
        None,
        None,
    )
    # Each separate vocabulary knows one language's words; the shared one
    # is one list with both, given to both tokenisers.
    assert "eins" in separate.source_tokenizer.vocab
    assert "eins" not in separate.target_tokenizer.vocab
    vocab = shared.source_tokenizer.vocab
    assert shared.target_tokenizer.vocab == vocab
    assert {"eins", "one", "sieben", "seven"} <= set(vocab)
    assert shared.info["source_vocab_size"] == len(vocab)
    assert shared.info["target_vocab_size"] == len(vocab)
    ids = shared.target_tokenizer.tokenize(tf.constant(["one"]))
    assert shared.source_tokenizer.tokenize(tf.constant(["one"])).to_list() == (
        ids.to_list()
    )


# === End to end ===


def test_run_writes_metrics_samples_and_plots(finished_run):
    config, metrics, out = finished_run
    for key in (
        "bleu_greedy",
        "bleu_beam",
        "chrf_greedy",
        "chrf_beam",
        "greedy_tokens_per_s",
        "beam_tokens_per_s",
    ):
        assert np.isfinite(metrics[key]), key
    assert metrics["num_test_examples"] == 12
    assert "tok:13a" in metrics["bleu_signature"]
    samples = json.load(open(os.path.join(out, "samples.json")))
    assert len(samples) == 3
    assert set(samples[0]) == {"source", "reference", "greedy", "beam"}
    assert os.path.exists(os.path.join(out, "samples.md"))
    assert os.path.getsize(os.path.join(out, "plots", "alignments.png")) > 0
    assert os.path.exists(
        os.path.join(out, "saved_model", "1", "saved_model.pb")
    )
    history = open(os.path.join(out, "history.csv")).read()
    assert "val_loss" in history and "accuracy" in history
    saved = json.load(open(os.path.join(out, "config.json")))
    assert saved["train"]["label_smoothing"] == 0.1
    # Attention agreement with IBM Model 2's word alignments.
    assert 0.0 <= metrics["alignment_agreement_ibm2"] <= 1.0
    assert metrics["alignment_links_ibm2"] > 0
    assert metrics["alignment_train_pairs_ibm2"] == 96
    # The length penalty: the choice with the best validation BLEU.
    bleu = metrics["length_penalty_validation_bleu"]
    choices = config.eval.length_penalty_choices
    assert [float(c) for c in bleu] == choices
    assert metrics["length_penalty"] == max(choices, key=lambda c: bleu[str(c)])


def test_predict_translates_and_shows_the_alignment(
    finished_run, capsys, tmp_path
):
    _, _, out = finished_run
    plot = tmp_path / "align.png"
    code, printed, _ = _cli(
        capsys, "predict", out, "eins zwei drei", "fünf", "--plot", str(plot)
    )
    assert code == 0, printed
    assert printed.count("source:") == 2 and "(beam search)" in printed
    assert "attends to (weight)" in printed
    assert plot.stat().st_size > 0
    code, printed, _ = _cli(
        capsys, "predict", out, "vier", "--search", "greedy"
    )
    assert code == 0 and "(greedy search)" in printed
    code, _, err = _cli(capsys, "predict", str(tmp_path), "eins")
    assert code == 2 and "not a run folder" in err


_SERVE = textwrap.dedent(
    """
    import json, sys
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf
    results = {{}}
    for name, path in {exports!r}.items():
        loaded = tf.saved_model.load(path)
        out = {{}}
        for signature in ("serving_default", "greedy"):
            fn = loaded.signatures[signature]
            batch = tf.constant({inputs!r} + [{bad!r}])
            res = fn(sentences=batch)
            empty = fn(sentences=tf.constant([], tf.string))
            out[signature] = {{
                "keys": sorted(res),
                "translation": [t.decode("utf-8", "replace")
                                for t in res["translation"].numpy()],
                "truncated": res["source_truncated"].numpy().tolist(),
                "score": res["score"].numpy().tolist(),
                "attention": list(res["attention"].shape)
                    if "attention" in res else None,
                "empty": list(empty["translation"].shape),
            }}
        results[name] = out
    leaked = sorted(m for m in sys.modules
                    if m.split(".")[0] in {packages!r})
    assert not leaked, f"project modules imported: {{leaked}}"
    print(json.dumps(results))
    """
)


def _serve_in_fresh_process(exports, inputs, tmp_path):
    """Calls each SavedModel's two signatures in a project-free process."""
    script = _SERVE.format(
        root=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        exports=exports,
        inputs=inputs,
        bad=INVALID_UTF8,
        packages=(
            "layers",
            "zoo",
            "experiments",
            "benchmarks",
            "tests",
            "tensorflow_text",
        ),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    n = len(inputs) + 1
    for name, by_signature in results.items():
        for signature, res in by_signature.items():
            assert len(res["translation"]) == n, (name, signature)
            # Only the 40-word sentence is cut to max_source_length.
            assert res["truncated"] == [i == 2 for i in range(n)]
            assert res["attention"][0] == n and res["attention"][2] == 12
            assert res["empty"] == [0]
            assert {"translation", "score", "source_tokens"} <= set(res["keys"])
            # Sources without a token translate to "" with score 0 (a
            # decoded score is a log-probability, never exactly 0).
            for i, source in enumerate(BAD_INPUTS):
                if not source.strip():
                    assert res["translation"][i] == "", (i, res)
                    assert res["score"][i] == 0.0, (i, res)
                else:
                    assert res["score"][i] < 0.0, (i, res)
    return results


def test_saved_model_serves_strings_in_a_fresh_process(finished_run, tmp_path):
    _, _, out = finished_run
    samples = json.load(open(os.path.join(out, "samples.json")))
    inputs = BAD_INPUTS + [s["source"] for s in samples]
    results = _serve_in_fresh_process(
        {"bahdanau": os.path.join(out, "saved_model", "1")}, inputs, tmp_path
    )
    # The SavedModel translates as the (eager) evaluation did: beam search
    # is the serving default, greedy the second signature.
    served = results["bahdanau"]
    first = len(BAD_INPUTS)
    for i, sample in enumerate(samples):
        assert (
            served["serving_default"]["translation"][first + i]
            == (sample["beam"])
        )
        assert served["greedy"]["translation"][first + i] == sample["greedy"]


@pytest.mark.slow
def test_transformer_saved_model_serves_strings(tmp_path):
    from experiments.tasks.translation import export_translator

    source_vocab = ["[PAD]", "[UNK]", "[START]", "[END]", "eins", "zwei"]
    target_vocab = ["[PAD]", "[UNK]", "[START]", "[END]", "one", "two"]
    transformer = zoo.build(
        "transformer_translator",
        source_vocab_size=len(source_vocab),
        target_vocab_size=len(target_vocab),
        num_layers=1,
        model_dim=8,
        num_heads=2,
        ff_dim=16,
    )
    path = str(tmp_path / "transformer")
    export_translator(
        transformer,
        WordPieceTokenizer(source_vocab),
        WordPieceTokenizer(target_vocab),
        path,
        max_source_length=12,
        max_target_length=6,
        beam_width=2,
    )
    _serve_in_fresh_process({"transformer": path}, BAD_INPUTS, tmp_path)


# === Command line: names and data ===


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_translation_experiments_are_listed(capsys):
    code, out, _ = _cli(capsys, "list", "ding_*")
    assert code == 0
    for name in (
        "ding_seq2seq_gru",
        "ding_seq2seq_bahdanau",
        "ding_seq2seq_luong",
        "ding_seq2seq_luong_dot",
        "ding_seq2seq_luong_concat",
        "ding_transformer_translator",
    ):
        assert name in out
    code, out, _ = _cli(capsys, "list", "ted_hrlr*")
    assert code == 0 and "ted_hrlr_translate/pt_to_en" in out
    code, out, _ = _cli(capsys, "list", "gettext*")
    assert code == 0 and "gettext_seq2seq_bahdanau" in out
    code, out, _ = _cli(capsys, "list", "ding_phrases*")
    assert code == 0 and "ding_de_en/sentences_and_phrases" in out


def test_phrase_experiments_describe_their_corpus_and_budget():
    # `experiments list` shows the description: the phrase experiments
    # train on about 6x the pairs of plain Ding, so they must not promise
    # plain Ding's minutes.
    from experiments.config import experiment_names

    names = [n for n in experiment_names() if n.startswith("ding_phrases_")]
    assert len(names) == 4
    for name in names:
        config = runner.resolve(name)
        assert config.data.name == "ding_de_en/sentences_and_phrases"
        assert "phrase pairs" in config.description
        assert "5-8 min" not in config.description


def test_unknown_names_exit_2_with_close_matches(capsys, number_pairs_dir):
    code, _, err = _cli(capsys, "run", "ding_seq2seq_bahdanou")
    assert code == 2 and "ding_seq2seq_bahdanau" in err
    code, _, err = _cli(
        capsys, "run", "ding_de_en", "--set", "model.name=seq2seq_bahdanu"
    )
    assert code == 2 and "seq2seq_bahdanau" in err
    code, _, err = _cli(
        capsys,
        "run",
        "ding_de_en",
        "--set",
        f"data.name={number_pairs_dir}",
        "data.source_key=pt",
    )
    assert code == 2 and "no feature 'pt'" in err and "de, en" in err
    code, _, err = _cli(
        capsys, "run", "ding_de_en", "--set", "eval.export_search=sampling"
    )
    assert code == 2 and "export_search" in err
    code, _, err = _cli(
        capsys,
        "run",
        "ding_de_en",
        "--set",
        "eval.length_penalty_choices=[0.6, -1]",
    )
    assert code == 2 and "length_penalty_choices" in err and "-1" in err


def test_length_penalty_is_chosen_on_validation(monkeypatch):
    """The choice with the best validation BLEU is used, never test's."""
    task = translation.TASK
    references = ["one two three.", "four five six."]
    validation = object()  # stands for the batched validation pairs
    decoded = []

    def fake_translate_split(
        model, data, config, method, split=None, translate=None
    ):
        assert split is validation and method == "beam"
        penalty = config.eval.length_penalty
        decoded.append(penalty)
        # Only alpha 0.3 reproduces the references.
        hypotheses = references if penalty == 0.3 else ["six.", "one."]
        return references, references, hypotheses, [], 0.0, 0

    monkeypatch.setattr(task, "translate_split", fake_translate_split)
    data = types.SimpleNamespace(validation_text=validation)
    config = runner.resolve("ding_seq2seq_bahdanau")
    config.eval.length_penalty_choices = [0.0, 0.3, 1.0]
    chosen, record = task.choose_on_validation(None, data, config)
    assert decoded == [0.0, 0.3, 1.0]
    assert chosen.eval.length_penalty == 0.3
    assert config.eval.length_penalty == 0.6  # the given config is untouched
    bleu = record["length_penalty_validation_bleu"]
    assert set(bleu) == {"0.0", "0.3", "1.0"}
    assert bleu["0.3"] == 100.0 and bleu["0.0"] < 100.0
    # No validation split: the set penalty, with a note saying so.
    data.validation_text = None
    kept, record = task.choose_on_validation(None, data, config)
    assert kept.eval.length_penalty == 0.6 and "no validation" in str(record)


@pytest.mark.parametrize(
    "experiment", ["ted_hrlr_pt_en", "wmt14_de_en_seq2seq_bahdanau"]
)
def test_missing_official_data_gives_one_clear_message(
    capsys, tmp_path, monkeypatch, experiment
):
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    code, _, err = _cli(
        capsys, "run", experiment, "--data-dir", str(tmp_path), "--epochs", "1"
    )
    assert code == 2
    assert "is not prepared" in err and "tfds build" in err


def test_one_trace_decodes_every_length_penalty():
    model = zoo.build(
        "seq2seq_bahdanau",
        source_vocab_size=20,
        target_vocab_size=16,
        embedding_dim=8,
        units=8,
    )
    config = runner.resolve("ding_seq2seq_bahdanau")
    translate = translation.TASK.make_translate_fn(model, config, "beam")
    ids = tf.constant([[2, 5, 6, 3], [2, 7, 3, 0]], tf.int32)
    scores = [
        translate(ids, tf.constant(penalty)).best().scores.numpy()
        for penalty in (0.0, 2.0)
    ]
    assert translate.experimental_get_tracing_count() == 1
    # The penalty is applied, not baked in: the length-normalised scores
    # differ.
    assert not np.allclose(scores[0], scores[1])
