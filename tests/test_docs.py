"""README.md and docs/: the examples run as written, the links resolve.

Every ```python block of the README and of docs/*.md runs, except those
that read a finished run folder (`runs/...`), which the experiment tests
cover instead.
"""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", _read(path), flags=re.S)


def _runnable_examples():
    examples = []
    for path in PAGES:
        for index, code in enumerate(_python_blocks(path)):
            if "runs/" not in code:
                name = f"{os.path.relpath(path, ROOT)}:{index}"
                examples.append(pytest.param(code, id=name))
    return examples


def _anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped."""
    anchors = set()
    in_code = False
    for line in _read(path).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_readme_is_short():
    assert len(_read(README).splitlines()) <= 400


def test_every_layer_family_has_an_example_in_the_layer_reference():
    import layers

    code = "\n".join(_python_blocks(os.path.join(ROOT, "docs", "layers.md")))
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
    assert not missing, f"docs/layers.md has no example for {missing}"


@pytest.mark.parametrize("path", PAGES, ids=os.path.basename)
def test_relative_links_resolve(path):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _read(path)):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        file_part, _, anchor = target.partition("#")
        linked = (
            os.path.normpath(os.path.join(os.path.dirname(path), file_part))
            if file_part
            else path
        )
        if not os.path.exists(linked):
            broken.append(target)
        elif anchor and linked.endswith(".md"):
            if anchor not in _anchors(linked):
                broken.append(target)
    assert not broken, f"{os.path.relpath(path, ROOT)}: broken links {broken}"


def test_readme_links_every_docs_page():
    text = _read(README)
    unlinked = [
        page
        for page in PAGES[1:]
        if f"docs/{os.path.basename(page)}" not in text
    ]
    assert not unlinked


@pytest.mark.tf_only
@pytest.mark.parametrize("code", _runnable_examples())
def test_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that save write here
    namespace = {"__name__": "docs_example"}
    exec(compile(code, "<docs example>", "exec"), namespace)
    defined = set(namespace) - {"__name__", "__builtins__"}
    assert defined, "the example defines nothing"
