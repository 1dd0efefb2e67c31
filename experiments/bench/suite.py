"""The benchmark's driver: which measurements run, the table, bench.json and the --check limits
(the command line is in experiments/bench/__init__.py)."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from experiments.bench import accounting, data, federation, scale, sweep, training
from experiments.bench.common import Measurement, Settings, write_json_atomic
from experiments.config import ConfigError

MEASUREMENTS: list[Measurement] = [
    *training.MEASUREMENTS,
    *accounting.MEASUREMENTS,
    *data.MEASUREMENTS,
    *federation.MEASUREMENTS,
    *sweep.MEASUREMENTS,
    *scale.MEASUREMENTS,
]
OPTIONAL: list[Measurement] = [*training.OPACUS_MEASUREMENTS]  # run only when asked (--opacus)
DEFAULT_OUT = "bench.json"  # in the current directory


def run(args: argparse.Namespace) -> int:
    if args.repeats is None:
        args.repeats = 3 if (args.quick or args.check) else 5
    if args.repeats < 3:
        raise ConfigError(f"--repeats {args.repeats}: need at least 3 for a median and a spread")
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
        print(f"  {m.key}: {headline} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
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
        out = Path(args.out or DEFAULT_OUT)
        write_json_atomic(out, {**results, "meta": meta})
        print(f"wrote {out}", flush=True)
    return _check(chosen, results) if args.check else 0


def _choose(args: argparse.Namespace) -> list[Measurement]:
    available = MEASUREMENTS + OPTIONAL
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        known = {m.key: m for m in available}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ConfigError(f"--only {','.join(unknown)}: unknown; choose from {', '.join(known)}")
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
        print("  ".join(cell.ljust(w) if j in (0, 4, 5) else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
