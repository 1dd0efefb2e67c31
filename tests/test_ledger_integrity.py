"""A budget, once spent, stays spent: δ is pinned by the first charge, version-1 ledgers keep
working, lifetime spend survives a reset, and a ledger that is deleted, emptied, replaced or cut
back is refused against its anchor until an explicit re-initialisation carries its spend over."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from experiments import budget_cmd
from experiments.cli import main
from privacy.accounting import epsilon
from privacy.budget import BudgetExceeded, plan_dp
from privacy.ledger import (
    LEDGER_FILENAME,
    ConfirmationRequired,
    DeltaMismatch,
    Ledger,
    LedgerError,
    LedgerLost,
    anchor_path,
)

DELTA = 1e-5
BUDGET = 4.0


def _spend_budget(ledger: Ledger, rounds: int = 3) -> list[float]:
    """Charge `rounds` releases planned to use the whole budget at δ=1e-5."""
    ledger.set_budget(BUDGET, DELTA, "test")
    plan = plan_dp(2_000, batch_size=40, local_epochs=1, rounds=rounds, target_epsilon=BUDGET, delta=DELTA, max_grad_norm=1.0)
    return [ledger.charge("run-1", "fedavg-dp", r, plan.release, delta=DELTA, accountant="pld", budget=BUDGET) for r in range(1, rounds + 1)]


# --- δ pinned --------------------------------------------------------------------------------
def test_a_charge_at_another_delta_is_refused_and_the_spend_stays_within_budget(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        spent = _spend_budget(ledger)[-1]
        assert spent == pytest.approx(BUDGET, rel=1e-2)
        assert ledger.pinned_delta() == DELTA
        # What `--set privacy.delta=0.5` did: at δ = 0.5 the same history costs far less ε, so
        # a plan at 0.5 finds room for more rounds; the ledger must refuse them.
        loose = plan_dp(2_000, batch_size=40, local_epochs=1, rounds=3, target_epsilon=BUDGET, delta=0.5, max_grad_norm=1.0, prior=ledger.history())
        before = path.read_bytes()
        for r in range(4, 7):
            with pytest.raises(DeltaMismatch, match=rf"^{path}: refusing a charge at δ=0.5: this ledger's δ is pinned at 1e-05"):
                ledger.charge("run-2", "fedavg-dp", r, loose.release, delta=0.5, accountant="pld", budget=BUDGET)
        assert path.read_bytes() == before
        with pytest.raises(DeltaMismatch, match="refusing a budget at δ=0.5"):
            ledger.set_budget(BUDGET, 0.5, "--set privacy.delta=0.5")
        with pytest.raises(DeltaMismatch, match="pinned δ=1e-05, not at δ=0.5"):
            ledger.spent(0.5)
        # Everything is reported at the pinned δ, and it never passed the budget.
        assert ledger.spent() == pytest.approx(epsilon(ledger.history(), DELTA)) and ledger.spent() <= BUDGET * (1 + 1e-6)
        # At the pinned δ the budget is spent: another round is refused as such.
        with pytest.raises(BudgetExceeded):
            ledger.charge("run-2", "fedavg-dp", 4, loose.release, delta=DELTA, accountant="pld", budget=BUDGET)
    with Ledger.open(path, "Avon") as ledger:  # the pin persists
        assert ledger.pinned_delta() == DELTA and len(ledger.rows()) == 3


def test_the_first_charge_must_match_the_recorded_budget_delta(tmp_path):
    with Ledger.open(tmp_path / LEDGER_FILENAME, "Avon") as ledger:
        ledger.set_budget(2.0, DELTA, "test")
        with pytest.raises(DeltaMismatch, match="budget is set at δ=1e-05"):
            ledger.charge("r", "fedavg-dp", 1, (1.0, 0.01, 10), delta=1e-6, accountant="pld", budget=2.0)
        assert ledger.pinned_delta() is None and ledger.rows() == []


# --- schema version 2 and the mechanism column --------------------------------------------
V1_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, architecture TEXT NOT NULL,
        round INTEGER NOT NULL, sigma REAL NOT NULL CHECK (sigma >= 0),
        sample_rate REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1), steps INTEGER NOT NULL CHECK (steps >= 0),
        epsilon_before REAL NOT NULL, epsilon_after REAL NOT NULL, delta REAL NOT NULL, accountant TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    """CREATE TABLE budget (id INTEGER PRIMARY KEY AUTOINCREMENT, epsilon REAL NOT NULL CHECK (epsilon > 0),
        delta REAL NOT NULL CHECK (delta > 0 AND delta < 1), source TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    """CREATE TABLE resets (id INTEGER PRIMARY KEY AUTOINCREMENT, after_release_id INTEGER NOT NULL, reason TEXT NOT NULL,
        actor TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    *(
        f"CREATE TRIGGER {t}_no_{v} BEFORE {v.upper()} ON {t} BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for t in ("releases", "budget", "resets")
        for v in ("update", "delete")
    ),
]
OLD = [(1.1, 0.02, 50), (1.1, 0.02, 50)]


def _v1_ledger(path, delta=DELTA):
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "peel-ledger"), ("schema_version", "1"), ("agency", "Avon"), ("created_at", "2025-01-01T00:00:00+00:00")])
    for r, (s, q, n) in enumerate(OLD, start=1):
        eps = epsilon(OLD[:r], delta)
        conn.execute(
            "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before, epsilon_after, delta, accountant, recorded_at)"
            " VALUES ('old-run', 'fedavg-dp', ?, ?, ?, ?, ?, ?, ?, 'pld', '2025-01-01T00:00:00+00:00')",
            (r, s, q, n, epsilon(OLD[: r - 1], delta) if r > 1 else 0.0, eps, delta),
        )
    conn.execute("INSERT INTO budget (epsilon, delta, source, recorded_at) VALUES (8.0, ?, 'old', '2025-01-01')", (delta,))
    conn.commit()
    conn.close()


def test_a_version_1_ledger_is_read_as_is_then_migrated_and_composes_old_and_new_releases(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    _v1_ledger(path)
    original = path.read_bytes()
    with Ledger.inspect(path) as ledger:  # a reader changes nothing
        assert [r["mechanism"] for r in ledger.rows()] == ["subsampled-gaussian"] * 2
        assert ledger.pinned_delta() == DELTA and ledger.spent() == pytest.approx(epsilon(OLD, DELTA))
    assert path.read_bytes() == original
    count = (5.0, 1.0, 1)  # a once-off Gaussian count release: the q = 1, one-step case
    with Ledger.open(path, "Avon") as ledger:
        after = ledger.charge("new-run", "fedavg-dp", 0, count, delta=DELTA, accountant="pld", budget=8.0, mechanism="gaussian-count")
        after2 = ledger.charge("new-run", "fedavg-dp", 1, OLD[0], delta=DELTA, accountant="pld", budget=8.0)
        rows = ledger.rows()
        assert ledger.ledger_id and ledger.pinned_delta() == DELTA
    assert after == pytest.approx(epsilon([*OLD, count], DELTA), rel=1e-9)
    assert after2 == pytest.approx(epsilon([*OLD, count, OLD[0]], DELTA), rel=1e-9)
    assert [r["mechanism"] for r in rows] == ["subsampled-gaussian", "subsampled-gaussian", "gaussian-count", "subsampled-gaussian"]
    conn = sqlite3.connect(path)
    assert dict(conn.execute("SELECT key, value FROM meta").fetchall())["schema_version"] == "3"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE releases SET mechanism = 'x'")
    conn.close()


def test_a_v1_ledger_charged_at_two_deltas_reports_at_its_first(tmp_path):
    """The old bug's state: the migration pins the first charge's δ, and ε is reported there."""
    path = tmp_path / LEDGER_FILENAME
    _v1_ledger(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before, epsilon_after, delta, accountant, recorded_at)"
                 " VALUES ('r', 'fedavg-dp', 3, 0.6, 0.02, 50, 0.1, 0.2, 0.5, 'pld', '2025-01-02')")
    conn.commit()
    conn.close()
    with Ledger.open(path, "Avon") as ledger:
        assert ledger.pinned_delta() == DELTA
        assert ledger.spent() == pytest.approx(epsilon([*OLD, (0.6, 0.02, 50)], DELTA))
        with pytest.raises(DeltaMismatch):
            ledger.charge("r", "fedavg-dp", 4, OLD[0], delta=0.5, accountant="pld", budget=100.0)


# --- lifetime spend --------------------------------------------------------------------------
def test_lifetime_spend_survives_a_reset_and_is_shown_beside_the_window(tmp_path):
    path = tmp_path / "avon" / LEDGER_FILENAME
    path.parent.mkdir()
    release = (1.2, 0.02, 50)
    with Ledger.open(path, "Avon") as ledger:
        ledger.set_budget(4.0, DELTA, "test")
        for r in (1, 2):
            ledger.charge("run-1", "fedavg-dp", r, release, delta=DELTA, accountant="pld", budget=4.0)
        ledger.reset("new year", confirm=True)
        ledger.charge("run-2", "fedavg-dp", 1, release, delta=DELTA, accountant="pld", budget=4.0)
        assert ledger.spent() == pytest.approx(epsilon([release], DELTA))
        assert ledger.lifetime_spent() == pytest.approx(epsilon([release] * 3, DELTA))
    text = budget_cmd.show(tmp_path)
    assert "ε since reset" in text and "ε lifetime" in text and "δ (pinned)" in text
    (row,) = [line.split() for line in text.splitlines() if line.startswith("Avon ")]
    # agency, 1, (+2, before, reset), ε since reset, δ, budget, remaining, lifetime, ...
    assert float(row[5]) == pytest.approx(epsilon([release], DELTA), rel=1e-3)
    assert row[6] == "1e-05"
    assert float(row[9]) == pytest.approx(epsilon([release] * 3, DELTA), rel=1e-3)


# --- anchors -----------------------------------------------------------------------------------
@pytest.fixture
def spent(tmp_path):
    """Avon's ledger with its budget of 4 spent at δ 1e-5."""
    path = tmp_path / "avon" / LEDGER_FILENAME
    path.parent.mkdir()
    with Ledger.open(path, "Avon") as ledger:
        _spend_budget(ledger)
        eps = ledger.spent()
    assert anchor_path(path).name == "ledger.anchor.json"
    anchor = json.loads(anchor_path(path).read_text())
    assert (anchor["agency"], anchor["releases"], anchor["delta"]) == ("Avon", 3, DELTA)
    return path, eps


def _damage(path, how, tmp_path):
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(b"")
    elif how == "replaced":  # a fresh ledger of the same agency copied over it
        other = tmp_path / "elsewhere" / LEDGER_FILENAME
        other.parent.mkdir()
        Ledger.open(other, "Avon").close()
        shutil.copyfile(other, path)
    elif how == "cut back":  # an older copy of itself restored over it
        older = tmp_path / "older.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("VACUUM INTO ?", (str(older),))
        conn.close()
        with Ledger.open(path, "Avon") as ledger:
            ledger.reset("spent budget: start again", confirm=True)  # whatever changes, not a release
            ledger.charge("run-2", "fedavg-dp", 1, (50.0, 0.02, 50), delta=DELTA, accountant="pld", budget=BUDGET)
        shutil.copyfile(older, path)


@pytest.mark.parametrize(("how", "message"), [("deleted", "missing"), ("truncated", "emptied"), ("replaced", "replaced: another ledger file"), ("cut back", "cut back: it holds 3 releases")])
def test_a_lost_ledger_is_refused_named_and_only_an_explicit_reinit_gets_past_it(tmp_path, spent, how, message, capsys):
    path, eps = spent
    _damage(path, how, tmp_path)
    for _attempt in range(2):  # refused every time, and the refusal writes nothing
        with pytest.raises(LedgerLost, match=f"^{path}: ledger {message}.*records {4 if how == 'cut back' else 3} releases of 'Avon'.*peel budget reinit"):
            Ledger.open(path, "Avon")
    assert (not path.exists()) if how == "deleted" else True
    # `peel budget show` names it as lost (not "empty, not a Peel ledger").
    text = budget_cmd.show(tmp_path)
    assert f"LOST: {path}: ledger {message}" in text and "empty file, not a Peel ledger" not in text
    # Re-initialising: confirmation and a reason first, then the spend is carried over.
    with pytest.raises(ConfirmationRequired):
        Ledger.reinitialise(path, "disk failure", confirm=False)
    assert main(["budget", "reinit", str(path), "--reason", "disk failure"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert main(["budget", "reinit", str(tmp_path), "--reason", "disk failure", "--yes"]) == 0
    assert "carried over" in capsys.readouterr().out
    with Ledger.open(path, "Avon") as ledger:
        (record,) = ledger.reinits()
        assert record.reason == "disk failure" and record.found.startswith(message.split(":")[0])
        carried = 4 if how == "cut back" else 3
        assert record.carried_releases == carried and len(ledger.rows()) == carried
        assert ledger.pinned_delta() == DELTA and ledger.budget().epsilon == BUDGET
        if how == "cut back":  # the anchored reset was carried too: the window is the last release
            assert ledger.lifetime_spent() > ledger.spent() > 0
        else:
            assert ledger.spent() == pytest.approx(eps, rel=1e-9)  # the budget stays spent
            with pytest.raises(BudgetExceeded):
                ledger.charge("run-3", "fedavg-dp", 1, (1.0, 0.02, 50), delta=DELTA, accountant="pld", budget=BUDGET)
    if how != "deleted":
        assert list(path.parent.glob(f"{LEDGER_FILENAME}.lost-*")), "what was in its place is kept"
    # Nothing lost any more: a second reinit is refused.
    with pytest.raises(LedgerError, match="matches its anchor; nothing to re-initialise"):
        Ledger.reinitialise(path, "again", confirm=True)


def test_growth_beyond_the_anchor_is_accepted_and_an_unspent_anchor_binds_nothing(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        ledger.charge("r", "fedavg-dp", 1, (1.0, 0.02, 50), delta=DELTA, accountant="pld", budget=100.0)
        old = anchor_path(path).read_bytes()
        ledger.charge("r", "fedavg-dp", 2, (1.0, 0.02, 50), delta=DELTA, accountant="pld", budget=100.0)
    anchor_path(path).write_bytes(old)  # a crash between a commit and its anchor: the anchor lags
    with Ledger.open(path, "Avon") as ledger:
        assert len(ledger.rows()) == 2
    assert json.loads(anchor_path(path).read_text())["releases"] == 2  # caught up on open
    # A ledger that only ever had a budget can go: nothing was spent.
    other = tmp_path / "kent.sqlite"
    with Ledger.open(other, "Kent") as ledger:
        ledger.set_budget(1.0, DELTA, "test")
    other.unlink()
    Ledger.open(other, "Kent").close()


# --- `peel audit verify` names a lost ledger -------------------------------------------------
def test_audit_verify_names_a_lost_ledger_and_one_lines_a_broken_run_folder(tmp_path, spent, capsys):
    from experiments.trail import verify_run
    from privacy import audit_trail

    path, _ = spent
    run_dir = tmp_path / "run-9"  # a later run on Avon's ledger (its releases are run-1's)
    run_dir.mkdir()
    audit_trail.close(run_dir / "audit.jsonl", "run-9")
    spec = {"run_dir": str(run_dir), "agencies": [{"name": "Avon", "ledger": str(path)}, {"name": "Kent", "ledger": str(tmp_path / "kent" / LEDGER_FILENAME)}]}
    (run_dir / "federation.json").write_text(json.dumps(spec))
    assert verify_run(run_dir) == 0  # Kent never charged (no file, no anchor): nothing to name
    capsys.readouterr()
    path.unlink()
    assert verify_run(run_dir) == 1
    assert f"ledger of Avon: {path}: ledger missing" in capsys.readouterr().out
    # Moved elsewhere, with a damaged summary, then without its spec: one line each.
    moved = tmp_path / "renamed"
    run_dir.rename(moved)
    (moved / "summary.json").write_text("{not json")
    assert verify_run(moved) == 1
    assert capsys.readouterr().out.startswith(f"peel: {moved / 'summary.json'}: unreadable run summary")
    (moved / "federation.json").unlink()
    assert verify_run(moved) == 2
    assert capsys.readouterr().out == f"peel: {moved / 'federation.json'}: missing (federation spec)\n"
