"""`peel trail verify` on a person-unit run: the releases are in the agencies' person ledgers
(beside the record ledgers), and the trail must match them — and name a lost person ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.cli import main
from privacy.person_unit import person_ledger_path


def test_a_person_unit_run_verifies_against_the_person_ledgers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(
        f"output: {tmp_path / 'runs'}\ndata: {{source: synthetic, agencies: 3, incidents: 9000, months: 12}}\n"
        "task: {test_months: 3}\nfederation: {rounds: 2}\nprivacy: {epsilon: 3.0, delta: 1.0e-5, unit: person}\n"
        "architectures: [fedavg-dp]\naudit: false\n",
        encoding="utf-8",
    )
    assert main(["run", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    assert main(["trail", "verify", str(run_dir)]) == 0
    assert "matches every agency's ledger" in capsys.readouterr().out
    spec = json.loads((run_dir / "federation.json").read_text(encoding="utf-8"))
    person = person_ledger_path(Path(spec["agencies"][0]["ledger"]))
    assert person.is_file() and not Path(spec["agencies"][0]["ledger"]).exists()  # charged the person ledger only
    person.unlink()
    assert main(["trail", "verify", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert f"ledger of {spec['agencies'][0]['name']}" in out and "missing" in out
