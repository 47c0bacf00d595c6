"""The ablation command: models x seeds, a mean ± std table, step times."""

import json
import os

import pytest

from experiments import ablate
from tests.experiments.conftest import EAGER
from tests.experiments.conftest import TINY


def test_default_models_strip_the_attention_prefix():
    expected = ["resnet20", "se_resnet20", "cbam_resnet20", "eca_resnet20"]
    assert ablate.default_models("cbam_resnet20") == expected
    assert ablate.default_models("resnet56")[0] == "resnet56"


def test_ablation_table(tmp_path, digits_dir):
    out = str(tmp_path / "ablation")
    overrides = [*TINY, *EAGER, "eval.plots=false"]
    summary = ablate.ablate(
        "digits_cbam_resnet20",
        models=["resnet20", "se_resnet20"],
        seeds=(0, 1),
        overrides=overrides,
        epochs=1,
        out=out,
        data_dir=digits_dir,
        timing_rounds=1,
        timing_steps=2,
        verbose=0,
    )
    rows = {row["model"]: row for row in summary["rows"]}
    assert list(rows) == ["resnet20", "se_resnet20"]
    for row in rows.values():
        values = row["test_accuracy_per_seed"]
        assert len(values) == 2
        assert row["test_accuracy_mean"] == pytest.approx(sum(values) / 2)
        assert row["step_time_ms"] > 0
    assert rows["resnet20"]["step_time_ratio"] == pytest.approx(1.0)
    assert (
        rows["se_resnet20"]["num_parameters"]
        > rows["resnet20"]["num_parameters"]
    )
    for seed in (0, 1):
        run = os.path.join(out, f"se_resnet20-seed{seed}")
        with open(os.path.join(run, "config.json")) as f:
            config = json.load(f)
        assert config["seed"] == seed and config["export"] is False
    with open(os.path.join(out, "ablation.md")) as f:
        table = f.read()
    assert "| se_resnet20 |" in table and " ± " in table

    # Rerunning reuses the finished runs (no training) and rewrites the
    # table.
    again = ablate.ablate(
        "digits_cbam_resnet20",
        models=["resnet20", "se_resnet20"],
        seeds=(0, 1),
        overrides=overrides,
        epochs=1,
        out=out,
        data_dir=digits_dir,
        timing_rounds=1,
        timing_steps=2,
        verbose=0,
    )
    for a, b in zip(summary["rows"], again["rows"]):
        assert a["test_accuracy_per_seed"] == b["test_accuracy_per_seed"]
