"""`python -m bench [--quick]` prints the benchmark table; `python -m bench chaos` is the reliability run."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from service.dev import stop_like_ctrl_c


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="BlinkPOS benchmarks and chaos run")
    parser.add_argument("command", nargs="?", choices=("run", "chaos"), default="run",
                        help="run (default): the benchmark table; chaos: the reliability run")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few seconds per row")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per endpoint row (default 15)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the servers' data and logs here (default: a temporary directory)")
    parser.add_argument("--sales", type=int, default=1000, help="chaos: sales to stream (default 1000)")
    parser.add_argument("--clients", type=int, default=16, help="chaos: concurrent tills (default 16)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    try:
        if args.command == "chaos":
            from bench.chaos import ChaosOptions, run_chaos

            return run_chaos(ChaosOptions(sales=args.sales, clients=args.clients), args.work_dir)
        return _run_benchmarks(args)
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted; every server was stopped\n")
        return 130


def _run_benchmarks(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bench.suite import SuiteOptions, run_suite

    options = SuiteOptions.quick() if args.quick else SuiteOptions()
    if args.seconds is not None:
        options = replace(options, seconds_per_row=args.seconds)
    report = run_suite(options, args.work_dir)
    sys.stdout.write(report.markdown())
    path = report.save()
    sys.stdout.write(f"\nsaved {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
