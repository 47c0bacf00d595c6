"""Command line: options in any order, saved configs, a `list` that fits a
terminal, short refusals that leave nothing behind, quiet start-up."""

import json
import os
import subprocess
import sys

from experiments import config as config_lib
from experiments.cli import LIST_WIDTH
from experiments.cli import main
from tests.experiments.conftest import TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_options_may_come_before_the_name(capsys):
    before = _run(capsys, "show", "--set", "train.epochs=3", "digits")
    after = _run(capsys, "show", "digits", "--set", "train.epochs=3")
    assert before[0] == after[0] == 0
    assert before[1] == after[1]
    assert json.loads(before[1])["train"]["epochs"] == 3


def test_a_value_missing_its_equals_sign_is_still_reported(capsys):
    code, _, err = _run(capsys, "show", "digits", "--set", "train.epochs", "3")
    assert code == 2 and "key=value" in err


def test_a_command_without_an_experiment_says_what_it_needs(capsys):
    code, _, err = _run(capsys, "run", "--set", "train.epochs=3")
    assert code == 2 and "needs an experiment name" in err
    code, _, err = _run(capsys, "compare")
    assert code == 2 and "needs experiment names" in err


def test_bad_model_argument_is_refused_before_any_run_folder(
    capsys, tmp_path, digits_dir
):
    out = tmp_path / "run"
    code, _, err = _run(
        capsys,
        "run",
        "--set",
        *TINY,
        "model.attention=cbamm",
        "digits_resnet20",
        "--out",
        str(out),
        "--data-dir",
        digits_dir,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Did you mean: cbam" in err and err.count("Received:") == 1
    assert "squeeze_and_excitation" not in err  # no dump of every alias
    # Nothing was created: the corrected command can reuse the same --out.
    assert not out.exists()


def test_run_config_reruns_a_saved_configuration(capsys, tmp_path):
    config = config_lib.get_experiment("digits_vit_tiny")
    config.train.epochs = 2
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_lib.to_dict(config)))
    code, out, _ = _run(
        capsys, "show", "--config", str(path), "--set", "seed=4"
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["model"] == config_lib.to_dict(config)["model"]
    assert shown["train"]["epochs"] == 2 and shown["seed"] == 4

    code, _, err = _run(capsys, "run", "digits", "--config", str(path))
    assert code == 2 and "not both" in err
    path.write_text(json.dumps({"task": "image_classification", "trian": {}}))
    code, _, err = _run(capsys, "run", "--config", str(path))
    assert code == 2 and "trian" in err and "Valid keys" in err
    code, _, err = _run(capsys, "run", "--config", str(tmp_path / "no.json"))
    assert code == 2 and "Cannot read the config file" in err


def test_list_fits_the_terminal_and_shows_each_config_once(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= LIST_WIDTH
    rows = [line.split()[0] for line in out.splitlines() if line[:2] == "  "]
    assert rows.count("digits_cbam_resnet20") == 1
    assert "digits" not in rows  # an alias: listed below, not as a row
    assert "digits = digits_cbam_resnet20" in " ".join(out.split())
    # Model arguments, and the packages the offline datasets need.
    assert "patch_size=2 depth=4" in out
    assert "apt-get install trans-de-en" in out
    assert "vaderSentiment==3.3.2" in out
    code, wide, _ = _run(capsys, "list", "--wide")
    assert "on scikit-learn digits (offline, minutes)" in wide
    assert max(len(line) for line in wide.splitlines()) > LIST_WIDTH


def test_startup_noise_is_kept_out(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "experiments", "list", "--models", "resnet20"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resnet20" in done.stdout
    for noise in ("cudart_stub", "cuda_platform", "oneDNN", "absl::"):
        assert noise not in done.stderr, done.stderr
