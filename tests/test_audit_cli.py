"""`peel audit RUN_DIR` on a finished tiny run made with `audit: true` (it used to crash on every
run folder): exits 0 and writes every architecture's audit block back into summary.json, with
the canary audits of the agency's own DP-SGD — its kept plan, the rounds its ledger charged, and
the ε the ledger charged as the claim — each bound beside its ceiling."""

from __future__ import annotations

import json
from pathlib import Path

import conftest
import pytest
import yaml

from experiments.cli import main
from privacy.accounting import epsilon
from privacy.ledger import Ledger

CONFIG = {**conftest.TINY, "architectures": ["fedavg", "fedavg-dp"], "audit": {"enabled": True, "canaries": 60}}


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("audit-cli")
    (cwd / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "output": str(cwd / "runs")}))
    assert main(["run", str(cwd / "tiny.yaml")]) == 0
    (run_dir,) = (cwd / "runs").iterdir()
    # Drop what the run's own audit wrote, so that what is checked below is `peel audit`'s.
    summary = json.loads((run_dir / "summary.json").read_text())
    for entry in summary["architectures"].values():
        entry.pop("audit")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert main(["audit", str(run_dir)]) == 0
    return run_dir


def test_peel_audit_writes_every_audit_block(audited_run):
    summary = json.loads((audited_run / "summary.json").read_text())
    for arch in CONFIG["architectures"]:
        audit = summary["architectures"][arch]["audit"]
        assert 0.0 <= audit["mia_auc"] <= 1.0
        assert audit["epsilon_lower_bound"] >= 0.0 and audit["ceiling"] > 0.0, arch
    assert summary["architectures"]["fedavg"]["audit"]["epsilon_claimed"] is None  # no DP: nothing claimed


def test_dp_canary_audits_claim_what_the_ledger_charged(audited_run):
    summary = json.loads((audited_run / "summary.json").read_text())
    audit = summary["architectures"]["fedavg-dp"]["audit"]
    name = audit["canary"]["agency"]
    spec = json.loads((audited_run / "federation.json").read_text())
    ledger_path = next(Path(a["ledger"]) for a in spec["agencies"] if a["name"] == name)
    with Ledger.inspect(ledger_path) as ledger:
        rows = [r for r in ledger.rows() if (r["run_id"], r["architecture"]) == (audited_run.name, "fedavg-dp")]
    assert len(rows) == CONFIG["federation"]["rounds"] == audit["canary"]["rounds"]
    charged = epsilon([(r["sigma"], r["sample_rate"], r["steps"]) for r in rows], rows[0]["delta"], rows[0]["accountant"])
    assert audit["epsilon_claimed"] == pytest.approx(charged, rel=1e-9)
    whitebox = audit["whitebox"]
    assert whitebox["epsilon_claimed"] == pytest.approx(charged, rel=1e-9)
    assert whitebox["steps"] == sum(r["steps"] for r in rows)  # every step the ledger charged, one hook call each
    for bound in (audit, whitebox):
        # The correct mechanism: never above the claim; the ceiling is below the claim by design.
        assert 0.0 <= bound["epsilon_lower_bound"] <= charged
        assert 0.0 < bound["ceiling"] < charged


def test_peel_audit_prints_each_bound_beside_its_ceiling(audited_run, capsys):
    assert main(["audit", str(audited_run)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("fedavg-dp "))
    assert "canary lower bound on ε" in line and line.count("(ceiling ") == 2 and "white-box" in line


def test_peel_audit_of_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("peel: ") and "not a run folder" in err and "Traceback" not in err
