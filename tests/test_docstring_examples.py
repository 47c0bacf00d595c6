"""Every docstring example runs: the `>>>` examples (doctest) and the
```python blocks of every module in the packages below.

A package's examples are found by walking its modules, so a new example
is tested the moment it is written.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

from tests.testing import run_docstring_example

pytestmark = pytest.mark.tf_only

PACKAGES = ("layers", "zoo", "experiments", "benchmarks")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules():
    for package in PACKAGES:
        root = importlib.import_module(package)
        yield root
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            yield importlib.import_module(info.name)


def _members(module):
    """The module and the classes, functions and methods it defines."""
    yield module
    for _, obj in inspect.getmembers(module):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            yield obj
            for name, member in vars(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member) and not name.startswith("__"):
                    yield member
        elif inspect.isfunction(obj):
            yield obj


MODULES = list(_modules())
DOCTESTS = {
    test.name: test
    for module in MODULES
    for test in doctest.DocTestFinder().find(module)
    if test.examples
}
CODE_BLOCKS = {
    f"{member.__module__}.{member.__qualname__}": member
    for module in MODULES
    for member in _members(module)
    # Own docstrings only (`getdoc` would inherit TFDS's examples).
    if "```python" in (member.__doc__ or "")
}


def test_the_examples_are_found():
    # Guards the discovery itself: examples known to exist are collected.
    assert "zoo.resnet.cifar_resnet.cifar_resnet" in DOCTESTS
    assert "zoo.decoding.greedy_search" in CODE_BLOCKS


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_doctest_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(DOCTESTS[name])
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"


@pytest.mark.parametrize("name", sorted(CODE_BLOCKS))
def test_code_block_examples_run(name):
    run_docstring_example(CODE_BLOCKS[name])
