"""Peel's recording behaviour for any Flower strategy: every reply goes to the round recorder
(per-agency rows), metrics aggregate the way Peel reports them, and each round logs a progress
line. `RecordingFedAvg` is it on FedAvg; server/robust.py puts it on the robust aggregators."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from federation.contract import EPSILON_SPENT_TO_DATE, EVALUATED_LOCALLY
from server.aggregation import aggregate_metrics
from server.recorder import RoundRecorder

log = logging.getLogger("peel.server")


class Recording:
    """Mixin for a Flower FedAvg-family strategy (put it first among the bases); extra keyword
    arguments go to that strategy (e.g. FedTrimmedAvg's beta)."""

    # How the progress line names the ε it reports (central DP reports an agency-level ε).
    epsilon_label = "ε spent to date, max"

    def __init__(self, recorder: RoundRecorder, n_agencies: int, num_rounds: int, **strategy_args: object) -> None:
        # Every agency takes part in every round; a refusal or failure is an error reply and
        # the round aggregates the agencies that answered.
        super().__init__(  # type: ignore[call-arg]
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=n_agencies,
            min_evaluate_nodes=n_agencies,
            min_available_nodes=n_agencies,
            train_metrics_aggr_fn=aggregate_metrics,
            evaluate_metrics_aggr_fn=aggregate_metrics,
            **strategy_args,
        )
        self.recorder = recorder
        self.num_rounds = num_rounds
        self._epsilon_max: float | None = None
        self._train_failed = 0
        self._started = self._round_ended = time.monotonic()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.note_train(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        if arrays is not None:
            # Over every agency that answered, also when the aggregator kept only some updates
            # (Krum): ε is a worst case over all of them, counts are totals.
            metrics = self.train_metrics_aggr_fn([msg.content for msg in replies if not msg.has_error()], self.weighted_by_key)  # type: ignore[attr-defined]
        self.note_epsilon(metrics.get(EPSILON_SPENT_TO_DATE) if metrics is not None else None)
        return arrays, metrics

    def note_train(self, replies: list[Message]) -> None:
        """Record this round's train replies per agency (also when a wrapper around this
        strategy decides not to aggregate them)."""
        self.recorder.train_replies(replies)
        self.note_failures(sum(msg.has_error() for msg in replies))

    def note_failures(self, failed: int) -> None:
        self._train_failed = failed

    def note_epsilon(self, epsilon: float | None) -> None:
        """The ε the next progress line reports (cumulative, worst case)."""
        self._epsilon_max = epsilon

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        self.recorder.evaluate_replies(server_round, replies)
        answered = [msg for msg in replies if not msg.has_error()]
        if answered and all(EVALUATED_LOCALLY in msg.content["metrics"] for msg in answered):
            metrics = None  # DP agencies keep their test metrics (federation/contract.py)
        else:
            metrics = super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]
        auc = metrics.get("auc") if metrics is not None else None
        now = time.monotonic()
        # The last round's duration predicts the next ones (the first also pays start-up).
        remaining = (now - self._round_ended) * (self.num_rounds - server_round)
        elapsed, self._round_ended = now - self._started, now
        log.info(
            "%s round %d/%d: AUC %s%s%s (%.0f s, ~%.0f s left)",
            self.recorder.architecture,
            server_round,
            self.num_rounds,
            "n/a" if auc is None else f"{auc:.3f}",
            "" if self._epsilon_max is None else f", {self.epsilon_label} {self._epsilon_max:.3f}",
            f", {self._train_failed} agenc{'y' if self._train_failed == 1 else 'ies'} sent no update" if self._train_failed else "",
            elapsed,
            remaining,
        )
        return metrics


class RecordingFedAvg(Recording, FedAvg):
    """Flower's FedAvg (weighted by each agency's number of training records), recorded."""
