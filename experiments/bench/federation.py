"""Federation cost: wall time of a `fedavg` run ÷ the same local training steps and FedAvg
averaging done in a plain in-process loop (same agencies, rounds, epochs, batches, data); the
rest is framework overhead. Measured for the engines side by side: Peel's in-process engine
(experiments/engine.py, the headline), the same without serialised message copies, and Flower's
Ray simulation engine (the "before"). The last two in full runs only (Ray's start-up is ~10 s).

Each engine's time is the whole run, start-up included (what a user waits for). Clocks: the
in-process engine and the plain loop do all their work in this process on one thread, so they
are timed in process CPU time (= their wall time on an idle machine; other jobs on a shared
machine cannot inflate it); the Ray engine works in other processes, which only wall time sees,
so its ratio is wall ÷ the plain loop's wall in the same repeat (wall ratios of the in-process
engine are kept as detail; an fsync waits without using CPU, so the wall ratio is the one to
read for the audit trail's and checkpoints' syncs).

The plain loop does not evaluate; a fedavg run also scores every new global model on every
agency's test records each round (Flower's federated evaluation, Peel's per-round metrics).
`vs_plain_with_evaluation` divides by a plain loop that evaluates too: the framework's own cost.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .common import Measurement, Settings, project_root, summary

if TYPE_CHECKING:
    from experiments.config import PeelConfig

QUICK = ["data.incidents=30000", "federation.rounds=3"]  # --quick: a quarter of the records, 3 rounds


# ---------------------------------------------------------------- the federation


def bench_config(folder: Path, overrides: list[str]) -> PeelConfig:
    """The default config with `overrides`, fedavg only, writing under `folder`."""
    from experiments.config import load_config

    return load_config(project_root() / "configs" / "default.yaml", [*overrides, "architectures=[fedavg]", f"output={folder}"])


def prepare_federation(folder: Path, overrides: list[str]) -> Path:
    """Materialise the default config's agencies (with overrides) under `folder` as `peel run`
    does; returns the federation spec (architectures: fedavg only)."""
    from experiments.prepare import materialise, write_spec

    config = bench_config(folder, overrides)
    federation = materialise(config, folder / "data")
    return write_spec(config, federation, folder)


def spec_copy(spec_path: Path, run_dir: Path) -> Path:
    """The same federation, writing its results into `run_dir` (the ServerApp appends to its
    run folder's files: every measured run gets its own)."""
    from federation import spec

    copy = dataclasses.replace(spec.read(spec_path), run_dir=run_dir.resolve())
    run_dir.mkdir(parents=True)
    return spec.write(copy, run_dir / spec.SPEC_FILE)


def agencies_of(spec_path: Path) -> list:
    """Each agency as its ClientApp finds it (clients.agency.locate), whatever that returns."""
    from flwr.app import Context, RecordDict

    from clients.agency import locate
    from federation.spec import read as read_spec

    n = len(read_spec(spec_path).agencies)
    return [
        locate(Context(run_id=0, node_id=0, node_config={"partition-id": i, "num-partitions": n}, state=RecordDict(), run_config={"peel-spec": str(spec_path)}))
        for i in range(n)
    ]


# ---------------------------------------------------------------- the three ways to run it


def plain_loop(spec_path: Path, evaluate: bool = False) -> None:
    """What a fedavg run must do at least: per round, every agency trains the global model on
    its split with train_plain (seeded as the ClientApp seeds it), then a weighted average.
    With `evaluate`, also what a fedavg run does besides: every round, every agency scores the
    new global model on its test records (Flower's federated evaluation; metrics.jsonl rows)."""
    from clients.agency import load_split
    from federation.spec import read as read_spec
    from tasks.model import initial_model, make_model
    from tasks.registry import score
    from tasks.seeding import stable_seed
    from tasks.train import predict_proba, train_plain

    run = read_spec(spec_path)
    fed, hidden = run.federation, run.task.hidden
    splits = {a.name: load_split(a) for a in agencies_of(spec_path)}
    weights = {name: len(split.y_train) for name, split in splits.items()}
    total = sum(weights.values())
    global_state = initial_model(hidden, run.seed).state_dict()
    for server_round in range(1, fed.rounds + 1):
        trained = {}
        for name, split in splits.items():
            model = make_model(split.X_train.shape[1], hidden)
            model.load_state_dict(global_state)
            generator = torch.Generator().manual_seed(stable_seed(run.seed, name, "fedavg", server_round))
            train_plain(model, split.X_train, split.y_train, epochs=fed.local_epochs, batch_size=fed.batch_size, lr=fed.learning_rate, generator=generator)
            trained[name] = model.state_dict()
        global_state = {key: sum(trained[n][key] * (weights[n] / total) for n in trained) for key in global_state}
        if evaluate:
            for split in splits.values():
                model = make_model(split.X_train.shape[1], hidden)
                model.load_state_dict(global_state)
                score(split, predict_proba(model, split.X_test))


def run_inprocess(spec_path: Path, serialise: bool = True) -> None:
    from experiments.engine import run_federated_in_process

    run_federated_in_process(spec_path, len(json.loads(spec_path.read_text(encoding="utf-8"))["agencies"]), serialise=serialise)


def run_ray(spec_path: Path) -> None:
    """Flower's Ray simulation engine, as Peel runs it with `--engine simulation`."""
    from experiments.simulation import run_federated

    run_federated(spec_path, len(json.loads(spec_path.read_text(encoding="utf-8"))["agencies"]))


# inprocess-nocopy: the same engine without the serialised copies of messages (what they cost).
ENGINES = {"inprocess": run_inprocess, "inprocess-nocopy": lambda spec: run_inprocess(spec, serialise=False), "ray": run_ray}


# ---------------------------------------------------------------- the measurement


def _walls(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "federated.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["architecture"]: row["wall_s"] for row in rows}


def federation_cost(settings: Settings) -> dict:
    engines = ["inprocess"] if settings.quick else ["inprocess", "inprocess-nocopy", "ray"]
    overrides = QUICK if settings.quick else []
    with tempfile.TemporaryDirectory(prefix="peel-bench-fed-") as tmp:
        base = Path(tmp)
        spec_path = prepare_federation(base / "prepared", overrides)
        runs = iter(range(10**6))

        def fresh() -> Path:
            return spec_copy(spec_path, base / f"run{next(runs)}")

        # Warm-up, not timed: loads every split (the runner has them loaded before federated
        # training starts) and pays torch's one-off lazy imports on first optimizer use.
        plain_loop(spec_path, evaluate=True)
        run_inprocess(fresh())
        plain: list[tuple[float, float]] = []  # (wall, cpu)
        plain_eval: list[tuple[float, float]] = []  # the same loop with per-round evaluation
        measured: dict[str, list[dict]] = {e: [] for e in engines}
        for r in range(settings.repeats):
            order = ["plain", "plain-eval", *engines]
            for what in order if r % 2 == 0 else reversed(order):
                wall, cpu = time.perf_counter(), time.process_time()
                if what.startswith("plain"):
                    plain_loop(spec_path, evaluate=what == "plain-eval")
                    (plain if what == "plain" else plain_eval).append((time.perf_counter() - wall, time.process_time() - cpu))
                    continue
                spec = fresh()
                ENGINES[what](spec)
                walls = _walls(spec.parent)
                measured[what].append(
                    {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "startup": walls.get("start-up"), "fedavg": walls["fedavg"]}
                )
        config = bench_config(base / "prepared", overrides)
    per_engine = {}
    for engine, runs_ in measured.items():
        wall_ratios = [m["wall"] / p[0] for m, p in zip(runs_, plain, strict=True)]
        detail = {
            "wall_s": statistics.median(m["wall"] for m in runs_),
            "startup_s": statistics.median(m["startup"] for m in runs_ if m["startup"] is not None),
            "fedavg_s": statistics.median(m["fedavg"] for m in runs_),
        }
        if engine.startswith("inprocess"):
            # All its work runs in this process, on one thread: its CPU time is what its wall
            # time would be on an idle machine, and other jobs cannot inflate it.
            ratios = [m["cpu"] / p[1] for m, p in zip(runs_, plain, strict=True)]
            # Against a plain loop that also evaluates every round: what the framework itself costs.
            eval_ratios = [m["cpu"] / p[1] for m, p in zip(runs_, plain_eval, strict=True)]
            per_engine[engine] = summary(
                ratios,
                wall_ratio=statistics.median(wall_ratios),
                vs_plain_with_evaluation=summary(eval_ratios, wall_ratio=statistics.median(m["wall"] / p[0] for m, p in zip(runs_, plain_eval, strict=True))),
                clock="process CPU time",
                **detail,
            )
        else:
            # Ray runs the agencies in other processes: only wall time sees them.
            per_engine[engine] = summary(wall_ratios, clock="wall time", **detail)
    return summary(
        per_engine["inprocess"]["values"],
        per_engine=per_engine,
        plain_wall_s=statistics.median(p[0] for p in plain),
        plain_cpu_s=statistics.median(p[1] for p in plain),
        plain_with_evaluation_cpu_s=statistics.median(p[1] for p in plain_eval),
        vs_plain_with_evaluation=per_engine["inprocess"]["vs_plain_with_evaluation"],
        # the table's rows: the headline, and against a plain loop that evaluates too
        per_baseline={
            "vs plain loop (headline)": {k: per_engine["inprocess"][k] for k in ("median", "min", "max")},
            "vs plain loop + evaluation": {k: per_engine["inprocess"]["vs_plain_with_evaluation"][k] for k in ("median", "min", "max")},
        },
        wall_ratio=per_engine["inprocess"]["wall_ratio"],
        agencies=config.data.agencies,
        records=config.data.incidents,
        rounds=config.federation.rounds,
        engine="inprocess (experiments/engine.py); per_engine.ray is Flower's Ray simulation (full runs only)",
        clock="whole run including start-up; in-process: CPU time (= wall on an idle machine), ray: wall time",
    )


MEASUREMENTS = [
    # --check runs the quick sizes, where 0.1 s of training makes per-message costs loom large
    # (≈3×); the Ray engine's start-up alone would be ≈100×. 6× catches a gross regression only.
    Measurement("federation_cost", "× plain", federation_cost, limit=6.0, about="fedavg run ÷ same training in a plain loop (in-process engine)"),
]
