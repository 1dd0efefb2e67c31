"""The coordinator's round-by-round record: one JSON line per (architecture, round, agency) in
`metrics.jsonl`, written as soon as the round ends so a crash loses at most that round."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from flwr.app import Message


def _clean(value: object) -> object:
    # JSON has no NaN: an undefined metric (e.g. AUC with one class) is null.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def metric_row(metrics: Mapping[str, object], count_key: str = "n_train") -> dict:
    """An agency's metrics as row keys: `num-examples` becomes `count_key`, dashes become
    underscores, NaN becomes null."""
    return {(count_key if key == "num-examples" else key.replace("-", "_")): _clean(value) for key, value in metrics.items()}


def drop_rows(path: Path, unwanted: Callable[[dict], bool]) -> None:
    """Rewrite a JSON-lines file without the rows `unwanted` picks, atomically (temporary file,
    then rename); untouched if it has none."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and not unwanted(json.loads(line))]
    if len(kept) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)


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
            named = self.agency_named_in(msg.error.reason or "")
            if named and node not in self.node_agency:
                self.node_agency[node] = named
        elif "agency" in msg.content.config_records:
            self.node_agency[node] = str(msg.content["agency"]["name"])
        return self.node_agency.get(node, f"node-{node}")

    def agency_named_in(self, reason: str) -> str | None:
        """The agency an error reason names at its start ("NAME: ..."), if any."""
        named = [a for a in self.agencies if reason.startswith(f"{a}: ")]
        return named[0] if named else None

    def _rows(self, replies: Iterable[Message], error_key: str, count_key: str) -> dict[str, dict]:
        rows: dict[str, dict] = {}
        for msg in replies:
            agency = self._agency(msg)
            if msg.has_error():
                rows[agency] = {error_key: msg.error.reason}
                continue
            rows[agency] = metric_row(msg.content["metrics"], count_key)
        return rows

    def train_replies(self, replies: Iterable[Message]) -> None:
        self._train = self._rows(replies, "train_error", "n_train")

    def train_rows(self, rows: dict[str, dict]) -> None:
        """This round's train rows, already per agency (SecAgg+ hands the coordinator legacy
        results, not Messages); build them with `metric_row`."""
        self._train = dict(rows)

    def drop_rows_after(self, last_kept_round: int) -> None:
        """Remove this architecture's rows of rounds after `last_kept_round` (a resumed run
        writes them again); other architectures' rows are kept as they are."""
        drop_rows(self.metrics_path, lambda row: row.get("architecture") == self.architecture and int(row.get("round", 0)) > last_kept_round)

    def pending_train_rows(self) -> dict[str, dict]:
        """This round's train rows not yet written (they are written with its evaluation)."""
        return dict(self._train)

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
