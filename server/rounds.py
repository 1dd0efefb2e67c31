"""The coordinator's round loop for Message-API strategies, resumable from a checkpoint.

The same steps as Flower 1.42's `Strategy.start` (configure_train → send → aggregate_train →
configure_evaluate → send → aggregate_evaluate), but it can start at any round and it
checkpoints every round: after the model is formed and before it is sent (so a resumed run
reuses that exact model), and after its evaluation rows are written. Rounds are numbered as in
an uninterrupted run, so agencies derive the same seeds, dropout draws and ledger rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from server import checkpoint
from server.checkpoint import AGGREGATED, EVALUATED, Checkpoint
from server.recorder import RoundRecorder


def strategy_state(strategy: Strategy) -> dict:
    """What a strategy needs to continue (e.g. central DP's spend); {} for stateless ones."""
    get = getattr(strategy, "checkpoint_state", None)
    return get() if get is not None else {}


def restore_strategy(strategy: Strategy, state: dict) -> None:
    if state:
        strategy.restore_checkpoint_state(state)  # type: ignore[attr-defined]


def run_rounds(
    strategy: Strategy,
    grid: Grid,
    *,
    run_dir: Path,
    architecture: str,
    recorder: RoundRecorder,
    initial: ArrayRecord,
    num_rounds: int,
    timeout: float,
    train_config: ConfigRecord,
    evaluate_config: ConfigRecord,
    on_model: Callable[[int, ArrayRecord], None],
) -> tuple[ArrayRecord, float]:
    """Train `architecture` up to `num_rounds`, continuing from its checkpoint if it has one.
    `on_model(round, arrays)` sees every global model formed (the audit trail), before it is
    checkpointed and sent. Returns the final model and the training seconds of all attempts."""
    started = time.perf_counter()
    saved = checkpoint.load(run_dir, architecture)
    arrays, first, spent = initial, 1, 0.0
    if saved is not None:
        arrays, first, spent = saved.arrays, saved.round + 1, saved.wall_s
        restore_strategy(strategy, saved.strategy_state)
        if saved.phase == AGGREGATED:  # formed (maybe sent) but not evaluated: evaluate that model
            recorder.train_rows(saved.train_rows)
            _evaluate(strategy, grid, saved.round, arrays, evaluate_config, timeout)
            _save(run_dir, architecture, saved.round, EVALUATED, arrays, spent + time.perf_counter() - started, strategy)

    for server_round in range(first, num_rounds + 1):
        replies = grid.send_and_receive(strategy.configure_train(server_round, arrays, train_config, grid), timeout=timeout)
        formed, _ = strategy.aggregate_train(server_round, replies)
        if formed is not None:  # no update arrived (or a DP wrapper skipped the round): keep the model
            arrays = formed
        on_model(server_round, arrays)
        _save(run_dir, architecture, server_round, AGGREGATED, arrays, spent + time.perf_counter() - started, strategy, recorder.pending_train_rows())
        _evaluate(strategy, grid, server_round, arrays, evaluate_config, timeout)
        _save(run_dir, architecture, server_round, EVALUATED, arrays, spent + time.perf_counter() - started, strategy)
    return arrays, spent + time.perf_counter() - started


def _evaluate(strategy: Strategy, grid: Grid, server_round: int, arrays: ArrayRecord, config: ConfigRecord, timeout: float) -> None:
    replies = grid.send_and_receive(strategy.configure_evaluate(server_round, arrays, config, grid), timeout=timeout)
    strategy.aggregate_evaluate(server_round, replies)


def _save(run_dir: Path, architecture: str, server_round: int, phase: str, arrays: ArrayRecord, wall_s: float, strategy: Strategy, train_rows: dict | None = None) -> None:
    checkpoint.save(run_dir, Checkpoint(architecture, server_round, phase, arrays, wall_s, strategy_state(strategy), train_rows or {}))
