"""Tests of `python -m benchmarks profile`: the op table read from
TensorFlow's profiler trace, and its command line."""

import pytest

from benchmarks import cli
from benchmarks import op_profile

pytestmark = pytest.mark.tf_only


def test_summarize_groups_per_step_largest_first():
    events = [
        ("model_1/dense_2/MatMul", "MatMul", 4.0),
        ("model_3/dense_4/MatMul", "MatMul", 2.0),
        ("model_1/dense_2/MatMul_1", "MatMul", 1.0),
        ("model_1/mul", "Mul", 5.0),
    ]
    by_op = op_profile.summarize(events, steps=2)
    assert [(r.op_type, r.ms_per_step, r.calls_per_step) for r in by_op] == [
        ("MatMul", 3.5, 1.5),
        ("Mul", 2.5, 0.5),
    ]
    by_name = op_profile.summarize(events, steps=1, by="name")
    # Scopes lose their build suffixes (two builds of one model merge);
    # an op's own suffix is kept.
    assert [(r.name, r.ms_per_step) for r in by_name] == [
        ("model/dense/MatMul", 6.0),
        ("model/mul", 5.0),
        ("model/dense/MatMul_1", 1.0),
    ]
    with pytest.raises(ValueError, match="by='layer'"):
        op_profile.summarize(events, steps=1, by="layer")


def test_profile_step_reads_the_ops_of_a_real_trace():
    import tensorflow as tf

    a = tf.random.normal((128, 128), seed=1)

    @tf.function
    def step():
        return tf.reduce_sum(tf.matmul(a, a) * 2.0)

    profile = op_profile.profile_step(lambda: step().numpy(), steps=3, warmup=1)
    kinds = {row.op_type: row for row in profile.rows}
    matmul = next(row for t, row in kinds.items() if t.endswith("MatMul"))
    assert matmul.calls_per_step == 1 and matmul.ms_per_step > 0
    assert "Process" not in kinds  # executor bookkeeping is not an op
    assert profile.wall_ms > 0 and profile.op_ms > 0
    text = op_profile.render("step", profile, top=1)
    assert text.startswith("`step`: step ") and "more) |" in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps=0"),
        ({"warmup": -1}, "warmup=-1"),
        ({"by": "layer"}, "by='layer'"),
        ({"top": 0}, "top=0"),
    ],
)
def test_bad_arguments_are_refused_before_building(kwargs, match, monkeypatch):
    built = []
    monkeypatch.setitem(
        op_profile.TARGETS, "transformer_mfu", lambda: built.append(1)
    )
    with pytest.raises(ValueError, match=match):
        op_profile.run("transformer_mfu", **kwargs)
    assert not built
    with pytest.raises(ValueError, match="'nope'"):
        op_profile.run("nope")


def test_cli_profile_exit_codes(capsys):
    assert cli.main(["profile", "resnet20_inference", "--steps", "0"]) == 2
    assert "steps=0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["profile", "no_such_target"])
    assert exit_info.value.code == 2
