"""The README's main job, end to end (slow: minutes on a 2-core CPU)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.slow
def test_digits_cbam_resnet20_main_job(tmp_path):
    out = tmp_path / "run"
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments",
            "run",
            "digits_cbam_resnet20",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.search(r"Test accuracy \(top-1\): ([\d.]+)%", result.stdout)
    assert printed, result.stdout[-2000:]
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["test_accuracy"] >= 0.98
    assert float(printed.group(1)) == pytest.approx(
        100 * metrics["test_accuracy"], abs=0.01
    )
    for name in (
        "saved_model/1/saved_model.pb",
        "plots/training_curves.png",
        "plots/confusion_matrix.png",
        "plots/attention_maps.png",
    ):
        assert os.path.exists(out / name), name
    # The README promises under 10 minutes on 2 CPU cores.
    assert elapsed < 600, f"took {elapsed:.0f} s"
