"""Peel's benchmark (`peel bench`, or `python scripts/bench.py`): Peel measured against its own
limits, every figure a median with its spread over repeats measured in one run (this machine is
shared and noisy: ratios measured side by side hold, absolute seconds do not).

    peel bench [--quick] [--out bench.json] [--only KEY,...] [--opacus] [--engine E]
    peel bench --check        # CI: exit 1 only on a gross regression

bench.json holds one key per measurement, each {"median", "min", "max", "values", ...detail},
and "meta" (versions, settings). Measurements live in this package, one module per subject
(each a list of named measurements); add a module and list it in `suite.MEASUREMENTS`.
Each figure names its clock: process CPU time where all the work is in this process (other jobs
on a shared machine inflate wall time, not CPU time; wall figures are kept as detail), wall
time for whole federation runs, sweeps and `peel run`s (their work spans other processes).
Training runs on one torch thread, as Peel's clients do. docs/performance.md explains every
figure and holds the measured before/after numbers.

This module only declares the command line (cheap to import: `peel --help` builds it); the
measurements are imported when the benchmark runs.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "Peel's benchmark: DP cost, federation cost, sweep and scale figures, written to bench.json."
ENGINES = ("peel", "ray")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by `peel bench` and scripts/bench.py)."""
    parser.add_argument("--quick", action="store_true", help="reduced sizes, about a minute")
    parser.add_argument("--check", action="store_true", help="CI: quick run of the measurements that have a limit; exit 1 above it")
    parser.add_argument("--out", help="where to write the JSON (default: bench.json in the current directory; --check writes only if given)")
    parser.add_argument("--only", help="comma-separated keys to run (default: all), e.g. federation_cost,dp_cost")
    parser.add_argument("--opacus", action="store_true", help="also measure Opacus' hooks (the 'before'; slow)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="peel",
        help="federated engine of the `peel` subprocesses of sweep/scale: Peel's own (in-process, default) or Flower's Ray simulation (the 'before')",
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3 quick, 5 full; at least 3)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark `args` ask for (see add_arguments); returns the exit code. Raises
    experiments.config.ConfigError for a bad option value."""
    from experiments.bench.suite import run as run_suite

    return run_suite(args)


def main(argv: list[str] | None = None) -> int:
    """scripts/bench.py: the same as `peel bench`."""
    from experiments.config import ConfigError
    from experiments.quiet import go_offline

    go_offline()
    parser = argparse.ArgumentParser(prog="bench.py", description=DESCRIPTION)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ConfigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
