"""The one experiment runner of every task: config -> trained, evaluated,
exported model in a run folder (see `experiments.rundir` for its layout).

`run(config)` validates the config through the task plugin, creates the
`tf.distribute` strategy (`--strategy`), seeds (op determinism with
`train.deterministic`), opens (or resumes) the run folder, builds the model
and optimiser inside the strategy scope, trains with `model.fit` on the
task's `TrainStream` (every global batch split exactly between replicas and
workers; a resumed run sees the batches of an uninterrupted one),
checkpoints every epoch crash-safely (`training.RunCheckpoint`, a
`BackupAndRestore`: an interrupted run restarted with the same command and
`--out` continues from its last finished epoch), evaluates through the task,
plots the training curves, exports the SavedModel atomically and writes
`metrics.json` last. Under `MultiWorkerMirroredStrategy` every worker
trains; only the chief writes the run folder.
"""

import contextlib
import json
import os
import platform
import sys
import time

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

from experiments import atomic
from experiments import config as config_lib
from experiments import data as data_lib
from experiments import export as export_lib
from experiments import plots
from experiments import report
from experiments import rundir as rundir_lib
from experiments import training
from experiments.errors import DamagedDataError
from experiments.errors import DiskFullError
from experiments.errors import NonFiniteLossError
from experiments.errors import RunInterrupted
from experiments.errors import UserError
from experiments.tasks import get_task
from experiments.tensorboard import ScalarLogger


def _say(message):
    print(message, flush=True)


def _versions():
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__,
        "keras_backend": keras.backend.backend(),
    }


def _devices():
    return [d.device_type for d in tf.config.list_physical_devices()]


def check_train_config(train):
    """Cheap checks of `TrainConfig` values before any data is read."""

    if train.optimizer not in training.OPTIMIZERS:
        raise UserError(
            f"Unknown train.optimizer {train.optimizer!r}. Choose one of: "
            f"{', '.join(training.OPTIMIZERS)}"
        )
    if train.schedule not in training.SCHEDULES:
        raise UserError(
            f"Unknown train.schedule {train.schedule!r}. Choose one of: "
            f"{', '.join(training.SCHEDULES)}"
        )
    if train.epochs < 0:
        raise UserError(f"train.epochs must be >= 0. Received: {train.epochs}")
    if train.learning_rate <= 0:
        raise UserError(
            f"train.learning_rate must be > 0. Received: {train.learning_rate}"
        )
    if not 0 <= train.label_smoothing < 1:
        raise UserError(
            "train.label_smoothing must be in [0, 1). Received: "
            f"{train.label_smoothing}"
        )
    if not 0 <= train.ema_momentum < 1:
        raise UserError(
            "train.ema_momentum must be in [0, 1) (0: no weight average). "
            f"Received: {train.ema_momentum}"
        )


def run(
    config,
    *,
    name="experiment",
    out=None,
    data_dir=None,
    strategy="default",
    runs_root="runs",
    verbose="auto",
    callbacks=(),
):
    """Runs one experiment; returns its final metrics dict.

    Args:
        config: a resolved `ExperimentConfig`.
        name: experiment name (folder stem of a default run folder).
        out: run folder; `None` creates `runs_root/<name>-<timestamp>`. An
            existing folder of the same config is resumed.
        data_dir: TFDS data directory (`None`: TFDS's default).
        strategy: `default`, `mirrored`, `multi_worker` or `tpu`.
        runs_root: parent of default run folders.
        verbose: Keras `fit` verbosity.
        callbacks: extra Keras callbacks (tests use them to interrupt).

    Returns:
        The dict written to `metrics.json` (with `run_dir` added).

    Raises:
        UserError: any problem the user can fix (exit status 2 on the
            command line).
    """

    run_start = time.perf_counter()
    task = get_task(config.task)
    task.validate(config)
    check_train_config(config.train)
    if config.serving_max_batch < 0:
        raise UserError(
            "serving_max_batch must be >= 0 (0: the default). Received: "
            f"serving_max_batch={config.serving_max_batch}"
        )
    if strategy not in training.STRATEGIES:
        raise UserError(
            f"Unknown strategy {strategy!r}. Choose one of: "
            f"{', '.join(training.STRATEGIES)}"
        )
    # The strategy first: the multi-worker strategy must configure the
    # process's collective ops before any other TensorFlow work.
    dist = training.make_strategy(strategy)
    role = training.worker_role(dist)
    if role.num_workers > 1 and not out:
        raise UserError(
            f"--strategy {strategy} with {role.num_workers} workers needs "
            "--out DIR: the same run folder on every worker, on storage "
            "they all can read (the chief writes it)."
        )
    keras.backend.clear_session()
    training.set_seed(config.seed, config.train.deterministic)
    # Data before the run folder: missing data leaves no empty folder.
    with _reported_faults(config, data_dir):
        data = task.load_data(config, data_dir, dist)
    stream = data.train_stream
    if stream is not None:
        stream.check(dist.num_replicas_in_sync)
    # The model before the run folder too: a bad model argument leaves no
    # folder behind, so the corrected command can reuse the same --out.
    with dist.scope():
        model = task.build_model(config, data)
        optimizer = training.build_optimizer(config.train, data.steps_per_epoch)
        compile_kwargs = {}
        if config.train.jit_compile is not None:
            compile_kwargs["jit_compile"] = config.train.jit_compile
        model.compile(
            optimizer=optimizer,
            loss=task.loss(config),
            metrics=task.metrics(config, data),
            steps_per_execution=config.train.steps_per_execution,
            run_eagerly=config.train.run_eagerly,
            **compile_kwargs,
        )
    if role.chief:
        run_dir = rundir_lib.RunDir(
            out or rundir_lib.create_unique(runs_root, name), config
        )
    else:
        run_dir = rundir_lib.WorkerDir(out, config, role.name)
    with _reported_faults(config, data_dir, run_dir.path), run_dir:
        checkpoint = training.RunCheckpoint(run_dir.folder("checkpoints"))
        if not role.chief:
            # Keras' multi-worker pattern: a worker restores the chief's
            # checkpoint but writes its own into a private folder.
            checkpoint.copy_from(run_dir.shared_file("checkpoints"))
        resumed_from = min(checkpoint.resolve(), config.train.epochs)
        if role.num_workers > 1:
            training.check_same_epoch(dist, resumed_from)
        if role.chief:
            _record_start(run_dir, strategy, data_dir, resumed_from, dist)
            _say(
                f"Run folder: {run_dir.path} (to resume: --out {run_dir.path})"
            )
        else:
            _say(
                f"{role.name}: training for the chief's run folder {out}; "
                f"this worker's files go to {run_dir.path}."
            )
        if resumed_from:
            _say(
                f"Resuming from the checkpoint of epoch {resumed_from}/"
                f"{config.train.epochs}."
            )
        _say(
            f"{config.model.name}: {model.count_params():,} parameters; "
            f"{data.info.get('num_train_examples', '?')} training examples, "
            f"{data.steps_per_epoch} steps per epoch of "
            f"{config.data.batch_size} (global batch; "
            f"{dist.num_replicas_in_sync} replica(s)), "
            f"{config.train.epochs} epochs."
        )
        if config.train.epochs == 0:
            _say(f"warning: {UNTRAINED}")
        step_timer = training.StepTimer()
        fit_callbacks = [
            # History first, then the checkpoint: if the process dies in
            # between, the resumed run drops the extra history row.
            training.HistoryLogger(run_dir.file("history.csv")),
            training.StopOnNonFiniteLoss(),
            checkpoint,
            *(
                [ScalarLogger(run_dir.folder("tensorboard"))]
                if role.chief
                else []
            ),
            step_timer,
            *task.callbacks(config, data, run_dir.path),
            *callbacks,
        ]
        fit_kwargs = dict(task.fit_kwargs(config, data))
        finished = resumed_from >= config.train.epochs
        if stream is not None and not finished:
            epochs = config.train.epochs
            train = dist.distribute_datasets_from_function(
                lambda context: stream.dataset(context, resumed_from, epochs)
            )
            # One iterator across epochs (see TrainStream.dataset).
            fit_kwargs["steps_per_epoch"] = stream.steps_per_epoch
        else:
            train = training.shard_by_data(data.train)
        start = time.perf_counter()
        if not finished:
            model.fit(
                train,
                validation_data=training.shard_by_data(data.validation),
                epochs=config.train.epochs,
                callbacks=fit_callbacks,
                verbose=_verbosity(verbose),
                shuffle=False,  # the tf.data pipeline shuffles
                **fit_kwargs,
            )
        else:  # finished earlier: the last checkpoint is the final model
            checkpoint.restore(model)
            # As `fit` ends: the weight average, if any, replaces the raw
            # weights (the checkpoint holds both).
            model.optimizer.finalize_variable_values(model.trainable_variables)
        train_time = time.perf_counter() - start
        if not role.chief:
            history = training.read_history(run_dir.file("history.csv"))
            _say(f"{role.name} finished; the chief writes the outputs.")
            return {"chief": False, "worker": role.name, "history": history}
        if role.num_workers > 1:
            # The other workers have left: evaluating or exporting the
            # distributed model would wait for them in collective ops.
            model = _local_copy(task, config, data, model)

        start = time.perf_counter()
        config, chosen = task.choose_on_validation(model, data, config)
        metrics = task.evaluate(model, data, config, run_dir.path)
        metrics.update(chosen)
        eval_time = time.perf_counter() - start
        history = training.read_history(run_dir.file("history.csv"))
        if config.eval.plots and history:
            plots.training_curves(
                history,
                os.path.join(run_dir.folder("plots"), "training_curves.png"),
                title=f"{name}: {config.model.name}",
                schedule=plots.sample_schedule(
                    training.learning_rate(config.train, data.steps_per_epoch),
                    data.steps_per_epoch,
                    config.train.epochs,
                ),
            )
        _save_keras(model, run_dir.file("model.keras"))
        run_dir.record_output("model.keras")
        export_time = 0.0
        if config.export:
            start = time.perf_counter()
            with export_lib.serving_limits(config.serving_max_batch):
                task.export(
                    model, data, config, run_dir.file(rundir_lib.SAVED_MODEL)
                )
            run_dir.record_output(rundir_lib.SAVED_MODEL)
            export_time = time.perf_counter() - start
        metrics.update(
            {
                "experiment": name,
                "model": config.model.name,
                "num_parameters": int(model.count_params()),
                "epochs": config.train.epochs,
                "epochs_run_by_this_process": config.train.epochs
                - resumed_from,
                "resumed_from_epoch": resumed_from,
                "strategy": strategy,
                "num_replicas": int(dist.num_replicas_in_sync),
                "num_workers": role.num_workers,
                "global_batch_size": int(config.data.batch_size),
                "train_time_s_this_process": round(train_time, 2),
                "train_time_s_all_epochs": round(
                    sum(r.get("epoch_time_s", 0.0) for r in history), 2
                ),
                "eval_time_s": round(eval_time, 2),
                "export_time_s": round(export_time, 2),
                **step_timer.summary(),
                "data": {
                    k: v for k, v in data.info.items() if k != "label_names"
                },
                "devices": _devices(),
            }
        )
        metrics["wall_time_s_this_process"] = round(
            time.perf_counter() - run_start, 2
        )
        if config.train.epochs == 0:
            metrics["warning"] = UNTRAINED
        _keep_better_results(run_dir, task.primary_metric, metrics)
        metrics["field_descriptions"] = {
            key: text
            for key, text in FIELD_DESCRIPTIONS.items()
            if key in metrics or key.endswith("*")
        }
        rundir_lib.write_json(run_dir.file("metrics.json"), metrics)
        summary = task.summary_line(metrics)
        report.write_run_report(run_dir.path, summary)
        _say(summary)
        _say(f"Outputs in {run_dir.path}")
        metrics["run_dir"] = run_dir.path
        return metrics


def _local_copy(task, config, data, model):
    """`model` rebuilt outside the strategy scope with the same weights."""
    local = task.build_model(config, data)
    local.set_weights(model.get_weights())
    return local


def _verbosity(verbose):
    # Progress bars only on a terminal; one line per epoch in logs.
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def _save_keras(model, path):
    """Saves the `.keras` model atomically, after checking the space."""

    with atomic.replacing(path, size=training.weights_file_size(model)) as tmp:
        model.save(tmp)


UNTRAINED = (
    "train.epochs=0: the model is untrained (random weights); its metrics "
    "and export are not results."
)


@contextlib.contextmanager
def _reported_faults(config, data_dir, run_path=None):
    """Turns faults the user can fix into one-line `UserError`s.

    A full disk, damaged data or a non-finite loss end the run with one
    line saying what happened and, once a run folder exists, how to
    resume it (its last good checkpoint is intact); so does Ctrl-C.
    """
    resume = f" Then rerun with --out {run_path} to resume." if run_path else ""
    try:
        yield
    except DiskFullError as err:
        raise DiskFullError(f"{err} Free some space.{resume}") from None
    except DamagedDataError as err:
        raise DamagedDataError(f"{err}{resume}") from None
    except NonFiniteLossError as err:
        where = f" Run folder: {run_path}." if run_path else ""
        raise NonFiniteLossError(f"{err}{where}") from None
    except UserError:
        raise
    except KeyboardInterrupt:
        if not run_path:
            raise
        raise RunInterrupted(
            f"interrupted: rerun the same command with --out {run_path} to "
            "resume from the last finished epoch"
        ) from None
    except tf.errors.DataLossError as err:
        error = data_lib.damaged_data_error(config.data.name, data_dir, err)
        raise DamagedDataError(f"{error}{resume}") from None
    except Exception as err:
        if atomic.is_disk_full(err):
            where = run_path or "the output folder"
            raise DiskFullError(
                f"Disk full while writing {where} "
                f"({training.first_line(err)}). Free some space.{resume}"
            ) from None
        raise


def _keep_better_results(run_dir, metric, metrics):
    """Warns (and keeps the old file) when a rerun of a finished run ends
    with a worse `metric` than the `metrics.json` it replaces."""
    path = run_dir.file("metrics.json")
    try:
        with open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        return
    old, new = previous.get(metric), metrics.get(metric)
    if not isinstance(old, (int, float)):
        return
    if isinstance(new, (int, float)) and new >= old:
        return
    kept = run_dir.file("metrics.previous.json")
    atomic.write_json(kept, previous)
    note = (
        f"{metric} {new} is worse than the {old} of the results this rerun "
        f"replaced; those are kept in {kept}."
    )
    metrics.setdefault("notes", []).append(note)
    _say(f"warning: {note}")


def _record_start(run_dir, strategy, data_dir, resumed_from, dist):
    record = run_dir.read_record()
    record.setdefault("starts", []).append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": [os.path.basename(sys.executable), *sys.argv],
            "cwd": os.getcwd(),
            "strategy": strategy,
            "num_replicas": int(dist.num_replicas_in_sync),
            "tf_config": os.environ.get("TF_CONFIG"),
            "data_dir": data_dir,
            "resumed_from_epoch": resumed_from,
            "host": platform.node(),
            "versions": _versions(),
        }
    )
    run_dir.write_record(record)


# What the fields of metrics.json mean (written into it, and shown by the
# report beside each value). Tasks add their own scores beside these.
FIELD_DESCRIPTIONS = {
    "test_*": "scores on the test split (data.test_split), never used for "
    "any choice, after the last epoch",
    "num_parameters": "trainable and non-trainable weights of the model",
    "epochs_run_by_this_process": "epochs trained by this process (fewer "
    "than `epochs` when it resumed a run)",
    "resumed_from_epoch": "epochs already finished when this process "
    "started (0: a fresh run)",
    "global_batch_size": "examples per training step, over all replicas",
    "train_time_s_this_process": "seconds this process spent in training",
    "train_time_s_all_epochs": "seconds of all epochs' training, summed "
    "over every process of the run (history.csv `epoch_time_s`)",
    "eval_time_s": "seconds of the final evaluation: settings chosen on "
    "the validation split, then the test split",
    "length_penalty_validation_bleu": "beam-search BLEU on the validation "
    "split per eval.length_penalty_choices; the best is `length_penalty`",
    "length_penalty_note": "why eval.length_penalty_choices were not tried",
    "export_time_s": "seconds writing the SavedModel to saved_model/1/",
    "train_step_time_ms_median": "median wall time of one training step "
    "(the first 5 steps, which compile, left out)",
    "train_steps_timed": "training steps behind that median",
    "data": "the data as read: dataset, splits (validation held out of "
    "train where the dataset has no validation split), example counts",
    "devices": "the devices training ran on",
    "wall_time_s_this_process": "seconds from start to finish of this "
    "process, data loading and export included",
    "warning": "why these numbers are not a trained model's (train.epochs=0)",
    "notes": "caveats: non-finite values written as null, results a rerun "
    "replaced",
}


def resolve(
    name, overrides=(), epochs=None, seed=None, deterministic=False, base=None
):
    """The named experiment's config (or `base`, e.g. a saved config) with
    overrides, `--epochs`, `--seed` and `--deterministic`."""
    config = base if base is not None else config_lib.get_experiment(name)
    config = config_lib.apply_overrides(config, overrides)
    if epochs is not None:
        config.train.epochs = int(epochs)
    if seed is not None:
        config.seed = int(seed)
    if deterministic:
        config.train.deterministic = True
    return config
