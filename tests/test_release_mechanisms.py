"""The release seam (privacy/mechanisms.py): Laplace and discrete-Gaussian releases charged to an
agency's ledger beside DP-SGD rounds and composed with them by PLD."""

import math
import sqlite3

import pytest
from dp_accounting import dp_event as ev
from dp_accounting.pld import PLDAccountant

from privacy.accounting import MechanismEvent, epsilon
from privacy.budget import BudgetExceeded
from privacy.ledger import LEDGER_FILENAME, Ledger
from privacy.ledger_anchor import anchor_state, write_anchor
from privacy.ledger_schema import SCHEMA

DELTA = 1e-5
ROUND = (1.1, 0.01, 500)  # one DP-SGD round: σ, q, steps
LAPLACE_COUNT = MechanismEvent("laplace", noise=2.0, sensitivity=1.0)  # scale b = 2, L1 sensitivity 1
GAUSSIAN_COUNT = (5.0, 1.0, 1)  # how clients/count.py charges a Gaussian count today
GAUSSIAN_SUM = MechanismEvent("gaussian", noise=10.0, sensitivity=2.0)  # std 10 at L2 sensitivity 2


def _independent(delta):
    """The same history built directly from dp-accounting's events and PLDAccountant."""
    acc = PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(ev.PoissonSampledDpEvent(0.01, ev.GaussianDpEvent(1.1)), 500 * 2)
    acc.compose(ev.LaplaceDpEvent(2.0 / 1.0))
    acc.compose(ev.GaussianDpEvent(5.0))
    acc.compose(ev.GaussianDpEvent(10.0 / 2.0))
    return acc.get_epsilon(delta)


def test_a_mixed_history_charged_to_a_ledger_equals_an_independent_pld_composition(tmp_path):
    with Ledger.open(tmp_path / LEDGER_FILENAME, "Avon") as ledger:
        ledger.charge("run", "fedavg-dp", 0, ROUND, delta=DELTA, accountant="auto", budget=50.0)
        ledger.charge("run", "fedavg-dp", 1, ROUND, delta=DELTA, accountant="auto", budget=50.0)
        ledger.charge("run", "count", 0, LAPLACE_COUNT, delta=DELTA, accountant="auto", budget=50.0, mechanism="laplace-count")
        ledger.charge("run", "count", 1, GAUSSIAN_COUNT, delta=DELTA, accountant="auto", budget=50.0, mechanism="gaussian-count")
        after = ledger.charge("run", "sum", 0, GAUSSIAN_SUM, delta=DELTA, accountant="auto", budget=50.0)
        spent = ledger.spent()
        rows = ledger.rows()
    reference = _independent(DELTA)
    assert spent == pytest.approx(reference, rel=0.01)
    assert after == pytest.approx(spent, rel=1e-9)
    assert [r["mechanism"] for r in rows] == ["subsampled-gaussian"] * 2 + ["laplace-count", "gaussian-count", "gaussian"]
    assert [r["kind"] for r in rows] == [None, None, "laplace", None, "gaussian"]
    # The Laplace count is really counted: without it the same history spends clearly less.
    assert epsilon([ROUND, ROUND, GAUSSIAN_COUNT, GAUSSIAN_SUM], DELTA) < 0.9 * spent


def test_the_discrete_gaussian_is_accounted_exactly_not_as_the_continuous_one():
    # Canonne, Kamath, Steinke 2020, Thm 7: for X ~ N_Z(0, σ²) and integer sensitivity Δ,
    # δ(ε) = P[X > εσ²/Δ − Δ/2] − e^ε P[X > εσ²/Δ + Δ/2]. Solve δ(ε) = DELTA for ε by bisection.
    sigma = 5.0
    xs = range(-400, 401)
    weights = [math.exp(-x * x / (2 * sigma * sigma)) for x in xs]
    total = sum(weights)

    def tail(t):
        return sum(w for x, w in zip(xs, weights, strict=True) if x > t) / total

    def delta_of(eps):
        return tail(eps * sigma**2 - 0.5) - math.exp(eps) * tail(eps * sigma**2 + 0.5)

    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > DELTA else (lo, mid)
    exact = hi
    ours = epsilon([MechanismEvent("discrete-gaussian", noise=sigma, sensitivity=1)], DELTA)
    assert ours == pytest.approx(exact, rel=0.01) and ours >= exact * (1 - 1e-6)
    # The continuous Gaussian of the same σ is no upper bound here: its ε is below the exact one.
    assert epsilon([(sigma, 1.0, 1)], DELTA) < exact


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_prv_and_rdp_refuse_a_history_they_cannot_account(tmp_path, accountant):
    with pytest.raises(ValueError, match=f"the {accountant} accountant accounts only for Gaussian releases, not a laplace release"):
        epsilon([ROUND, LAPLACE_COUNT], DELTA, accountant)
    with Ledger.open(tmp_path / LEDGER_FILENAME, "Avon") as ledger:
        with pytest.raises(ValueError, match="use pld"):
            ledger.charge("run", "count", 0, LAPLACE_COUNT, delta=DELTA, accountant=accountant, budget=5.0)
        assert ledger.rows() == []


def test_bad_events_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="unknown mechanism kind 'poisson'"):
        MechanismEvent("poisson", 1.0)
    with pytest.raises(ValueError, match="laplace sensitivity must be a finite number > 0"):
        MechanismEvent("laplace", 1.0, sensitivity=0)
    with pytest.raises(ValueError, match="discrete-gaussian sensitivity must be a whole number"):
        MechanismEvent("discrete-gaussian", 3.0, sensitivity=1.5)


def test_a_laplace_charge_past_the_budget_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        first = ledger.charge("run", "count", 0, MechanismEvent("laplace", 4.0), delta=DELTA, accountant="auto", budget=1.0)
        assert 0.2 < first <= 0.25 * (1 + 1e-6)  # pure ε = Δ/b = 0.25; at δ > 0 a little less
        anchor_before = ledger.anchor()
        with pytest.raises(BudgetExceeded, match="budget 1 at δ=1e-05"):
            ledger.charge("run", "count", 1, MechanismEvent("laplace", 1.0), delta=DELTA, accountant="auto", budget=1.0)
        assert len(ledger.rows()) == 1 and ledger.anchor() == anchor_before
        assert ledger.spent() == pytest.approx(first, rel=1e-9)


def _v2_ledger(path):
    """A ledger file as the previous release (schema version 2) wrote it, with its anchor."""
    v2 = [s.replace(",\n        kind TEXT,\n        sensitivity REAL CHECK (sensitivity IS NULL OR sensitivity > 0))", ")") for s in SCHEMA]
    assert v2 != SCHEMA  # the releases table lost the two new columns
    conn = sqlite3.connect(path)
    for statement in v2:
        conn.execute(statement)
    meta = [("format", "peel-ledger"), ("schema_version", "2"), ("agency", "Avon"), ("created_at", "2026-01-01"), ("ledger_id", "ab" * 16), ("delta", repr(DELTA))]
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
    for r in range(2):
        conn.execute(
            "INSERT INTO releases (run_id, architecture, round, sigma, sample_rate, steps, epsilon_before, epsilon_after, delta,"
            " accountant, recorded_at, mechanism) VALUES ('old', 'fedavg-dp', ?, 1.1, 0.01, 500, 0, 0, ?, 'pld', '2026-01-01', ?)",
            (r, DELTA, "subsampled-gaussian" if r == 0 else "gaussian-count"),
        )
    conn.commit()
    names = [d[0] for d in conn.execute("SELECT *, 1 AS counted FROM releases").description]
    rows = [dict(zip(names, row, strict=True)) for row in conn.execute("SELECT *, 1 AS counted FROM releases ORDER BY id")]
    conn.close()
    write_anchor(path, anchor_state(path, "Avon", rows, dict(meta), None))


def test_a_version_2_ledger_opens_migrates_and_composes_with_new_events(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    _v2_ledger(path)
    original = path.read_bytes()
    with Ledger.inspect(path) as ledger:  # a reader migrates nothing
        assert ledger.history() == [ROUND, ROUND]
        assert ledger.spent() == pytest.approx(epsilon([ROUND, ROUND], DELTA))
    assert path.read_bytes() == original
    with Ledger.open(path, "Avon") as ledger:  # the v2 anchor accepts the migrated file
        after = ledger.charge("new", "count", 0, LAPLACE_COUNT, delta=DELTA, accountant="auto", budget=50.0)
        ledger.charge("new", "count", 1, GAUSSIAN_COUNT, delta=DELTA, accountant="auto", budget=50.0, mechanism="gaussian-count")
        ledger.charge("new", "sum", 2, GAUSSIAN_SUM, delta=DELTA, accountant="auto", budget=50.0)
    assert after == pytest.approx(epsilon([ROUND, ROUND, LAPLACE_COUNT], DELTA), rel=1e-9)
    conn = sqlite3.connect(path)
    assert dict(conn.execute("SELECT key, value FROM meta").fetchall())["schema_version"] == "3"
    conn.close()
    with Ledger.open(path, "Avon") as ledger:  # reopened: the anchor (now with kinds) still matches
        assert ledger.history() == [ROUND, ROUND, LAPLACE_COUNT, GAUSSIAN_COUNT, GAUSSIAN_SUM]
        assert ledger.spent() == pytest.approx(_independent(DELTA), rel=0.01)


def test_a_reinitialised_ledger_carries_laplace_releases_over_as_laplace(tmp_path):
    path = tmp_path / LEDGER_FILENAME
    with Ledger.open(path, "Avon") as ledger:
        ledger.charge("run", "fedavg-dp", 0, ROUND, delta=DELTA, accountant="auto", budget=50.0)
        ledger.charge("run", "count", 1, LAPLACE_COUNT, delta=DELTA, accountant="auto", budget=50.0)
        spent = ledger.spent()
    path.unlink()
    Ledger.reinitialise(path, "disk lost", confirm=True)
    with Ledger.open(path, "Avon") as ledger:
        assert ledger.history() == [ROUND, LAPLACE_COUNT]
        assert ledger.spent() == pytest.approx(spent, rel=1e-9)


def test_dp_accountings_rdp_of_the_same_events_bounds_the_pld_figure_from_above():
    # A cross-check of the DpEvents the seam builds: RDP (looser) must not come out below PLD.
    from dp_accounting.rdp import RdpAccountant

    from privacy.mechanisms import dp_event

    history = [ROUND, LAPLACE_COUNT, GAUSSIAN_COUNT, GAUSSIAN_SUM]
    rdp = RdpAccountant()
    for entry in history:
        rdp.compose(dp_event(entry))
    pld = epsilon(history, DELTA)
    assert pld <= rdp.get_epsilon(DELTA) <= 3 * pld


def test_under_replace_one_only_unsampled_laplace_is_accounted(tmp_path):
    with Ledger.open(tmp_path / LEDGER_FILENAME, "Avon") as ledger:
        after = ledger.charge("run", "count", 0, LAPLACE_COUNT, delta=DELTA, accountant="auto", budget=5.0, neighbouring="replace-one")
        assert after == pytest.approx(epsilon([LAPLACE_COUNT], DELTA), rel=1e-9)
        sampled = MechanismEvent("laplace", 2.0, sample_rate=0.1, steps=10)
        with pytest.raises(ValueError, match="Poisson-subsampled laplace release is accounted for add-remove neighbours only"):
            ledger.charge("run", "count", 1, sampled, delta=DELTA, accountant="auto", budget=5.0, neighbouring="replace-one")
        assert len(ledger.rows()) == 1
