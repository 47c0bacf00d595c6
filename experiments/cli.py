"""Command line: `python -m experiments list | show | run | ablate`.

Every mistake a user can fix (unknown names, bad `--set` keys or values,
missing data, unwritable `--out`) ends with one message on stderr and exit
status 2, never a traceback.
"""

import argparse
import fnmatch
import json
import os
import sys

from experiments import config as config_lib
from experiments import predict
from experiments.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _add_run_options(parser):
    parser.add_argument("name", help="experiment name (see `list`)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="config overrides, e.g. train.learning_rate=0.05 "
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

    p_show = sub.add_parser("show", help="print an experiment's config")
    p_show.add_argument("name")
    p_show.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[]
    )

    p_run = sub.add_parser("run", help="run one experiment")
    _add_run_options(p_run)
    p_run.add_argument(
        "--out",
        help="run folder (default: runs/<name>-<time>); an existing run "
        "folder of the same config is resumed",
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
        "names", nargs="+", help='experiment names or patterns ("ding_*")'
    )
    p_compare.add_argument("--epochs", type=int, help="override train.epochs")
    p_compare.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="config overrides applied to every experiment",
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


def _list(args):
    if args.models:
        # The commands import what they need when they run, so that `list`
        # and `--help` never load TensorFlow.
        import zoo

        for name in zoo.list_models(args.pattern):
            info = zoo.get_model_info(name)
            print(f"{name:24s} {info.task:22s} {info.paper}")
        return 0
    names = [
        n
        for n in config_lib.experiment_names()
        if fnmatch.fnmatch(n, args.pattern)
    ]
    if not names:
        raise UserError(f"No experiment matches {args.pattern!r}.")
    rows = [("NAME", "TASK", "DATASET", "MODEL", "EPOCHS", "DESCRIPTION")]
    for name in names:
        config = config_lib.get_experiment(name)
        rows.append(
            (
                name,
                config.task,
                config.data.name,
                config.model.name,
                str(config.train.epochs),
                config.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print(
            "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5]
        )
    return 0


def _show(args):
    config = config_lib.apply_overrides(
        config_lib.get_experiment(args.name), args.overrides
    )
    print(json.dumps(config_lib.to_dict(config), indent=2))
    return 0


def _run(args):
    from experiments import runner  # TensorFlow: see `_list`

    config = runner.resolve(
        args.name,
        args.overrides,
        args.epochs,
        args.seed,
        deterministic=args.deterministic,
    )
    runner.run(
        config,
        name=args.name,
        out=args.out,
        data_dir=args.data_dir,
        strategy=args.strategy,
        verbose=2 if args.quiet else "auto",
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
    from experiments import ablate  # TensorFlow: see `_list`

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
        out=args.out,
        data_dir=args.data_dir,
        strategy=args.strategy,
        timing_rounds=args.timing_rounds,
        verbose=2 if args.quiet else "auto",
    )
    return 0


def _compare(args):
    from experiments import compare  # TensorFlow: see `_list`

    compare.compare(
        args.names,
        overrides=list(args.overrides),
        epochs=args.epochs,
        out=args.out,
        data_dir=args.data_dir,
        strategy=args.strategy,
        verbose=2 if args.quiet else "auto",
    )
    return 0


COMMANDS = {
    "list": _list,
    "show": _show,
    "run": _run,
    "ablate": _ablate,
    "compare": _compare,
    "predict": predict.main,
}


def main(argv=None):
    """Runs the command line; returns the exit status."""
    _quiet_tensorflow()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: usage errors exit with 2
        return int(exit_.code or 0)
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
