"""`--out` pointing at a user's folder: refused, nothing touched; inside a
run folder, only the runner's own temporaries are ever cleaned up."""

import os

from tests.faults.conftest import error_line
from tests.faults.conftest import run_args
from tests.faults.conftest import run_cli
from tests.faults.conftest import snapshot


def test_non_run_folder_is_refused_and_untouched(tmp_path, digits_dir, capsys):
    home = tmp_path / "home"
    home.mkdir()
    # Dot-files that an earlier clean-up rule (".tmp-" / ".old-") matched.
    (home / ".tmp-notes").write_text("mine")
    (home / ".bashrc.old-1").write_text("mine too")
    (home / "thesis.tex").write_text("precious")
    before = snapshot(home)

    status, _, err = run_cli(run_args(home, digits_dir), capsys)

    assert status == 2
    line = error_line(err)
    assert str(home) in line and "not a run folder" in line
    assert snapshot(home) == before
    assert sorted(os.listdir(home)) == [
        ".bashrc.old-1",
        ".tmp-notes",
        "thesis.tex",
    ]
    # The next run, given a new folder inside it, completes.
    status, _, _ = run_cli(run_args(home / "run", digits_dir, epochs=1), capsys)
    assert status == 0
    assert os.path.exists(home / "run" / "metrics.json")
    assert snapshot(home / "run").keys() >= {"run.json", "metrics.json"}
    assert (home / ".tmp-notes").read_text() == "mine"


def test_a_file_as_out_is_refused(tmp_path, digits_dir, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    status, _, err = run_cli(run_args(path, digits_dir), capsys)
    assert status == 2
    assert "is a file" in error_line(err)
    assert path.read_text() == "mine"


def test_empty_folder_becomes_a_run_folder(tmp_path):
    from experiments.rundir import RunDir
    from tests.experiments.conftest import tiny_config

    out = tmp_path / "empty"
    out.mkdir()
    with RunDir(str(out), tiny_config()):
        pass
    assert sorted(os.listdir(out)) == [".lock", "config.json", "run.json"]


def test_chief_accepts_a_folder_a_worker_entered_first(tmp_path):
    # Under MultiWorkerMirroredStrategy a non-chief worker may create its
    # private `workers/` folder before the chief writes `run.json`.
    from experiments.rundir import RunDir
    from experiments.rundir import WorkerDir
    from tests.experiments.conftest import tiny_config

    out = tmp_path / "run"
    with WorkerDir(str(out), tiny_config(), "worker:1"):
        pass
    with RunDir(str(out), tiny_config()):
        pass
    assert {"run.json", "config.json", "workers"} <= set(os.listdir(out))


def test_clean_up_keeps_user_files_inside_a_run_folder(tmp_path):
    from experiments.atomic import temporary_path
    from experiments.rundir import RunDir
    from tests.experiments.conftest import tiny_config

    out = tmp_path / "run"
    with RunDir(str(out), tiny_config()):
        pass
    (out / ".tmp-my-notes").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "figure.old-2.png").write_text("mine")
    stale = temporary_path(str(out / "plots" / "curves.png"))
    with open(stale, "w") as f:
        f.write("half-written by a killed run")
    with RunDir(str(out), tiny_config()):
        pass
    assert not os.path.exists(stale)
    assert (out / ".tmp-my-notes").read_text() == "mine"
    assert (out / "plots" / "figure.old-2.png").read_text() == "mine"


def test_temporary_names_are_unique_and_recognisable(tmp_path):
    from experiments import atomic

    names = {atomic.temporary_path(str(tmp_path / "x.json")) for _ in range(50)}
    assert len(names) == 50
    assert all(atomic.is_temporary(n) for n in names)
    assert all(os.path.dirname(n) == str(tmp_path) for n in names)
    assert not atomic.is_temporary(".tmp-notes")
