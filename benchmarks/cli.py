"""`python -m benchmarks list | run [--quick] [--device cpu|gpu] [NAME ...]`.

    python -m benchmarks list                  # benchmarks and their goals
    python -m benchmarks run                   # all (~45 min, shared 2 CPUs)
    python -m benchmarks run --quick           # fewer repetitions (minutes)
    python -m benchmarks run self_attention 8  # by name or number
    python -m benchmarks report FILE.json      # redraw the markdown table
    python -m benchmarks report FILE.json --readme OUT.md  # README section
    python -m benchmarks profile TARGET        # a step's time, op by op

Each benchmark runs in its own process; the results go to
`benchmarks/results/<machine>-<date>.json` and `.md`. User errors (an
unknown benchmark, no GPU for `--device gpu`) print one `error:` line and
exit with status 2.
"""

import argparse
import json
import os
import shlex
import sys

from benchmarks import op_profile
from benchmarks import registry
from benchmarks import report
from benchmarks import runner


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Attention Zoo performance harness.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the benchmarks and their goals")
    run = sub.add_parser("run", help="run benchmarks, write the results")
    run.add_argument("names", nargs="*", metavar="NAME")
    run.add_argument(
        "--quick", action="store_true", help="fewer repetitions (minutes)"
    )
    run.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    run.add_argument(
        "--machine",
        default=None,
        help="machine label for the results file (default: CPU model and "
        "core count)",
    )
    run.add_argument("--out", default=runner.DEFAULT_OUT, help="folder")
    run.add_argument(
        "--timeout",
        type=int,
        default=3600,
        help="seconds allowed per benchmark (default 3600)",
    )
    redraw = sub.add_parser("report", help="redraw the markdown of a JSON")
    redraw.add_argument("path")
    redraw.add_argument(
        "--readme",
        default=None,
        metavar="OUT.md",
        help="write the README's Performance section here instead",
    )
    prof = sub.add_parser(
        "profile",
        help="where a benchmark step's time goes, op by op "
        "(TensorFlow profiler)",
    )
    prof.add_argument("target", choices=list(op_profile.TARGETS))
    prof.add_argument(
        "--by",
        default="op",
        choices=op_profile.GROUPINGS,
        help="group the ops by type (default) or by name and type",
    )
    prof.add_argument("--steps", type=int, default=20, help="profiled steps")
    prof.add_argument("--top", type=int, default=25, help="rows shown")
    child = sub.add_parser("_child")  # internal: one benchmark, here
    child.add_argument("name")
    child.add_argument("--result", required=True)
    child.add_argument("--quick", action="store_true")
    child.add_argument("--device", default="cpu")
    return parser


def _list():
    for bench in registry.list_benchmarks():
        devices = "" if bench.devices == ("cpu", "gpu") else " [gpu only]"
        print(f"{bench.number:>2}  {bench.name:<18} {bench.title}{devices}")
        if bench.goal:
            print(f"    goal: {bench.goal}")
    return 0


def _redraw(path, readme=None):
    if not os.path.exists(path):
        raise runner.HarnessError(f"No such results file: {path}")
    with open(path) as f:
        results = json.load(f)
    if readme:
        rel = os.path.relpath(os.path.abspath(path), runner.REPO_ROOT)
        report.write_text(readme, report.render_readme(results, rel))
        print(readme)
        return 0
    md_path = os.path.splitext(path)[0] + ".md"
    report.write_text(md_path, report.render_markdown(results))
    print(md_path)
    return 0


def _profile(args):
    try:
        text = op_profile.run(
            args.target, steps=args.steps, by=args.by, top=args.top
        )
    except ValueError as err:  # a bad --steps or --top
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "report":
            return _redraw(args.path, args.readme)
        if args.command == "profile":
            return _profile(args)
        if args.command == "_child":
            return runner.run_child(
                args.name, args.result, args.quick, args.device
            )
        json_path, md_path, results = runner.run(
            args.names,
            quick=args.quick,
            device=args.device,
            label=args.machine,
            out_dir=args.out,
            timeout=args.timeout,
            command="python -m benchmarks " + shlex.join(argv),
        )
    except runner.HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.render_markdown(results))
    print(f"Written: {json_path}\n         {md_path}")
    failed = [
        n for n, e in results["benchmarks"].items() if e["status"] == "error"
    ]
    return 1 if failed else 0
