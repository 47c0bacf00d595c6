"""Side-by-side attention overlays of captioners saved in run folders."""

import os

import pytest

import zoo
from experiments import runner
from experiments.caption_overlays import compare_captioners
from experiments.tasks import get_task

pytestmark = pytest.mark.tf_only


def test_compare_captioners_draws_one_figure_per_image(tmp_path):
    config = runner.resolve(
        "digit_scenes_transformer",
        ["data.name=digit_scenes/tiny", "data.max_eval_examples=4"],
    )
    runs = []
    for name, kwargs in (
        ("show_attend_tell_hard", dict(units=8, attention_units=8)),
        ("transformer_captioner", dict(model_dim=8, num_heads=2, ff_dim=8)),
    ):
        model = zoo.build(
            name,
            vocab_size=14,
            encoder_filters=(4, 4, 4),
            max_caption_length=5,
            **kwargs,
        )
        folder = tmp_path / name
        folder.mkdir()
        model.save(folder / "model.keras")
        runs.append((name, str(folder)))
    paths = compare_captioners(
        runs,
        config,
        str(tmp_path / "out"),
        count=2,
        data_dir=str(tmp_path / "tfds"),
    )
    assert [os.path.basename(p) for p in paths] == [
        "attention_comparison_0.png",
        "attention_comparison_1.png",
    ]
    assert all(os.path.getsize(p) > 0 for p in paths)
    assert compare_captioners([], config, str(tmp_path / "none")) == []


def test_the_captioning_ablation_draws_the_first_seeds(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "experiments.caption_overlays.compare_captioners",
        lambda *args: calls.append(args) or ["x.png"],
    )
    task = get_task("image_captioning")
    config = runner.resolve("digit_scenes_transformer")
    run_dirs = {"a": ["a0", "a1"], "b": ["b0", "b1"]}
    assert task.ablation_figures(config, run_dirs, "out", None) == ["x.png"]
    ((runs, _, out, count, _),) = calls
    assert runs == [("a", "a0"), ("b", "b0")] and count == 4
    assert out == os.path.join("out", "overlays")
    off = runner.resolve("digit_scenes_transformer", ["eval.plots=false"])
    assert task.ablation_figures(off, run_dirs, "out", None) == []
