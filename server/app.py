"""The coordinator: a Flower ServerApp (Message API).

One Flower run trains every federated architecture of the experiment in turn (paying the
simulation start-up once), each from the same initial model, and writes per-round,
per-agency rows to `metrics.jsonl`, the final model of each architecture and its wall time.
It never sees records: only model updates and metrics the agencies chose to send.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from federation import architectures
from federation import spec as run_spec
from federation.contract import WARM_UP, regime
from federation.spec import TRAIL_FILE, RunSpec
from privacy.audit_trail import CLOSE, COORDINATOR, append, close, head, payload_sha256
from privacy.audit_trail import read as read_trail
from privacy.durable import save_durably
from server.central_dp import central_dp_strategy, plan_central
from server.checkpoint import AGGREGATED
from server.checkpoint import load as load_checkpoint
from server.recorder import RoundRecorder
from server.robust import recording_strategy
from server.rounds import run_rounds
from server.secagg import train_secagg
from tasks.model import initial_model
from tasks.registry import n_features

log = logging.getLogger("peel.server")

app = ServerApp()


def _spec(context: Context) -> RunSpec:
    path = str(context.run_config.get("peel-spec", "") or os.environ.get("PEEL_SPEC", ""))
    if not path:
        raise RuntimeError("no federation spec: set run config 'peel-spec' or PEEL_SPEC")
    return run_spec.read(path)


def _warm_up(grid: Grid, arrays: ArrayRecord, n_agencies: int, timeout: float) -> float:
    """Have every agency evaluate the initial model once, so that start-up (in simulation:
    spawning workers, importing torch and Opacus, loading data) is timed on its own and the
    architectures' wall times compare training, not who came first. Returns seconds taken."""
    started = time.perf_counter()
    node_ids, _ = sample_nodes(grid, n_agencies, n_agencies)
    content = RecordDict({"arrays": arrays, "config": ConfigRecord({"architecture": WARM_UP})})
    grid.send_and_receive(
        [Message(content, dst_node_id=node, message_type=MessageType.EVALUATE) for node in node_ids], timeout=timeout
    )
    return time.perf_counter() - started


def _log_wall(run_dir: Path, architecture: str, wall_s: float, extra: dict | None = None) -> None:
    """One line per architecture; `extra` adds what only the coordinator knows (fedavg-central-dp:
    its agency-level privacy figures)."""
    with open(run_dir / "federated.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"architecture": architecture, "wall_s": wall_s, **(extra or {})}) + "\n")


def _check_settings(spec: RunSpec, n_agencies: int) -> None:
    """Stop before any architecture trains if one of them cannot run as configured."""
    unknown = [a for a in spec.federated if not architectures.is_federated(a)]
    if unknown:
        raise ValueError(f"federation spec: unknown federated architecture(s) {unknown}; known: {list(architectures.federated())}")
    for name in spec.federated:
        trainer = architectures.get(name).trainer
        if trainer == "central-dp":
            plan_central(spec.central_dp, n_agencies, spec.federation.rounds)
        if trainer == "secagg" and n_agencies < 3:
            raise ValueError(f"{name}: secure aggregation needs at least 3 agencies; the federation has {n_agencies}")


def _trail_aggregate(path: Path, run: str, architecture: str) -> Callable[[int, ArrayRecord], None]:
    """Record every global model the coordinator forms (after any server-side noise)."""

    def record(server_round: int, arrays: ArrayRecord) -> None:
        chunks = [a.data for a in arrays.values()]
        append(path, {"run": run, "architecture": architecture, "round": server_round, "agency": COORDINATOR, "type": "aggregate", "sizes": {"bytes": sum(len(c) for c in chunks)}, "dp": None, "epsilon": None, "payload_sha256": payload_sha256(*chunks)})

    return record


def _train(
    grid: Grid, context: Context, architecture: str, initial: ArrayRecord, recorder: RoundRecorder, spec: RunSpec, n_agencies: int
) -> tuple[ArrayRecord, dict | None, float]:
    """Train one federated architecture from `initial`, or from its checkpoint if an earlier
    attempt stopped; returns its final model, what federated.jsonl should add to its line
    (central DP: the agency-level privacy figures) and its training seconds. Its registry
    entry's trainer picks the code."""
    trainer = architectures.get(architecture).trainer
    fed = spec.federation
    later = spec.federated[spec.federated.index(architecture):]
    train_config: dict[str, Any] = {  # Flower scalars (ConfigRecord and the legacy SecAgg+ API type them differently)
        "architecture": architecture,
        "dp": regime(architecture) == "dp",
        "rounds": fed.rounds,
        "local-epochs": fed.local_epochs,
        "batch-size": fed.batch_size,
        "learning-rate": fed.learning_rate,
        # The releases each agency still plans in this run: this architecture's rounds and those
        # of the record-level DP architectures after it share the agency's remaining budget.
        "dp-releases-planned": fed.rounds * sum(regime(a) == "dp" for a in later),
    }
    if trainer == "secagg":
        run_dir = spec.run_dir
        final, wall_s = train_secagg(
            grid,
            context,
            architecture=architecture,
            initial=initial,
            recorder=recorder,
            n_agencies=n_agencies,
            train_config=train_config,
            rounds=fed.rounds,
            timeout=fed.round_timeout,
            run_dir=run_dir,
            on_model=_trail_aggregate(run_dir / TRAIL_FILE, run_dir.name, architecture),
        )
        return final, None, wall_s
    if trainer == "central-dp":
        strategy = central_dp_strategy(recorder, spec.central_dp, n_agencies, fed.rounds)
    else:  # fedavg-strategy: federation.aggregator, where the architecture allows it
        strategy = recording_strategy(recorder, fed, n_agencies, architecture)
    run_dir = spec.run_dir
    final, wall_s = run_rounds(
        strategy,
        grid,
        run_dir=run_dir,
        architecture=architecture,
        recorder=recorder,
        initial=initial,
        num_rounds=fed.rounds,
        timeout=fed.round_timeout,
        train_config=ConfigRecord(train_config),
        evaluate_config=ConfigRecord({"architecture": architecture}),
        on_model=_trail_aggregate(run_dir / TRAIL_FILE, run_dir.name, architecture),
    )
    return final, strategy.report() if trainer == "central-dp" else None, wall_s


@app.main()
def main(grid: Grid, context: Context) -> None:
    spec = _spec(context)
    fed = spec.federation
    run_dir = spec.run_dir
    (run_dir / "models").mkdir(parents=True, exist_ok=True)
    n_agencies = len(spec.agencies)
    _check_settings(spec, n_agencies)
    initial = ArrayRecord(initial_model(spec.task.hidden, spec.seed, n_features(spec.task.name, spec.task.features)).state_dict())
    startup = _warm_up(grid, initial, n_agencies, fed.round_timeout)
    _log_wall(run_dir, "start-up", startup)
    log.info("%d agencies ready in %.1f s", n_agencies, startup)
    done = _finished(run_dir)
    for architecture in spec.federated:
        if architecture in done:  # a resumed run: finished before the stop
            log.info("%s: finished in an earlier attempt", architecture)
            continue
        log.info("%s: %d rounds with %d agencies", architecture, fed.rounds, n_agencies)
        recorder = RoundRecorder(run_dir / "metrics.jsonl", architecture, [a.name for a in spec.agencies])
        saved = load_checkpoint(run_dir, architecture)
        # Rows an earlier attempt wrote after its last checkpoint are written again.
        recorder.drop_rows_after(0 if saved is None else saved.round - (saved.phase == AGGREGATED))
        if saved is not None:
            log.info("%s: resuming after round %d", architecture, saved.round)
        final, extra, wall_s = _train(grid, context, architecture, initial, recorder, spec, n_agencies)
        save_durably(final.to_torch_state_dict(), run_dir / "models" / f"{architecture}.pt")
        _log_wall(run_dir, architecture, wall_s, extra)
        log.info("%s: done in %.1f s", architecture, wall_s)
    # The trail's last entry counts those before it (a cut-off end is detected); its hash is
    # kept apart, in federated.jsonl and then summary.json, to anchor the chain.
    trail = run_dir / TRAIL_FILE
    entries = read_trail(trail) if trail.exists() else []
    if not entries or entries[-1].get("type") != CLOSE:  # a resumed run may have closed it already
        close(trail, run_dir.name)
    _log_wall(run_dir, "audit-trail", 0.0, {"head": head(trail)})


def _finished(run_dir: Path) -> set[str]:
    """Architectures whose line is in federated.jsonl (written after their final model)."""
    path = run_dir / "federated.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line)["architecture"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}

