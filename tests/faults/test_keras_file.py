"""`.keras` files whose config was tampered with: one-line `ValueError`s
(weights that do not match the config, objects safe mode refuses)."""

import copy
import json
import zipfile

import keras
import pytest

import zoo


def _saved(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            keras.layers.Dense(2, name="d2"),
        ]
    )
    path = tmp_path / "good.keras"
    model.save(path)
    return path


def _with_config(source, target, edit):
    """Copies the `.keras` archive `source` to `target`, editing its
    config.json with `edit(config)`."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config["config"]["layers"])
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(target)


def _one_line(caught):
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_weights_that_do_not_match_the_config(tmp_path):
    def widen(layers):
        layers[2]["config"]["units"] = 5  # d2's kernel was saved as (3, 2)

    path = _with_config(_saved(tmp_path), tmp_path / "wide.keras", widen)
    with pytest.raises(ValueError) as caught:
        zoo.load_model(path)
    message = _one_line(caught)
    assert "weights do not match its config" in message
    assert "(3, 5)" in message and "(3, 2)" in message


def test_layer_without_weights_in_the_file(tmp_path):
    def add_layer(layers):
        extra = copy.deepcopy(layers[2])
        extra["config"]["name"] = "d3"
        extra.pop("build_config", None)
        layers.append(extra)

    path = _with_config(_saved(tmp_path), tmp_path / "extra.keras", add_layer)
    with pytest.raises(ValueError) as caught:
        zoo.load_model(path)
    message = _one_line(caught)
    assert "weights do not match" in message and "'d3'" in message


@pytest.mark.parametrize(
    "key, value",
    [
        (
            "kernel_initializer",
            {"module": "os", "class_name": "system", "config": {}},
        ),
        (
            "activation",
            {
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": "system",
            },
        ),
    ],
)
def test_config_calling_os_is_a_value_error(tmp_path, key, value):
    def inject(layers):
        layers[1]["config"][key] = value

    path = _with_config(_saved(tmp_path), tmp_path / "evil.keras", inject)
    with pytest.raises(ValueError) as caught:  # not Keras' TypeError
        zoo.load_model(path)
    message = _one_line(caught)
    assert "safe_mode=True" in message and "'os'" in message
