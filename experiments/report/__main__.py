"""`python -m experiments.report DIR [DIR ...]`: write the report of each run or sweep folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from experiments.report import ReportError, write_report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m experiments.report RUN_OR_SWEEP_DIR [...]", file=sys.stderr)
        return 2
    for folder in args:
        started = time.perf_counter()
        try:
            path = write_report(Path(folder))
        except ReportError as exc:
            print(f"peel: {exc}", file=sys.stderr)
            return 2
        print(f"Report: {path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
