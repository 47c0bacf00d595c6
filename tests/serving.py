"""Fresh-process checks: `.keras` reload and SavedModel serving.

Two claims every layer makes are only provable in another process:
1. a functional model using the layer reloads from its `.keras` file in a
   fresh Python process (which imports `layers` for the registrations) and
   gives equal outputs;
2. its `model.export()` SavedModel loads and runs with `tf.saved_model.load`
   in a process that never imports this project.
Starting a TensorFlow process costs seconds, so each helper checks a whole
batch of models in one child process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PACKAGES = ("layers", "zoo", "experiments", "benchmarks", "tests")

_RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import keras
    import layers  # noqa: F401  (registers the project's layers)
    cases = json.load(open({manifest!r}))
    for case in cases:
        model = keras.saving.load_model(case["keras_path"])  # safe_mode on
        data = np.load(case["data_path"])
        feed = [data[f"x{{i}}"] for i in range(case["num_inputs"])]
        out = keras.tree.flatten(model(feed if len(feed) > 1 else feed[0]))
        np.savez(case["reload_out"], *[np.asarray(o) for o in out])
    print("reloaded", len(cases))
    """
)

_SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path = [p for p in sys.path if p not in ("", {root!r})]
    import numpy as np
    import tensorflow as tf
    cases = json.load(open({manifest!r}))
    for case in cases:
        loaded = tf.saved_model.load(case["export_path"])
        fn = loaded.signatures["serving_default"]
        data = np.load(case["data_path"])
        kwargs = {{name: tf.constant(data[f"x{{i}}"])
                  for i, name in enumerate(case["input_names"])}}
        out = fn(**kwargs)
        np.savez(case["serve_out"], **{{k: v.numpy() for k, v in out.items()}})
    leaked = sorted(m for m in sys.modules
                    if m.split(".")[0] in {packages!r})
    assert not leaked, f"project modules imported: {{leaked}}"
    print("served", len(cases))
    """
)


def _run(script, cwd):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child process failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def check_fresh_process_round_trips(cases, tmp_path, atol=1e-5):
    """Saves, reloads and serves each model in fresh processes.

    Args:
        cases: list of `(name, model, inputs)`; `inputs` a list of NumPy
            arrays in the order of `model.inputs`.
        tmp_path: a `pathlib.Path` for the artefacts.
        atol: tolerance of the output comparisons.
    """
    manifest = []
    expected = {}
    for name, model, inputs in cases:
        inputs = list(inputs)
        base = tmp_path / name
        base.mkdir()
        data_path = str(base / "inputs.npz")
        np.savez(data_path, **{f"x{i}": x for i, x in enumerate(inputs)})
        keras_path = str(base / "model.keras")
        model.save(keras_path)
        export_path = str(base / "export")
        model.export(export_path, verbose=False)
        outputs = model(inputs if len(inputs) > 1 else inputs[0])
        import keras

        expected[name] = [np.asarray(o) for o in keras.tree.flatten(outputs)]
        manifest.append(
            {
                "name": name,
                "keras_path": keras_path,
                "export_path": export_path,
                "data_path": data_path,
                "num_inputs": len(inputs),
                "input_names": [t.name for t in model.inputs],
                "reload_out": str(base / "reload.npz"),
                "serve_out": str(base / "serve.npz"),
            }
        )
    manifest_path = str(tmp_path / "manifest.json")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)

    _run(
        _RELOAD_SCRIPT.format(root=REPO_ROOT, manifest=manifest_path),
        cwd=REPO_ROOT,
    )
    # The serving process starts outside the repository so that nothing of
    # the project is importable.
    _run(
        _SERVE_SCRIPT.format(
            root=REPO_ROOT, manifest=manifest_path, packages=PROJECT_PACKAGES
        ),
        cwd=str(tmp_path),
    )

    for case in manifest:
        name = case["name"]
        reload = np.load(case["reload_out"])
        got = [reload[f"arr_{i}"] for i in range(len(reload.files))]
        assert len(got) == len(expected[name]), name
        for g, e in zip(got, expected[name]):
            np.testing.assert_allclose(g, e, atol=atol, err_msg=name)
        served = np.load(case["serve_out"])
        served_outputs = [served[k] for k in served.files]
        assert served_outputs, f"{name}: serving returned nothing"
        first = expected[name][0]
        match = [
            s
            for s in served_outputs
            if s.shape == first.shape and np.allclose(s, first, atol=atol)
        ]
        assert match, f"{name}: served outputs differ from the model's"
