#!/usr/bin/env python
"""Peel's benchmark: Peel measured against its own limits, every figure a median with its spread
over repeats measured in one run (this machine is shared and noisy: ratios measured side by side
hold, absolute seconds do not).

    python scripts/bench.py [--quick] [--out bench.json] [--only KEY,...] [--opacus] [--engine E]
    python scripts/bench.py --check        # CI: exit 1 only on a gross regression

bench.json holds one key per measurement, each {"median", "min", "max", "values", ...detail},
and "meta" (versions, settings). Measurements live in scripts/bench_parts/ (one module per
subject, each a list of named measurements); add a part there and list it in MEASUREMENTS.
Each figure names its clock: process CPU time where all the work is in this process (other jobs
on a shared machine inflate wall time, not CPU time; wall figures are kept as detail), wall
time for whole federation runs, sweeps and `peel run`s (their work spans other processes).
Training runs on one torch thread, as Peel's clients do. docs/performance.md explains every
figure and holds the measured before/after numbers.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from bench_parts import accounting, data, federation, scale, sweep, training
from bench_parts.common import Measurement, Settings, write_json_atomic

MEASUREMENTS: list[Measurement] = [
    *training.MEASUREMENTS,
    *accounting.MEASUREMENTS,
    *data.MEASUREMENTS,
    *federation.MEASUREMENTS,
    *sweep.MEASUREMENTS,
    *scale.MEASUREMENTS,
]
OPTIONAL: list[Measurement] = [*training.OPACUS_MEASUREMENTS]  # run only when asked (--opacus)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    chosen = _choose(args)
    settings = Settings(quick=args.quick or args.check, repeats=args.repeats)
    scale.ENGINE = args.engine
    torch.set_num_threads(1)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for m in chosen:
        t0 = time.perf_counter()
        results[m.key] = m.run(settings)
        headline = f"{len(results[m.key])} runs" if isinstance(results[m.key], list) else f"{_fmt(results[m.key]['median'])} {m.unit}"
        print(f"  {m.key}: {headline} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    meta = {
        "quick": settings.quick,
        "repeats": settings.repeats,
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": 1,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "clock": "per figure, see its 'clock' (CPU time in-process; wall time for whole runs)",
        "engine": args.engine,
    }
    _print_table(chosen, results)
    sys.stdout.flush()
    if args.out is not None or not args.check:
        out = Path(args.out or "bench.json")
        write_json_atomic(out, {**results, "meta": meta})
        print(f"wrote {out}", flush=True)
    return _check(chosen, results) if args.check else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, about a minute and a half")
    parser.add_argument("--check", action="store_true", help="quick run of the measurements with a limit; exit 1 above it")
    parser.add_argument("--out", help="where to write the JSON (default bench.json; --check writes only if given)")
    parser.add_argument("--only", help="comma-separated keys to run (default: all)")
    parser.add_argument("--opacus", action="store_true", help="also measure Opacus' hooks (the 'before'; slow)")
    parser.add_argument(
        "--engine",
        choices=["peel", "ray"],
        default="peel",
        help="federated engine of the `peel` subprocesses of sweep/scale: Peel's own (in-process, default) or Flower's Ray simulation (the 'before')",
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3 quick, 5 full; at least 3)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if (args.quick or args.check) else 5
    if args.repeats < 3:
        parser.error(f"--repeats {args.repeats}: need at least 3 for a median and a spread")
    return args


def _choose(args: argparse.Namespace) -> list[Measurement]:
    available = MEASUREMENTS + OPTIONAL
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        known = {m.key: m for m in available}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise SystemExit(f"bench: --only {','.join(unknown)}: unknown; choose from {', '.join(known)}")
        return [known[k] for k in keys]
    if args.check:
        return [m for m in MEASUREMENTS if m.limit is not None]
    return MEASUREMENTS + (OPTIONAL if args.opacus else [])


def _check(chosen: list[Measurement], results: dict[str, dict]) -> int:
    failed = [m for m in chosen if m.limit is not None and results[m.key]["median"] > m.limit]
    for m in failed:
        print(f"bench check: {m.key} median {_fmt(results[m.key]['median'])} {m.unit} is above the limit {m.limit:g}", file=sys.stderr)
    if not failed:
        print("bench check: no gross regression")
    return 1 if failed else 0


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _print_table(chosen: list[Measurement], results: dict[str, dict]) -> None:
    rows = [("figure", "median", "min", "max", "unit", "what")]
    for m in chosen:
        r = results[m.key]
        if isinstance(r, list):  # scale: one row per run (a single run each: no spread)
            rows.append((m.key, "", "", "", "", m.about))
            for point in r:
                rows.append((f"  {point['agencies']} agencies × {point['records']:,}", _fmt(point["wall_s"]), "", "", "s", f"peak RSS {point['peak_rss_mb']:,.0f} MB"))
            continue
        rows.append((m.key, _fmt(r["median"]), _fmt(r["min"]), _fmt(r["max"]), m.unit, m.about))
        for group in [k for k in r if k.startswith("per_")]:  # per_accountant, per_engine, ...
            for name, sub in r[group].items():
                rows.append((f"  {name}", _fmt(sub["median"]), _fmt(sub["min"]), _fmt(sub["max"]), m.unit, ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if j in (0, 4, 5) else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
