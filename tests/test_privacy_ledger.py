"""The agency's budget ledger: the spend persists across runs, a release past the budget is
refused with nothing written, resets need confirmation and are recorded, foreign or broken files
are refused by name, and a process killed with SIGKILL never leaves the ledger under-counting."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from privacy.accounting import epsilon
from privacy.budget import BudgetExceeded, plan_dp
from privacy.ledger import LEDGER_FILENAME, ConfirmationRequired, Ledger, LedgerError

ROOT = Path(__file__).resolve().parents[1]
DELTA = 1e-5
RELEASE = (1.2, 0.02, 50)


def _charge(ledger: Ledger, round: int, release=RELEASE, budget: float = 10.0, run_id: str = "run-1") -> float:
    return ledger.charge(run_id, "fedavg-dp", round, release, delta=DELTA, accountant="auto", budget=budget)


def test_a_second_run_starts_from_the_spend_already_recorded(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        first = [_charge(ledger, r) for r in (1, 2)]
    with Ledger.open(path, "Avon") as ledger:
        assert ledger.history() == [RELEASE, RELEASE]
        spent = ledger.spent(DELTA)
        assert spent == pytest.approx(first[-1]) == pytest.approx(epsilon([RELEASE] * 2, DELTA))
        # The second run plans with what is left and charges on top of it.
        plan = plan_dp(
            2_000, batch_size=40, local_epochs=1, rounds=2, target_epsilon=4.0, delta=DELTA, max_grad_norm=1.0,
            prior=ledger.history(),
        )
        assert plan.prior_epsilon == pytest.approx(spent)
        after = ledger.charge("run-2", "fedavg-dp", 1, plan.release, delta=DELTA, accountant=plan.accountant, budget=4.0)
        rows = ledger.rows()
    assert after > spent
    assert [r["run_id"] for r in rows] == ["run-1", "run-1", "run-2"]
    assert rows[-1]["epsilon_before"] == pytest.approx(spent)
    assert rows[-1]["epsilon_after"] == pytest.approx(after)
    assert rows[-1]["accountant"] == "pld"
    assert rows[-1]["recorded_at"].endswith("+00:00")


def test_a_release_past_the_budget_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        spent = _charge(ledger, 1, budget=1.0)
        before = path.read_bytes()
        with pytest.raises(BudgetExceeded, match=f"ε spent {spent:.4g}.*budget 1 at δ=1e-05"):
            _charge(ledger, 2, release=(0.6, 0.1, 500), budget=1.0)
        assert len(ledger.rows()) == 1
        assert ledger.spent(DELTA) == pytest.approx(spent)
    assert path.read_bytes() == before


def test_budget_changes_are_recorded_with_their_source(tmp_path):
    with Ledger.open(tmp_path / LEDGER_FILENAME, "Avon") as ledger:
        assert ledger.budget() is None
        assert ledger.set_budget(1.0, DELTA, "configs/default.yaml")
        assert not ledger.set_budget(1.0, DELTA, "configs/default.yaml")  # unchanged: not recorded
        assert ledger.set_budget(2.0, DELTA, "--set privacy.epsilon=2")
        assert ledger.budget().epsilon == 2.0
        changes = [(b.epsilon, b.source) for b in ledger.budget_changes()]
        assert changes == [(1.0, "configs/default.yaml"), (2.0, "--set privacy.epsilon=2")]
        with pytest.raises(ValueError, match="source"):
            ledger.set_budget(3.0, DELTA, " ")


def test_reset_needs_confirmation_is_recorded_and_keeps_the_releases(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        _charge(ledger, 1)
        _charge(ledger, 2)
        with pytest.raises(ConfirmationRequired, match=f"{path}: refusing to reset .* Avon"):
            ledger.reset("new financial year", confirm=False)
        assert ledger.resets() == [] and len(ledger.history()) == 2
        record = ledger.reset("new financial year", confirm=True, actor="dpo@avon")
        assert ledger.history() == [] and ledger.spent(DELTA) == 0.0
        _charge(ledger, 1, run_id="run-2")
        assert ledger.spent(DELTA) == pytest.approx(epsilon([RELEASE], DELTA))
        assert [r["counted"] for r in ledger.rows()] == [0, 0, 1]
        (stored,) = ledger.resets()
    assert stored == record
    assert (stored.reason, stored.actor, stored.after_release_id) == ("new financial year", "dpo@avon", 2)


def test_the_ledger_is_append_only(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        _charge(ledger, 1)
        ledger.set_budget(1.0, DELTA, "test")
        ledger.reset("test", confirm=True)
    conn = sqlite3.connect(path)
    for sql in ("DELETE FROM releases", "UPDATE releases SET steps = 0", "DELETE FROM budget", "UPDATE resets SET reason = ''"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()


def test_foreign_corrupt_and_unrelated_files_are_refused_by_name(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        for r in range(1, 30):
            _charge(ledger, r, release=(1.2 + r / 100, 0.02, 5), budget=1e6)
    with pytest.raises(LedgerError, match=f"^{path}: ledger of agency 'Avon', not 'Kent'$"):
        Ledger.open(path, "Kent")

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(LedgerError, match=f"^{garbage}: unreadable or corrupt ledger"):
        Ledger.open(garbage, "Avon")

    # A real ledger with its later pages overwritten.
    damaged = tmp_path / "damaged.sqlite"
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = os.urandom(len(data) - 4096)
    damaged.write_bytes(bytes(data))
    with pytest.raises(LedgerError, match=f"^{damaged}: .*corrupt"):
        Ledger.open(damaged, "Avon")

    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE incidents (id INTEGER)").connection.commit()
    with pytest.raises(LedgerError, match=f"^{other}: an SQLite file that is not a Peel ledger$"):
        Ledger.open(other, "Avon")

    with pytest.raises(LedgerError, match="does not exist"):
        Ledger.open(tmp_path / "missing" / LEDGER_FILENAME, "Avon")
    with pytest.raises(LedgerError, match="no ledger file"):
        Ledger.inspect(tmp_path / "nothing.sqlite")


def test_two_writers_on_one_file_never_lose_a_release(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    Ledger.open(path, "Avon").close()
    errors = []

    def writer(name: str) -> None:
        try:
            with Ledger.open(path, "Avon") as ledger:
                for r in range(4):
                    ledger.charge(name, "fedavg-dp", r, RELEASE, delta=DELTA, accountant="auto", budget=100.0)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger.open(path, "Avon") as ledger:
        rows = ledger.rows()
    assert len(rows) == 8
    # Each charge saw every earlier one: ε before a release is ε after the previous one.
    for previous, row in pairwise(rows):
        assert row["epsilon_before"] == pytest.approx(previous["epsilon_after"])


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from privacy.ledger import Ledger

    with Ledger.open(sys.argv[1], "Avon") as ledger:
        round = len(ledger.history())
        while True:
            eps = ledger.charge("kill-test", "fedavg-dp", round, (1.0, 0.01, 10), delta=1e-5, accountant="pld", budget=1e9)
            print("committed", repr(eps), flush=True)
            round += 1
    """
)


def test_sigkill_at_random_moments_never_under_counts(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    script = tmp_path / "charge_forever.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    reported, last_spent, last_reported_eps = 0, 0.0, 0.0
    for attempt in range(4):
        child = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        try:
            first = child.stdout.readline()  # at least one commit, so the kill lands inside the loop
            assert first.startswith("committed"), f"child failed to start: {first!r}"
            threading.Event().wait(rng.uniform(0.0, 0.4))
            os.kill(child.pid, signal.SIGKILL)
            lines = [first, *child.stdout.read().splitlines()]
        finally:
            child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL
        committed = [float(line.split()[1]) for line in lines if line.startswith("committed")]
        reported += len(committed)
        last_reported_eps = committed[-1]
        with Ledger.open(path, "Avon") as ledger:
            counted = len(ledger.history())
            spent = ledger.spent(1e-5)
        context = f"seed {seed}, kill {attempt + 1}"
        # Every release the child reported is there; at most the one in flight more.
        assert reported <= counted <= reported + 1, context
        assert spent >= last_spent, context
        assert spent >= last_reported_eps * (1 - 1e-9), context
        last_spent = spent
        reported = counted  # the next child continues from what the ledger holds
