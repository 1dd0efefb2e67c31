"""The release boundary end to end (issue: every privacy number Peel prints is true).

All six architectures with `audit: true` on a tiny federation: every field of every message
every agency sent (the audit trail lists them) is declared in federation/contract.py for its
regime; ε per agency and round, recomputed from the agency's ledger by an independent
dp-accounting call, matches what the agency sent within 1%; a second run on the same agency
folders shows the spend to date and warns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dp_accounting import dp_event, pld

from federation import contract
from privacy.ledger import Ledger

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
seed: 2
output: out
data: {agencies: 3, incidents: 6000, months: 12}
task: {test_months: 3, hidden: [16]}
federation: {rounds: 2, batch_size: 64}
privacy: {epsilon: 2.0, central: {epsilon: 8.0}}
architectures: [central, local, fedavg, fedavg-dp, fedavg-dp-secagg, fedavg-central-dp]
audit: true
"""
# Names that would be side channels of DP training if they left a DP agency in the clear.
SIDE_CHANNEL = re.compile(r"loss|batch|positive|label|seconds|time", re.IGNORECASE)


def _peel(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "experiments.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def _run_dir(cwd: Path, result: subprocess.CompletedProcess) -> Path:
    return cwd / result.stdout.split("Results: ")[1].split("/summary.json")[0]


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("releases")
    (cwd / "six.yaml").write_text(CONFIG)
    return _run_dir(cwd, _peel(cwd, "run", "six.yaml"))


def _trail(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines() if line.strip()]


def test_every_field_every_agency_sent_is_declared(six):
    entries = [e for e in _trail(six) if e["agency"] != "coordinator" and e["type"] in contract.MESSAGES]
    seen = {(e["type"], e["architecture"]) for e in entries}
    # Every architecture's agencies spoke, in training and evaluation (and the SecAgg+ query).
    for arch in ("fedavg", "fedavg-dp", "fedavg-dp-secagg", "fedavg-central-dp"):
        assert (contract.TRAIN_REPLY, arch) in seen and (contract.EVALUATE_REPLY, arch) in seen, arch
    for entry in entries:
        regime = contract.regime(entry["architecture"] or "")
        contract.check(entry["type"], regime, entry["fields"])  # raises on an undeclared field
        if regime == "dp":
            public = {f for f in entry["fields"] if contract.declared(entry["type"], "dp")[f].kind == "public"}
            assert not {f for f in public if SIDE_CHANNEL.search(f)}, entry
    dp_evals = [e for e in entries if e["type"] == contract.EVALUATE_REPLY and contract.regime(e["architecture"]) == "dp"]
    assert dp_evals and all(e["fields"] == sorted([contract.AGENCY, contract.EVALUATED_LOCALLY]) for e in dp_evals)


def test_declaration_has_no_public_side_channel_for_dp():
    for release in contract.RELEASES:
        if release.regime == "dp" and release.kind == "public":
            assert not SIDE_CHANNEL.search(release.field), release


def test_summary_lists_the_releases_and_names_each_epsilon(six):
    summary = json.loads((six / "summary.json").read_text())
    assert summary["releases"] == contract.release_table()
    for arch in ("fedavg-dp", "fedavg-dp-secagg"):
        entry = summary["architectures"][arch]
        assert entry["neighbouring"] == "add-remove" and entry["status"] == "trained"
        for agency in entry["per_agency"].values():
            assert set(agency) >= {"epsilon_this_run", "epsilon_spent_to_date", "epsilon_budget", "delta", "neighbouring"}
            assert agency["epsilon_this_run"] <= agency["epsilon_spent_to_date"] <= agency["epsilon_budget"] * (1 + 1e-6)
    # No exact label counts in the summary.
    assert not any(k.startswith("positives") for a in summary["agencies"] for k in a["counts"])


def _independent_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """dp-accounting's PLD accountant called directly (not through Peel), add/remove-one."""
    accountant = pld.PLDAccountant(value_discretization_interval=1e-4)  # add/remove-one by default
    for sigma, q, steps in history:
        event = dp_event.GaussianDpEvent(sigma) if q == 1.0 else dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma))
        accountant.compose(dp_event.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)


def test_epsilon_per_round_matches_an_independent_accountant_within_one_percent(six):
    spec = json.loads((six / "federation.json").read_text())
    sent = {(e["agency"], e["architecture"], e["round"]): e["epsilon"] for e in _trail(six) if e.get("epsilon") is not None and e["agency"] != "coordinator"}
    checked = 0
    for agency in spec["agencies"]:
        with Ledger.inspect(agency["ledger"]) as ledger:
            rows = ledger.rows()
            delta = ledger.pinned_delta()
        for i, row in enumerate(rows):
            history = [(r["sigma"], r["sample_rate"], r["steps"]) for r in rows[: i + 1]]
            printed = sent[(agency["name"], row["architecture"], row["round"])]
            assert printed == pytest.approx(_independent_epsilon(history, delta), rel=0.01), (agency["name"], row["architecture"], row["round"])
            checked += 1
    assert checked >= 3 * (1 + 2 + 2)  # per agency: its count and two rounds of each DP architecture


def test_threat_model_release_table_is_the_declaration():
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    assert contract.markdown_table() in text, "docs/threat-model.md's release table differs: regenerate it with `python scripts/release_table.py`"


def test_a_second_run_on_the_same_agencies_shows_the_spend_to_date_and_warns(tmp_path):
    folder = tmp_path / "agencies"
    generate = tmp_path / "gen.yaml"
    generate.write_text(CONFIG.replace("architectures: [central, local, fedavg, fedavg-dp, fedavg-dp-secagg, fedavg-central-dp]", "architectures: [fedavg-dp]").replace("audit: true", "audit: false"))
    _peel(tmp_path, "generate", "gen.yaml", str(folder))
    again = tmp_path / "again.yaml"
    again.write_text(
        f"seed: 2\noutput: out\ndata: {{source: agencies, path: {folder}}}\ntask: {{test_months: 3, hidden: [16]}}\n"
        "federation: {rounds: 2, batch_size: 64}\nprivacy: {epsilon: 2.0}\narchitectures: [central, fedavg-dp]\n"
    )
    first = _peel(tmp_path, "run", "again.yaml")
    second = _peel(tmp_path, "run", "again.yaml")
    one = json.loads((_run_dir(tmp_path, first) / "summary.json").read_text())["architectures"]["fedavg-dp"]
    summary_two = json.loads((_run_dir(tmp_path, second) / "summary.json").read_text())
    two = summary_two["architectures"]["fedavg-dp"]
    for name, agency in two["per_agency"].items():
        before = one["per_agency"][name]["epsilon_spent_to_date"]
        if agency.get("epsilon_spent_to_date") is not None:  # it released something: the spend grew
            assert agency["epsilon_spent_to_date"] >= before
            assert agency["epsilon_this_run"] < agency["epsilon_spent_to_date"]
        ledger = summary_two["ledgers"][name]
        assert ledger["epsilon_spent_to_date"] >= before
    assert "left" in second.stderr and "warning" in second.stdout + second.stderr.lower()
    assert summary_two["warnings"]
