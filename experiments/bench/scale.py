"""Scale: wall time and peak memory of a `fedavg-dp` run (`peel run`, in a subprocess) as the
number of agencies grows at a fixed total of records, and as the records grow at 8 agencies;
plus, in full runs, the target case: 43 agencies (every territorial police force of England and
Wales) × 1M records, which must run in under 10 minutes and 8 GiB.

Each point is one run (each is up to minutes long): no repeats, so no spread. Peak memory is the
largest sum of resident memory over the run's process tree, sampled every 0.2 s from /proc (a
tree: Flower's Ray engine runs agencies in other processes), and never below the largest single
process that `wait4` reports. Shared pages count once per process: an upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import Measurement, Settings, project_root

BASE = 120_000  # configs/default.yaml data.incidents
FULL = {
    "agencies": [(8, BASE), (43, BASE), (200, BASE)],
    "records": [(8, 4 * BASE), (8, 16 * BASE)],  # (8, BASE) is the first point above
    "target": [(43, 1_000_000)],
}
QUICK = {"agencies": [(4, 20_000), (8, 20_000)], "records": [(4, 40_000)], "target": []}
QUICK_ROUNDS = 3
TARGET_LIMITS = {"wall_s": 600.0, "peak_rss_mb": 8 * 1024.0}


ENGINE = "peel"  # "peel": Peel's own engine (in-process); "ray": Flower's Ray simulation (peel bench --engine)

# Python run by the subprocess: Peel's CLI; for "ray", the runner's in-process entry point is
# replaced by Peel's Ray path (the runner imports it at call time, so the patch takes effect;
# `peel sweep` has no --engine option of its own).
_PATCH = {
    "peel": "",
    "ray": "import experiments.engine as e, experiments.simulation as s; e.run_federated_in_process = lambda spec, n, **_: s.run_federated(spec, n); ",
}


def peel_command(args: list[str], engine: str | None = None) -> list[str]:
    """argv that runs `peel ARGS` with the chosen federated engine."""
    engine = engine or ENGINE
    if engine not in _PATCH:
        raise ValueError(f"bench: engine {engine!r}: choose from {', '.join(_PATCH)}")
    code = f"import sys; from experiments.cli import main; {_PATCH[engine]}sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *args]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # the name may contain spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, MB."""
    tree, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total / 1024


def run_measured(args: list[str], log_dir: Path, timeout: float) -> dict[str, float]:
    """Run `peel ARGS` from the Peel checkout (common.project_root), output in files under
    `log_dir`: its wall seconds, CPU seconds (its own and its reaped children's) and peak tree
    RSS in MB. Raises with the end of its stderr if it fails."""
    log_dir.mkdir(parents=True, exist_ok=True)
    peak = [0.0]
    with open(log_dir / "stdout.txt", "w") as out, open(log_dir / "stderr.txt", "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(peel_command(args), cwd=project_root(), stdout=out, stderr=err)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _wait(proc, timeout)
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            stop.set()
            sampler.join()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (log_dir / "stderr.txt").read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"bench: peel {' '.join(args[:2])} failed (exit {proc.returncode}): {' | '.join(tail)}")
    # ru_maxrss is in KB on Linux
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": max(peak[0], usage.ru_maxrss / 1024)}


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    """Wait, without reaping it (wait4 then reads its resource usage), until `proc` exits;
    kill it past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"bench: peel run timed out after {timeout:.0f} s")


def scale(settings: Settings) -> list[dict]:
    sizes = QUICK if settings.quick else FULL
    extra = ["--set", f"federation.rounds={QUICK_ROUNDS}"] if settings.quick else []
    points = []
    with tempfile.TemporaryDirectory(prefix="peel-bench-scale-") as tmp:
        for group, pairs in sizes.items():
            for agencies, records in pairs:
                out = Path(tmp) / f"{agencies}x{records}"
                args = [
                    "run", "configs/default.yaml",
                    "--set", f"output={out}",
                    "--set", f"data.agencies={agencies}",
                    "--set", f"data.incidents={records}",
                    "--set", "architectures=[fedavg-dp]",
                    *extra,
                ]  # fmt: skip
                run = run_measured(args, Path(tmp) / f"log-{agencies}x{records}", timeout=3600)
                wall, peak = run["wall_s"], run["peak_rss_mb"]
                summary_ = json.loads(next(out.glob("*/summary.json")).read_text(encoding="utf-8"))
                point = {
                    "agencies": agencies,
                    "records": records,
                    "wall_s": wall,
                    "peak_rss_mb": peak,
                    "cpu_s": run["cpu_s"],
                    "group": group,
                    "train_s": summary_["architectures"]["fedavg-dp"]["wall_s"],
                    "flower_startup_s": summary_.get("flower_startup_s"),
                    "engine": ENGINE,
                }
                if group == "target":
                    point["within_target"] = all(point[k] <= limit for k, limit in TARGET_LIMITS.items())
                points.append(point)
                print(f"    scale {agencies} agencies × {records:,}: {wall:.1f} s, peak {peak:,.0f} MB", file=sys.stderr, flush=True)
    return points


MEASUREMENTS = [
    Measurement("scale", "s", scale, about="fedavg-dp `peel run`: wall and peak RSS per size"),
]
