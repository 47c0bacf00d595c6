"""Command line: listing, and every bad input exits 2 with a clear message."""

import os
import subprocess
import sys

import pytest

from experiments import data as data_lib
from experiments.cli import main
from tests.experiments.conftest import TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_list_shows_experiments(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in ("digits_cbam_resnet20", "mnist", "cifar10", "cifar100"):
        assert name in out
    code, out, _ = _run(capsys, "list", "cifar10*")
    assert code == 0 and "digits" not in out and "cifar10_resnet20" in out


def test_list_models(capsys):
    code, out, _ = _run(capsys, "list", "--models", "*resnet20")
    assert code == 0
    assert "resnet20" in out and "He et al. 2016" in out


def test_show_prints_resolved_config(capsys):
    code, out, _ = _run(
        capsys, "show", "digits", "--set", "train.learning_rate=0.3"
    )
    assert code == 0 and '"learning_rate": 0.3' in out


def test_unknown_experiment(capsys):
    code, _, err = _run(capsys, "run", "digitz")
    assert code == 2
    assert "Unknown experiment 'digitz'" in err and "digits" in err


def test_invalid_set_key_lists_valid_keys(capsys):
    code, _, err = _run(capsys, "run", "digits", "--set", "train.lr=1")
    assert code == 2
    assert "train.learning_rate" in err and "Valid keys:" in err


def test_bad_value_type(capsys):
    code, _, err = _run(capsys, "run", "digits", "--set", "data.batch_size=x")
    assert code == 2
    assert "data.batch_size" in err and "'x'" in err and "integer" in err


def test_unknown_model(capsys):
    code, _, err = _run(capsys, "run", "digits", "--set", "model.name=resnet2O")
    assert code == 2
    assert "Unknown model 'resnet2O'" in err and "resnet20" in err


def test_unknown_model_argument_lists_builder_keys(capsys):
    code, _, err = _run(
        capsys, "run", "digits_resnet20", "--set", "model.deepth=3"
    )
    assert code == 2
    assert "deepth" in err and "model.kwargs.depth" in err


def test_bad_strategy_is_a_usage_error(capsys):
    assert main(["run", "digits", "--strategy", "cluster"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_unknown_dataset(capsys, tmp_path):
    code, _, err = _run(
        capsys,
        "run",
        "digits_resnet20",
        "--data-dir",
        str(tmp_path),
        "--set",
        "data.name=mnistt",
    )
    assert code == 2
    assert "Unknown dataset 'mnistt'" in err and "mnist" in err


def test_official_dataset_missing_without_download(capsys, tmp_path):
    code, _, err = _run(
        capsys,
        "run",
        "mnist_resnet20",
        "--data-dir",
        str(tmp_path),
        "--set",
        "data.download=false",
    )
    assert code == 2
    assert "not prepared" in err and "tfds build mnist" in err
    assert err.count("\nerror") == 0  # one message


def test_official_dataset_missing_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(data_lib, "network_available", lambda: False)
    code, _, err = _run(
        capsys, "run", "cifar10_resnet20", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "no network" in err and "tfds build cifar10" in err
    assert "--data-dir" in err


def test_dataset_directory_errors(capsys, tmp_path, digits_dir):
    missing = tmp_path / "nowhere"
    code, _, err = _run(
        capsys, "run", "digits_resnet20", "--set", f"data.name={missing}"
    )
    assert code == 2 and "does not exist" in err
    # The dataset's folder (not its version folder) gets a precise hint.
    code, _, err = _run(
        capsys,
        "run",
        "digits_resnet20",
        "--set",
        f"data.name={os.path.join(digits_dir, 'digits')}",
    )
    assert code == 2 and "1.0.0" in err


def test_bad_split_and_feature_keys(capsys, digits_dir):
    code, _, err = _run(
        capsys,
        "run",
        "digits_resnet20",
        "--data-dir",
        digits_dir,
        "--set",
        "data.train_split=training",
    )
    assert code == 2 and "no split 'training'" in err and "train" in err
    code, _, err = _run(
        capsys,
        "run",
        "digits_resnet20",
        "--data-dir",
        digits_dir,
        "--set",
        "data.image_key=img",
    )
    assert code == 2 and "no feature 'img'" in err and "image" in err


def test_unwritable_out(capsys, tmp_path, digits_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = _run(
        capsys,
        "run",
        "digits_resnet20",
        "--data-dir",
        digits_dir,
        "--out",
        str(blocker / "run"),
        "--set",
        *TINY,
    )
    assert code == 2
    assert "Cannot write the run folder" in err and "--out" in err


def test_module_entry_point_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run(
        [sys.executable, "-m", "experiments", "run", "cifar11"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Did you mean: cifar10" in result.stderr


@pytest.mark.parametrize("argv", [["ablate", "digits", "--seeds", "a,b"]])
def test_ablate_bad_seeds(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "--seeds" in err
