"""The project installs with pip: metadata, requirements and a fresh venv.

The fast tests check `pyproject.toml` against the source tree and the
requirements files; the slow one creates a new virtual environment,
installs the package from a copy of this checkout (plain, from git, and
editable) and imports it from another folder.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from setuptools import find_packages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_LEVEL = ("layers", "zoo", "experiments")
DEV_TOOLS = ("pytest", "pytest-xdist", "hypothesis", "ruff", "jax", "jaxlib")


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _requirement_names(filename):
    names = []
    with open(os.path.join(ROOT, filename)) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                names.append(_name(line))
    return names


def _name(requirement):
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_every_package_of_the_source_tree_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set(find_packages(ROOT, include=[f"{t}*" for t in TOP_LEVEL]))
    assert listed == found, (
        f"pyproject.toml [tool.setuptools] packages: add {found - listed}, "
        f"remove {listed - found}"
    )


def test_console_script_is_the_experiments_command_line():
    from experiments import cli

    target = _pyproject()["project"]["scripts"]["attention-zoo"]
    assert target == "experiments.cli:main"
    assert cli.main(["show", "digits"]) == 0


def test_runtime_requirements_hold_no_development_tools():
    runtime = _requirement_names("requirements.txt")
    assert not set(runtime) & set(DEV_TOOLS)
    declared = [_name(d) for d in _pyproject()["project"]["dependencies"]]
    assert sorted(declared) == sorted(runtime)


def test_development_requirements_extend_the_runtime_ones():
    with open(os.path.join(ROOT, "requirements-dev.txt")) as f:
        assert "-r requirements.txt" in f.read()
    dev = set(_requirement_names("requirements-dev.txt"))
    assert set(DEV_TOOLS) <= dev
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {_name(r) for r in extras["dev"] + extras["jax"]} == set(DEV_TOOLS)


def test_licence_is_apache_2():
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert _pyproject()["project"]["license"] == "Apache-2.0"


def _copy_of_checkout(dest):
    ignore = shutil.ignore_patterns(
        ".venv", "runs", "build", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _check(cmd, cwd):
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_fresh_venv_installs_and_imports_from_another_folder(tmp_path):
    """Downloads the runtime dependencies (about 1 GB) into a new venv."""
    source = _copy_of_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _check([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    script = str(venv / "bin" / "attention-zoo")
    probe = (
        "import layers, zoo, experiments\n"
        "model = zoo.build('resnet20', input_shape=(8, 8, 1), num_classes=3)\n"
        "print(layers.__file__)\n"
    )

    def installed_from(*pip_args):
        _check([python, "-m", "pip", "install", "-q", *pip_args], elsewhere)
        location = _check([python, "-c", probe], elsewhere).strip()
        listing = _check([script, "list", "digits*"], elsewhere)
        assert "digits_cbam_resnet20" in listing
        return location

    # A plain install: the packages land in the venv, not in the checkout.
    location = installed_from(str(source))
    assert location.startswith(str(venv))
    if shutil.which("git") and os.path.exists(os.path.join(ROOT, ".git")):
        repo = tmp_path / "repo"
        _check(["git", "clone", "-q", ROOT, str(repo)], tmp_path)
        location = installed_from(
            "--no-deps", "--force-reinstall", f"git+file://{repo}"
        )
        assert location.startswith(str(venv))
    # Editable: imports resolve to the checkout.
    location = installed_from("--no-deps", "-e", str(source))
    assert location.startswith(str(source))
