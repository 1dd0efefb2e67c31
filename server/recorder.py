"""The coordinator's round-by-round record: one JSON line per (architecture, round, agency) in
`metrics.jsonl`, written as soon as the round ends so a crash loses at most that round."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from flwr.app import Message


def _clean(value: object) -> object:
    # JSON has no NaN: an undefined metric (e.g. AUC with one class) is null.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class RoundRecorder:
    def __init__(self, metrics_path: Path, architecture: str, agencies: list[str]) -> None:
        self.metrics_path = metrics_path
        self.architecture = architecture
        self.agencies = agencies
        self.node_agency: dict[int, str] = {}
        self._train: dict[str, dict] = {}

    def _agency(self, msg: Message) -> str:
        """The agency behind a reply: named in its content, or (for an error, which carries only
        a reason) remembered from an earlier reply or named at the start of the reason."""
        node = msg.metadata.src_node_id
        if msg.has_error():
            reason = msg.error.reason or ""
            named = [a for a in self.agencies if reason.startswith(f"{a}: ")]
            if named and node not in self.node_agency:
                self.node_agency[node] = named[0]
        elif "agency" in msg.content.config_records:
            self.node_agency[node] = str(msg.content["agency"]["name"])
        return self.node_agency.get(node, f"node-{node}")

    def _rows(self, replies: Iterable[Message], error_key: str, count_key: str) -> dict[str, dict]:
        rows: dict[str, dict] = {}
        for msg in replies:
            agency = self._agency(msg)
            if msg.has_error():
                rows[agency] = {error_key: msg.error.reason}
                continue
            row = {}
            for key, value in msg.content["metrics"].items():
                name = count_key if key == "num-examples" else key.replace("-", "_")
                row[name] = _clean(value)
            rows[agency] = row
        return rows

    def train_replies(self, replies: Iterable[Message]) -> None:
        self._train = self._rows(replies, "train_error", "n_train")

    def evaluate_replies(self, server_round: int, replies: Iterable[Message]) -> None:
        """Merge this round's train and evaluate rows per agency and append them."""
        evaluated = self._rows(replies, "evaluate_error", "n_test")
        lines = []
        for agency in sorted(set(self._train) | set(evaluated)):
            row = {"architecture": self.architecture, "round": server_round, "agency": agency}
            row.update(self._train.get(agency, {}))
            row.update(evaluated.get(agency, {}))
            lines.append(json.dumps(row))
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
        self._train = {}
