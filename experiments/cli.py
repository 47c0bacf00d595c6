"""Command line: `python -m experiments list | show | run | ablate | compare`
(installed as `attention-zoo`).

Every mistake a user can fix (unknown names, bad `--set` keys or values,
missing data, unwritable `--out`) ends with one message on stderr and exit
status 2, never a traceback. Options may come before or after the
experiment name. A new subcommand is one `sub.add_parser` in
`build_parser` and one entry in `COMMANDS`.
"""

import argparse
import contextlib
import fnmatch
import json
import os
import sys
import tempfile
import textwrap

from experiments import config as config_lib
from experiments import offline_data
from experiments import predict
from experiments.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
LIST_WIDTH = 100  # columns `list` fits into without --wide

# What TensorFlow's C++ runtime prints on every start of a CPU-only
# machine, before its logging can be configured: CUDA stubs, CPU feature
# and oneDNN notices. Anything else it prints still reaches stderr.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog()",
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_dnn.cc",
    "cuda_fft.cc",
    "cuda_blas.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "port.cc:",
)


@contextlib.contextmanager
def _filtered_native_stderr():
    """Runs the block with file descriptor 2 captured; then replays every
    captured line except the start-up noise above."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if not any(noise in line for noise in _STARTUP_NOISE):
                    print(line, file=sys.stderr)


def _start_tensorflow():
    """Imports TensorFlow without its start-up noise (set
    TF_CPP_MIN_LOG_LEVEL yourself to see TensorFlow's own log)."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with _filtered_native_stderr():
        import tensorflow as tf  # deferred: this function is its import

        tf.config.list_physical_devices()  # initialises CUDA, if any
    from absl import logging as absl_logging  # comes with TensorFlow

    absl_logging.set_verbosity(absl_logging.ERROR)


def _add_override_options(parser, set_help):
    """`--epochs N` and `--set KEY=VALUE ...` (as `overrides`), with
    `set_help` describing `--set`."""
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help=set_help,
    )


def _add_run_options(parser):
    parser.add_argument("name", nargs="?", help="experiment name (see `list`)")
    _add_override_options(
        parser,
        "config overrides, e.g. train.learning_rate=0.05 "
        "model.attention=se data.batch_size=64",
    )
    parser.add_argument("--seed", type=int, help="override the random seed")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism (train.deterministic=true): with "
        "the same --seed, two runs give identical metrics",
    )
    parser.add_argument(
        "--data-dir", help="TFDS data directory (default: TFDS's own)"
    )
    parser.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy (batch size is the global batch)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no per-epoch progress bars"
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Train, evaluate and export Attention Zoo models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list named experiments")
    p_list.add_argument(
        "pattern", nargs="?", default="*", help="wildcard filter"
    )
    p_list.add_argument(
        "--models", action="store_true", help="list zoo models instead"
    )
    p_list.add_argument(
        "--wide",
        action="store_true",
        help=f"every column in full (default: fit {LIST_WIDTH} columns)",
    )

    p_show = sub.add_parser("show", help="print an experiment's config")
    p_show.add_argument("name", nargs="?")
    p_show.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[]
    )
    p_show.add_argument(
        "--config", help="a saved config.json instead of an experiment name"
    )

    p_run = sub.add_parser("run", help="run one experiment")
    _add_run_options(p_run)
    p_run.add_argument(
        "--out",
        help="run folder (default: runs/<name>-<time>); an existing run "
        "folder of the same config is resumed",
    )
    p_run.add_argument(
        "--config",
        help="re-run a saved configuration (a run's config.json) instead "
        "of a named experiment; --set still applies on top",
    )

    p_ablate = sub.add_parser(
        "ablate",
        help="train several models x seeds and tabulate mean ± std",
    )
    _add_run_options(p_ablate)
    p_ablate.add_argument(
        "--models",
        help="comma-separated zoo models, each optionally with "
        "builder arguments NAME:key=value[:key=value] (default: the "
        "task's comparison, e.g. plain/se/cbam/eca variants of a ResNet, "
        "attention/max-pool/hard-attention/Transformer for text)",
    )
    p_ablate.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)"
    )
    p_ablate.add_argument(
        "--out",
        help="folder of the ablation (default: runs/ablate-<name>-<time>)",
    )
    p_ablate.add_argument(
        "--timing-rounds",
        type=int,
        default=50,
        help="step-timing rounds (each times 2 steps of every model)",
    )

    predict.add_parser(sub)

    p_compare = sub.add_parser(
        "compare",
        help="run several experiments (wildcards allowed) and tabulate "
        "their results",
    )
    p_compare.add_argument(
        "names", nargs="*", help='experiment names or patterns ("ding_*")'
    )
    _add_override_options(
        p_compare, "config overrides applied to every experiment"
    )
    p_compare.add_argument(
        "--data-dir", help="TFDS data directory (default: TFDS's own)"
    )
    p_compare.add_argument("--strategy", default="default", choices=STRATEGIES)
    p_compare.add_argument(
        "--out", help="folder of the comparison (default: runs/compare-<time>)"
    )
    p_compare.add_argument(
        "--quiet", action="store_true", help="no per-epoch progress bars"
    )
    return parser


def _fit(widths, total):
    """Column widths shrunk (widest first, never the first column: names
    are copied into commands) until the row fits `total`."""
    widths = list(widths)
    minimum = 6
    while sum(widths) + 2 * (len(widths) - 1) > total:
        widest = max(range(1, len(widths)), key=widths.__getitem__)
        if widths[widest] <= minimum:
            break
        widths[widest] -= 1
    return widths


def _cell(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_table(header, rows, wide, indent=""):
    widths = [
        max(len(r[i]) for r in [header, *rows]) for i in range(len(header))
    ]
    if not wide:
        widths = _fit(widths, LIST_WIDTH - len(indent))
    for row in [header, *rows]:
        cells = [_cell(c, w).ljust(w) for c, w in zip(row, widths)]
        print((indent + "  ".join(cells)).rstrip())


def _shell_lines(command, width=LIST_WIDTH - 6):
    """A long shell command broken into continued lines (at spaces)."""
    lines = textwrap.wrap(
        command, width, break_long_words=False, break_on_hyphens=False
    )
    return " \\\n      ".join(lines)


def _list_models(args):
    # Commands import TensorFlow only when they need it, so that `list`
    # and `--help` answer at once.
    _start_tensorflow()
    import zoo  # loads TensorFlow: only when models are listed

    rows = [
        (name, info.task, info.paper)
        for name in zoo.list_models(args.pattern)
        for info in [zoo.get_model_info(name)]
    ]
    if not rows:
        raise UserError(f"No zoo model matches {args.pattern!r}.")
    _print_table(("MODEL", "TASK", "PAPER"), rows, args.wide)
    return 0


def _list(args):
    if args.models:
        return _list_models(args)
    names = [
        n
        for n in config_lib.experiment_names()
        if fnmatch.fnmatch(n, args.pattern)
    ]
    if not names:
        raise UserError(f"No experiment matches {args.pattern!r}.")
    # Names registered for the same config are aliases: one row each.
    groups = {}
    for name in names:
        config = config_lib.get_experiment(name)
        key = json.dumps(config_lib.to_dict(config), sort_keys=True)
        groups.setdefault(key, (config, []))[1].append(name)
    by_task, aliases, datasets = {}, [], set()
    for config, group in groups.values():
        main = max(group, key=len)  # the name that says what it runs
        aliases += [(alias, main) for alias in sorted(group) if alias != main]
        datasets.add(config.data.name)
        arguments = " ".join(
            f"{key}={value}" for key, value in config.model.kwargs.items()
        )
        row = (main, config.model.name, str(config.train.epochs), arguments)
        if args.wide:
            row += (config.description,)
        group = (config.task, config.data.name)
        by_task.setdefault(group, []).append(row)
    header = ("NAME", "MODEL", "EPOCHS", "MODEL ARGUMENTS")
    if args.wide:
        header += ("DESCRIPTION",)
    for (task, dataset), rows in sorted(by_task.items()):
        print(f"{task} on {dataset}:")
        _print_table(header, sorted(rows), args.wide, indent="  ")
        print()
    if aliases:
        text = "Aliases: " + ", ".join(f"{a} = {m}" for a, m in aliases)
        width = sys.maxsize if args.wide else LIST_WIDTH
        print(textwrap.fill(text, width, subsequent_indent="  "))
    needed = sorted(datasets & set(offline_data.PREREQUISITES))
    if needed:
        print("\nOffline datasets that need a package first:")
        for dataset in needed:
            what, command = offline_data.PREREQUISITES[dataset]
            print(f"  {dataset}: {what}:\n    {_shell_lines(command)}")
    return 0


def _config_of(args, command):
    """The config of `run`/`show`: a named experiment or `--config FILE`,
    with the overrides applied."""
    if args.config and args.name:
        raise UserError(
            f"{command} takes an experiment name or --config, not both. "
            f"Received: {args.name!r} and --config {args.config!r}"
        )
    if args.config:
        config = config_lib.load_config_file(args.config)
        return config_lib.apply_overrides(config, args.overrides)
    if not args.name:
        raise UserError(
            f"{command} needs an experiment name (`python -m experiments "
            "list` shows them) or --config path/to/config.json."
        )
    return None


def _show(args):
    config = _config_of(args, "show") or config_lib.apply_overrides(
        config_lib.get_experiment(args.name), args.overrides
    )
    print(json.dumps(config_lib.to_dict(config), indent=2))
    return 0


def _training_options(args):
    """The options `run`, `ablate` and `compare` pass on to training."""
    return {
        "out": args.out,
        "data_dir": args.data_dir,
        "strategy": args.strategy,
        "verbose": 2 if args.quiet else "auto",
    }


def _run(args):
    base = _config_of(args, "run")
    _start_tensorflow()
    from experiments import runner  # loads TensorFlow: only when run

    config = runner.resolve(
        args.name,
        args.overrides if base is None else (),
        args.epochs,
        args.seed,
        deterministic=args.deterministic,
        base=base,
    )
    # A saved config's run is named after the folder it came from.
    name = args.name or os.path.basename(
        os.path.dirname(os.path.abspath(args.config))
    )
    runner.run(
        config,
        name=name or "config",
        **_training_options(args),
    )
    return 0


def _parse_list(text, kind, convert=str):
    try:
        values = [convert(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"--{kind} must be a comma-separated list. Received: {text!r}"
        ) from None
    if not values:
        raise UserError(f"--{kind} is empty")
    return values


def _ablate(args):
    if not args.name:
        raise UserError(
            "ablate needs an experiment name (`python -m experiments list`)."
        )
    _start_tensorflow()
    from experiments import ablate  # loads TensorFlow: only when run

    overrides = list(args.overrides)
    if args.seed is not None:
        raise UserError("ablate takes --seeds (a list), not --seed")
    if args.deterministic:
        overrides.append("train.deterministic=true")
    ablate.ablate(
        args.name,
        models=_parse_list(args.models, "models") if args.models else None,
        seeds=_parse_list(args.seeds, "seeds", int),
        overrides=overrides,
        epochs=args.epochs,
        timing_rounds=args.timing_rounds,
        **_training_options(args),
    )
    return 0


def _compare(args):
    if not args.names:
        raise UserError(
            "compare needs experiment names or patterns, e.g. "
            "`python -m experiments compare 'ding_*'`."
        )
    _start_tensorflow()
    from experiments import compare  # loads TensorFlow: only when run

    compare.compare(
        args.names,
        overrides=list(args.overrides),
        epochs=args.epochs,
        **_training_options(args),
    )
    return 0


def _predict(args):
    _start_tensorflow()
    return predict.main(args)


COMMANDS = {
    "list": _list,
    "show": _show,
    "run": _run,
    "ablate": _ablate,
    "compare": _compare,
    "predict": _predict,
}


def _names_among_overrides(args):
    """Moves experiment names that `--set KEY=VALUE ...` swallowed (when
    options come first: `run --set train.epochs=1 digits`) back to the
    experiment name(s)."""
    overrides = getattr(args, "overrides", None)
    if not overrides:
        return
    if hasattr(args, "names"):  # compare: names and overrides may mix
        args.names += [o for o in overrides if "=" not in o]
        args.overrides = [o for o in overrides if "=" in o]
    elif getattr(args, "name", "") is None and "=" not in overrides[-1]:
        # Only the last word: a value missing its `=` elsewhere is still
        # reported as a malformed override.
        args.name = overrides[-1]
        args.overrides = overrides[:-1]


def main(argv=None):
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: usage errors exit with 2
        return int(exit_.code or 0)
    _names_among_overrides(args)
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt as interrupt:
        # A `RunInterrupted` names the run folder to resume.
        print(
            str(interrupt)
            or "interrupted: rerun the same command to start again",
            file=sys.stderr,
        )
        return 130
