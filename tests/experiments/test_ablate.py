"""The ablation command: models x seeds, a mean ± std table, step times."""

import json
import os

import pytest

from experiments import ablate
from experiments.tasks.image_classification import default_models
from tests.experiments.conftest import EAGER
from tests.experiments.conftest import TINY


def test_default_models_strip_the_attention_prefix():
    expected = ["resnet20", "se_resnet20", "cbam_resnet20", "eca_resnet20"]
    assert default_models("cbam_resnet20") == expected
    assert default_models("resnet56")[0] == "resnet56"


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
        timing_rounds=0,  # timed separately below: keeps this test fast
        verbose=0,
    )
    rows = {row["model"]: row for row in summary["rows"]}
    assert list(rows) == ["resnet20", "se_resnet20"]
    for row in rows.values():
        values = row["test_accuracy_per_seed"]
        assert len(values) == 2
        assert row["test_accuracy_mean"] == pytest.approx(sum(values) / 2)
        assert row["step_time_ms"] is None
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
    assert "step time not measured" in table
    assert summary["figures"] == []  # image classification draws none
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    assert "<td>se_resnet20</td>" in page
    assert 'href="se_resnet20-seed1/report.html"' in page

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
        timing_rounds=0,
        verbose=0,
    )
    for a, b in zip(summary["rows"], again["rows"]):
        assert a["test_accuracy_per_seed"] == b["test_accuracy_per_seed"]


def test_model_specs_carry_builder_arguments():
    assert ablate.parse_model_spec(
        "cbam_resnet20:attention_kwargs.kernel_size=3"
    ) == [
        "model.name=cbam_resnet20",
        "model.kwargs.attention_kwargs.kernel_size=3",
    ]
    from experiments.errors import UserError

    with pytest.raises(UserError, match="key=value"):
        ablate.parse_model_spec("cbam_resnet20:oops")


def test_compare_step_times_interleaves_and_reports():
    import keras
    import numpy as np

    from experiments import timing

    def model(width):
        inputs = keras.Input((4,))
        x = keras.layers.Dense(width)(inputs)
        outputs = keras.layers.Dense(2)(x)
        net = keras.Model(inputs, outputs)
        net.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        return net

    batch = (np.ones((3, 4), "float32"), np.zeros((3, 2), "float32"))
    times = timing.compare_step_times(
        {"small": model(2), "large": model(64)},
        batch,
        warmup=1,
        steps=2,
        rounds=3,
    )
    assert set(times) == {"small", "large"}
    for value in times.values():
        assert value["steps"] == 6
        assert 0 < value["p10_ms"] <= value["median_ms"] <= value["p90_ms"]
        assert value["cpu_median_ms"] >= 0


def test_markdown_table_with_step_times():
    summary = {
        "experiment": "x",
        "epochs": 1,
        "metric": "test_accuracy",
        "batch_size": 64,
        "timing": {"rounds": 50, "steps_per_round": 2},
        "rows": [
            {
                "model": "a",
                "num_parameters": 1000,
                "seeds": [0, 1],
                "test_accuracy_mean": 0.5,
                "test_accuracy_std": 0.1,
                "test_accuracy_per_seed": [0.4, 0.6],
                "step_time_ms": 10.0,
                "step_time_ratio": 1.0,
                "step_cpu_time_ms": 15.0,
                "step_cpu_time_ratio": 1.0,
            }
        ],
    }
    table = ablate.markdown_table(summary)
    row = (
        "| a | 1,000 | 0.5000 ± 0.1000 | 0.4000, 0.6000 | 10.0 | 1.00x | "
        "15.0 | 1.00x |"
    )
    assert row in table
    assert "50 x 2 training steps on one batch of 64" in table
    assert "Figures:" not in table
    summary["figures"] = ["overlays/attention_comparison_0.png"]
    assert (
        "Figures: overlays/attention_comparison_0.png."
        in ablate.markdown_table(summary)
    )
