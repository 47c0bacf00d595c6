"""The README's layer examples run as written (they must not rot)."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def _section_examples(heading):
    text = open(README, encoding="utf-8").read()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_an_example_per_layer_family():
    import layers

    code = "\n".join(_section_examples("Layers"))
    public = [
        name
        for name in dir(layers)
        if name[0].isupper() and isinstance(getattr(layers, name), type)
    ]
    missing = [
        name
        for name in public
        if not name.endswith("Score")
        and name not in ("Score", "AttentionRNNCell")
        and not re.search(rf"\b{name}\b", code)
    ]
    assert not missing, f"README has no example for {missing}"


@pytest.mark.tf_only
@pytest.mark.parametrize("index", range(len(_section_examples("Layers"))))
def test_readme_layer_example_runs(index):
    code = _section_examples("Layers")[index]
    namespace = {"__name__": f"readme_example_{index}"}
    exec(compile(code, f"<README Layers example {index}>", "exec"), namespace)
    assert "model" in namespace or "step" in namespace
