"""Hard attention reaches the digit-scenes targets with both estimators:
>= 85% exact captions (greedy) and >= 0.80 of the attention mass inside
the named digit's box (minutes on CPU each)."""

import pytest

from experiments import runner


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["digit_scenes_hard", "digit_scenes_hard_gumbel"]
)
def test_hard_attention_reaches_the_targets(name, tmp_path):
    config = runner.resolve(name, ["export=false"])
    metrics = runner.run(config, name=name, out=str(tmp_path), verbose=0)
    assert metrics["exact_greedy"] >= 0.85
    assert metrics["attention_in_box_greedy"] >= 0.80
