"""`fedavg-dp-secagg`: FedAvg over DP-SGD updates with SecAgg+, the coordinator's half of Peel's
one legacy-API seam.

Why this module exists: in Flower 1.42 SecAgg+ exists only in the legacy API
(`SecAggPlusWorkflow` inside a `DefaultWorkflow`, with a legacy `flwr.server.strategy` and a
`LegacyContext`). `train_secagg` runs that workflow from inside Peel's Message-API ServerApp main
on the same Grid, so the architecture shares the run (and its start-up) with the others; the
agencies' half is clients/secagg.py. Remove both when Flower's Message API gains SecAgg+.

What the coordinator sees: from each agency, its masked update (uniform-looking integers mod
2^32), its number of training records and its metrics (ε, σ, losses: SecAgg+ hides the update,
not the metrics); after unmasking, only the record-weighted mean of the updates. The agencies'
ε is their own record-level DP-SGD accounting, exactly as in `fedavg-dp`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, RecordDict
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from federation.contract import STATE_KEYS
from server import checkpoint
from server.checkpoint import AGGREGATED, EVALUATED, Checkpoint
from server.recorder import RoundRecorder, metric_row
from server.strategy import RecordingFedAvg

ARCHITECTURE = "fedavg-dp-secagg"


# SecAgg+ quantizes each weighted update entry within ±CLIPPING_RANGE into 2^22 levels: updates
# (not weights) are small, and the rounding error on the mean stays below ~1e-5 per entry.
CLIPPING_RANGE = 8.0


def _reason(failure: BaseException | tuple) -> str:
    """The reason of a legacy failure: Flower wraps an error reply as Exception(Error)."""
    if isinstance(failure, BaseException) and failure.args and isinstance(failure.args[0], Error):
        return str(failure.args[0].reason)
    if isinstance(failure, tuple):
        return f"status {failure[1].status.code}: {failure[1].status.message}"
    return str(failure)


def training_counts(grid: Grid, n_agencies: int, timeout: float) -> dict[int, tuple[str, int]]:
    """Ask every agency its name and number of training records (its FedAvg weight, sent with
    every update anyway): SecAgg+ needs max_weight ≥ every weight before the first round.
    Returns {node: (agency, records)} of the agencies that answered."""
    node_ids, _ = sample_nodes(grid, n_agencies, n_agencies)
    content = RecordDict({"config": ConfigRecord({"architecture": ARCHITECTURE})})
    replies = grid.send_and_receive([Message(content, dst_node_id=node, message_type=MessageType.QUERY) for node in node_ids], timeout=timeout)
    counts = {
        reply.metadata.src_node_id: (str(reply.content["agency"]["name"]), int(reply.content["metrics"]["num-examples"]))
        for reply in replies
        if not reply.has_error()
    }
    # An agency that did not answer is not waited for: if its count exceeds max_weight it
    # refuses to send (clients/secagg.py checks), and SecAgg+ carries on without it.
    if not counts:
        raise RuntimeError(f"{ARCHITECTURE}: no agency reported its number of training records")
    return counts


def _keyed(parameters: Parameters, keys: list[str]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(a)) for k, a in zip(keys, parameters_to_ndarrays(parameters), strict=True)})


class SecAggFedAvg(LegacyFedAvg):
    """The legacy strategy SecAgg+ drives. Every agency trains every round; what
    `aggregate_fit` receives is SecAgg+'s unmasked record-weighted mean of the agencies' updates
    (copied into every result), never an individual update: the new model is global + mean."""

    def __init__(self, n_agencies: int, train_config: dict[str, Scalar], keys: list[str], initial: Parameters, round_offset: int = 0) -> None:
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,  # evaluation is Peel's own (Message API), see _Evaluate
            min_fit_clients=n_agencies,
            min_evaluate_clients=n_agencies,
            min_available_clients=n_agencies,
            on_fit_config_fn=self._fit_config,
            initial_parameters=initial,
        )
        self.train_config = dict(train_config)
        self.keys = keys
        self.round_offset = round_offset  # rounds finished before a resume: numbering continues
        self._current: list[np.ndarray] = []

    def _fit_config(self, server_round: int) -> dict[str, Scalar]:
        return {**self.train_config, "server-round": server_round + self.round_offset, STATE_KEYS: json.dumps(self.keys)}

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        self._current = parameters_to_ndarrays(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list[tuple[ClientProxy, FitRes] | BaseException]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if not results:
            return None, {}
        mean_update = parameters_to_ndarrays(results[0][1].parameters)
        new = [np.asarray(c + u, dtype=c.dtype) for c, u in zip(self._current, mean_update, strict=True)]
        return ndarrays_to_parameters(new), {}


class RecordingSecAggPlus(SecAggPlusWorkflow):
    """SecAgg+ that hands the agencies' per-round metrics and failures to the recorder as soon as
    the training stage ends (also if the protocol halts afterwards: the agencies have spent)."""

    def __init__(self, recorder: RoundRecorder, progress: RecordingFedAvg, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.recorder = recorder
        self.progress = progress
        self._recorded = False

    def __call__(self, grid: Grid, context: Context) -> None:
        self._recorded = False
        super().__call__(grid, context)
        if not self._recorded:  # halted before the training stage: nobody trained
            reason = "secure aggregation halted before training: too few agencies answered"
            self._record({}, [], default_error=reason)

    def collect_masked_vectors_stage(self, grid: Grid, context: LegacyContext, state) -> bool:  # noqa: ANN001 (Flower's WorkflowState)
        ok = super().collect_masked_vectors_stage(grid, context, state)
        results = {}
        for proxy, fitres in state.legacy_results:
            metrics = dict(fitres.metrics)
            name = str(metrics.pop("agency", f"node-{proxy.node_id}"))
            self.recorder.node_agency[proxy.node_id] = name
            results[name] = metric_row(metrics)
        self._record(results, [_reason(f) for f in state.failures])
        return ok

    def _record(self, rows: dict[str, dict], reasons: Iterable[str], default_error: str | None = None) -> None:
        rows = dict(rows)
        failed = 0
        for reason in reasons:
            name = self.recorder.agency_named_in(reason) or "unknown"
            if name not in rows:
                rows[name], failed = {"train_error": reason}, failed + 1
        if default_error is not None:
            for name in self.recorder.agencies:
                rows.setdefault(name, {"train_error": default_error})
            failed = len(self.recorder.agencies)
        self.recorder.train_rows(rows)
        self.progress.note_failures(failed)
        eps = [row["epsilon_spent_to_date"] for row in rows.values() if row.get("epsilon_spent_to_date") is not None]
        self.progress.note_epsilon(max(eps) if eps else None)
        self._recorded = True


class _Evaluate:
    """The legacy workflow's evaluate step, done the Message-API way of every other architecture
    (same messages to the agencies' evaluate handler, same rows, same progress line), with the
    round's trail entry and checkpoints around it (see server/rounds.py)."""

    def __init__(self, evaluator: RecordingFedAvg, keys: list[str], architecture: str, timeout: float, *, run_dir: Path, round_offset: int, on_model: Callable[[int, ArrayRecord], None], spent: float) -> None:
        self.evaluator, self.keys, self.architecture, self.timeout = evaluator, keys, architecture, timeout
        self.run_dir, self.round_offset, self.on_model = run_dir, round_offset, on_model
        self.started, self.spent = time.perf_counter(), spent

    def wall_s(self) -> float:
        return self.spent + time.perf_counter() - self.started

    def __call__(self, grid: Grid, context: Context) -> None:
        server_round = int(context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND]) + self.round_offset
        parameters = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
        arrays = _keyed(parameters, self.keys)
        self.on_model(server_round, arrays)
        self.checkpoint(server_round, AGGREGATED, arrays, self.evaluator.recorder.pending_train_rows())
        self.evaluate(grid, server_round, arrays)

    def evaluate(self, grid: Grid, server_round: int, arrays: ArrayRecord) -> None:
        messages = self.evaluator.configure_evaluate(server_round, arrays, ConfigRecord({"architecture": self.architecture}), grid)
        self.evaluator.aggregate_evaluate(server_round, grid.send_and_receive(messages, timeout=self.timeout))
        self.checkpoint(server_round, EVALUATED, arrays)

    def checkpoint(self, server_round: int, phase: str, arrays: ArrayRecord, train_rows: dict | None = None) -> None:
        checkpoint.save(self.run_dir, Checkpoint(self.architecture, server_round, phase, arrays, self.wall_s(), {}, train_rows or {}))


def train_secagg(
    grid: Grid,
    context: Context,
    *,
    architecture: str,
    initial: ArrayRecord,
    recorder: RoundRecorder,
    n_agencies: int,
    train_config: dict[str, Scalar],
    rounds: int,
    timeout: float,
    run_dir: Path,
    on_model: Callable[[int, ArrayRecord], None],
) -> tuple[ArrayRecord, float]:
    """Run `rounds` rounds of FedAvg with SecAgg+ (every agency a neighbour of every other,
    shares reconstructable by a majority) and Peel's evaluation after each, continuing from the
    architecture's checkpoint if it has one; returns the final global model and the training
    seconds of all attempts."""
    if n_agencies < 3:
        raise ValueError(f"{architecture}: secure aggregation needs at least 3 agencies (with 2, each can subtract its own update from the sum); got {n_agencies}")
    saved = checkpoint.load(run_dir, architecture)
    done = 0 if saved is None else saved.round
    current = initial if saved is None else saved.arrays
    keys = list(initial.keys())
    progress = RecordingFedAvg(recorder, n_agencies, rounds)
    evaluate = _Evaluate(progress, keys, architecture, timeout, run_dir=run_dir, round_offset=done, on_model=on_model, spent=0.0 if saved is None else saved.wall_s)
    if saved is not None and saved.phase == AGGREGATED:  # formed (maybe sent), not evaluated
        recorder.train_rows(saved.train_rows)
        evaluate.evaluate(grid, saved.round, current)
    if done >= rounds:
        return current, evaluate.wall_s()
    counts = training_counts(grid, n_agencies, timeout)
    recorder.node_agency.update({node: name for node, (name, _) in counts.items()})
    strategy = SecAggFedAvg(n_agencies, train_config, keys, ndarrays_to_parameters(current.to_numpy_ndarrays()), round_offset=done)
    fit = RecordingSecAggPlus(
        recorder,
        progress,
        num_shares=n_agencies,
        reconstruction_threshold=n_agencies // 2 + 1,
        max_weight=float(max(n for _, n in counts.values())),
        clipping_range=CLIPPING_RANGE,
        timeout=timeout,
    )
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=rounds - done, round_timeout=timeout), strategy=strategy, client_manager=SimpleClientManager())
    legacy.state = RecordDict()  # the workflow's scratch records stay out of the ServerApp's state
    DefaultWorkflow(fit_workflow=fit, evaluate_workflow=evaluate)(grid, legacy)
    final = compat.arrayrecord_to_parameters(legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
    return _keyed(final, keys), evaluate.wall_s()
