"""`peel analyze` with `audit: true` audits each release design, and says when the federated share
σ was floored (the demo budget does not floor; a huge budget does)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.cli import main

CONFIG = (
    "data: {{source: synthetic, agencies: 3, incidents: 6000, months: 12}}\n"
    "privacy: {{epsilon: {budget}, delta: 1.0e-5}}\n"
    "analytics: {{mode: federated, tolerate: 1, epsilon: {eps}, queries: [{{name: by_type, by: [crime_type]}}, {{name: by_month, by: [month]}}]}}\n"
)


def _analyze(tmp_path: Path, budget: float, eps: float, *extra: str) -> dict:
    config = tmp_path / "a.yaml"
    config.write_text(f"output: {tmp_path / 'runs'}\n" + CONFIG.format(budget=budget, eps=eps), encoding="utf-8")
    assert main(["analyze", str(config), *extra]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["analytics"]["queries"]


def test_audit_true_audits_every_released_query_against_its_charge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = _analyze(tmp_path, 2.0, 1.0, "--set", "audit=true")
    for q in queries.values():
        audit = q["audit"]
        assert audit["passed"] and audit["honest_shares"] == 2 and audit["share_sigma"] == pytest.approx(q["share_sigma"])
        assert audit["lower_bound"] <= audit["claimed_epsilon"] and audit["ceiling"] <= audit["claimed_epsilon"]
        assert not q["share_floored"]
    assert "audit: ε ≥" in capsys.readouterr().out


def test_a_floored_share_sigma_is_said_and_spends_less_than_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = _analyze(tmp_path, 60.0, 40.0)
    for q in queries.values():
        assert q["share_floored"] and q["sigma_charged"] > 2 * q["sigma"] and "audit" not in q
        assert max(q["epsilon_after"].values()) < 40.0 / 2
    assert "share σ floored at" in capsys.readouterr().out
