"""fedavg-central-dp: agency-level DP on the coordinator. σ is calibrated for the planned rounds
at sampling rate 1 (checked against the exact Gaussian-mechanism formula); the wrappers clip each
agency's delta, average with equal weights over the fixed number of agencies and add noise of std
σ·C/n with the norm the updates were clipped to; every aggregated round is one release."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from scipy.optimize import brentq
from scipy.stats import norm

from experiments.config import ConfigError, validate
from experiments.prepare import central_dp
from federation import spec as run_spec
from federation.spec import CentralDPSpec
from privacy.accounting import epsilon
from server.central_dp import (
    CentralAdaptiveClipping,
    CentralDPError,
    CentralFixedClipping,
    central_dp_strategy,
    effective_noise_multiplier,
    plan_central,
)
from server.recorder import RoundRecorder

PRIVACY = CentralDPSpec(epsilon=2.0, delta=1e-5, accountant="prv")


def central(**settings: object) -> CentralDPSpec:
    return dataclasses.replace(PRIVACY, **settings)  # type: ignore[arg-type]
AGENCIES = ["A", "B", "C", "D"]


@pytest.fixture(autouse=True)
def _flower_task_identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0


def exact_gaussian_epsilon(sigma: float, rounds: int, delta: float) -> float:
    """ε of `rounds` Gaussian mechanisms of noise multiplier σ without sampling: one Gaussian
    mechanism with μ = √rounds/σ, whose exact (ε, δ) curve is Balle & Wang 2018, Theorem 8."""
    mu = math.sqrt(rounds) / sigma
    return brentq(lambda e: norm.cdf(-e / mu + mu / 2) - math.exp(e) * norm.cdf(-e / mu - mu / 2) - delta, 0, 100)


@pytest.mark.parametrize("target", [1.0, 4.0, 16.0])
@pytest.mark.parametrize("accountant", ["prv", "auto"])
def test_sigma_is_calibrated_for_all_rounds_at_q_1(target, accountant):
    plan = plan_central(central(epsilon=target, accountant=accountant), n_agencies=8, rounds=10)
    assert plan.accountant != "auto"  # the report names the accountant actually used
    spent = epsilon([plan.release] * 10, 1e-5, plan.accountant)
    assert spent <= target and spent == pytest.approx(target, rel=0.01)
    exact = exact_gaussian_epsilon(plan.noise_multiplier, 10, 1e-5)
    assert exact <= spent <= exact * 1.02  # an upper bound, tight at q=1
    assert plan.release == (plan.noise_multiplier, 1.0, 1)
    # privacy.central.epsilon overrides privacy.epsilon (the run spec carries the resolved target)
    config = validate({"privacy": {"epsilon": 2.0, "accountant": accountant, "central": {"epsilon": target}}}, "test")
    assert plan_central(central_dp(config), 8, 10).noise_multiplier == plan.noise_multiplier
    assert central_dp(validate({"privacy": {"epsilon": 3.0}}, "test")).epsilon == 3.0


def test_adaptive_splits_the_same_budget_between_update_and_clipped_count():
    fixed = plan_central(PRIVACY, 8, 10)
    adaptive = plan_central(central(adaptive=True), 8, 10)
    # Default: update noise 10% above the fixed-clipping σ, the rest paid by the count noise.
    assert adaptive.update_noise_multiplier == pytest.approx(1.1 * fixed.noise_multiplier)
    assert effective_noise_multiplier(adaptive.update_noise_multiplier, adaptive.clipped_count_stddev) == pytest.approx(fixed.noise_multiplier)
    assert adaptive.noise_multiplier == fixed.noise_multiplier  # what the accountant is given
    given = plan_central(central(adaptive=True, clipped_count_stddev=3 * fixed.noise_multiplier), 8, 10)
    assert effective_noise_multiplier(given.update_noise_multiplier, 3 * fixed.noise_multiplier) == pytest.approx(fixed.noise_multiplier)
    with pytest.raises(CentralDPError, match="clipped_count_stddev: .* must exceed"):
        plan_central(central(adaptive=True, clipped_count_stddev=fixed.noise_multiplier / 2), 8, 10)


def test_bad_settings_are_one_line_errors():
    # The config schema is the one place privacy.central is validated...
    with pytest.raises(ConfigError, match="privacy.central.clipping_norm: .*greater than 0"):
        validate({"privacy": {"central": {"clipping_norm": 0}}}, "test")
    with pytest.raises(ConfigError, match="privacy.central.clip: unknown key"):
        validate({"privacy": {"central": {"clip": 1}}}, "test")
    with pytest.raises(ConfigError, match="privacy.central.target_quantile"):
        validate({"privacy": {"central": {"target_quantile": 1.5}}}, "test")
    # ...the plan refuses only what it alone can tell: a target the rounds cannot meet.
    with pytest.raises(CentralDPError, match="privacy.central.epsilon: 1e-06 over 10 rounds cannot be met"):
        plan_central(central(epsilon=1e-6), 8, 10)


# ------------------------------------------------------------- the wrappers on handmade replies

def _arrays(*values: np.ndarray) -> ArrayRecord:
    return ArrayRecord({f"w{i}": Array(np.asarray(v, dtype=np.float32)) for i, v in enumerate(values)})


def _reply(node: int, agency: str, arrays: ArrayRecord, n_train: int) -> Message:
    instruction = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": n_train, "train-loss": 0.5}), "agency": ConfigRecord({"name": agency})})
    return Message(content, reply_to=instruction)


def _refusal(node: int, agency: str) -> Message:
    instruction = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
    return Message(Error(4001, f"{agency}: could not train"), reply_to=instruction)


class NoiseSpy:
    """Replaces the wrapper's noise draw: records the std of each array's noise, adds nothing."""

    def __init__(self) -> None:
        self.stds: list[float] = []
        self.scalars: list[float] = []  # the clipped count's noise (adaptive)

    def __call__(self, shape: tuple[int, ...], std: float) -> np.ndarray:
        (self.scalars if shape == () else self.stds).append(std)
        return np.zeros(shape)


def _wrapper(tmp_path, settings: dict, current: ArrayRecord):
    recorder = RoundRecorder(tmp_path / "metrics.jsonl", "fedavg-central-dp", AGENCIES)
    strategy = central_dp_strategy(recorder, central(**settings), n_agencies=len(AGENCIES), rounds=3)
    # What configure_train would have stored (it needs a Grid to sample nodes).
    strategy.current_arrays = current
    strategy.strategy._current = current
    return strategy, recorder


def test_fixed_clipping_averages_clipped_deltas_with_equal_weights_over_all_agencies(tmp_path, monkeypatch):
    current = _arrays([1.0, 1.0], [0.0])
    strategy, _ = _wrapper(tmp_path, {"clipping_norm": 1.0}, current)
    spy = NoiseSpy()
    monkeypatch.setattr(strategy, "gaussian", spy)
    assert isinstance(strategy, CentralFixedClipping)
    deltas = [np.array([3.0, 0.0, 4.0]), np.array([0.3, 0.0, 0.4]), np.array([0.0, -2.0, 0.0])]  # norms 5, 0.5, 2
    replies = [_reply(i + 1, AGENCIES[i], _arrays(np.array([1.0, 1.0]) + d[:2], d[2:]), n_train=n) for i, (d, n) in enumerate(zip(deltas, [10, 10_000, 100], strict=True))]
    arrays, metrics = strategy.aggregate_train(1, replies)
    clipped = [d * min(1.0, 1.0 / np.linalg.norm(d)) for d in deltas]
    # Equal weights whatever the record counts, divided by all 4 agencies (one sent nothing).
    expected = np.array([1.0, 1.0, 0.0]) + sum(clipped) / 4
    got = np.concatenate([a.reshape(-1) for a in arrays.to_numpy_ndarrays()])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert spy.stds == [pytest.approx(strategy.ledger.plan.noise_multiplier * 1.0 / 4)] * 2  # one draw per array
    assert metrics["num-examples"] == 10_110
    assert strategy.ledger.epsilon == pytest.approx(epsilon([strategy.ledger.plan.release], 1e-5, "prv"))


def test_a_failed_agency_is_left_out_of_the_round_and_still_recorded(tmp_path, monkeypatch):
    current = _arrays([0.0, 0.0])
    strategy, recorder = _wrapper(tmp_path, {}, current)
    spy = NoiseSpy()
    monkeypatch.setattr(strategy, "gaussian", spy)
    replies = [_reply(1, "A", _arrays([0.5, 0.5]), 10), _refusal(2, "B")]
    arrays, _ = strategy.aggregate_train(1, replies)
    # A's clipped delta over the fixed 4 agencies (B's term is zero), noised as usual: one release.
    delta = np.array([0.5, 0.5]) * min(1.0, strategy.ledger.plan.clipping_norm / np.linalg.norm([0.5, 0.5]))
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], delta / 4, rtol=1e-6)
    assert len(spy.stds) == 1
    assert strategy.ledger.rounds[0]["released"] is True and strategy.ledger.rounds[0]["agencies_aggregated"] == 1
    assert strategy.ledger.epsilon > 0
    recorder.evaluate_replies(1, [])
    rows = {r["agency"]: r for r in map(json.loads, recorder.metrics_path.read_text().splitlines())}
    assert rows["B"]["train_error"] == "B: could not train" and rows["A"]["n_train"] == 10


def test_a_round_nobody_answers_releases_nothing(tmp_path, monkeypatch):
    strategy, _ = _wrapper(tmp_path, {}, _arrays([0.0, 0.0]))
    spy = NoiseSpy()
    monkeypatch.setattr(strategy, "gaussian", spy)
    arrays, _ = strategy.aggregate_train(1, [_refusal(1, "A"), _refusal(2, "B")])
    assert arrays is None and spy.stds == []
    assert strategy.ledger.epsilon == 0.0 and strategy.ledger.rounds[0]["released"] is False


def test_adaptive_noise_matches_the_norm_the_updates_were_clipped_to(tmp_path, monkeypatch):
    current = _arrays([0.0, 0.0])
    strategy, _ = _wrapper(tmp_path, {"adaptive": True, "clipping_norm": 0.5}, current)
    spy = NoiseSpy()
    monkeypatch.setattr(strategy, "gaussian", spy)
    assert isinstance(strategy, CentralAdaptiveClipping)
    plan = strategy.ledger.plan
    assert strategy.noise_multiplier == pytest.approx(plan.update_noise_multiplier)
    replies = [_reply(i + 1, AGENCIES[i], _arrays([3.0, 4.0]), 10) for i in range(3)]  # all clipped
    strategy.aggregate_train(1, replies)
    # 3 of the 4 agencies clipped: the count's noise std is σ_b, its denominator the fixed 4...
    assert spy.scalars == [pytest.approx(plan.clipped_count_stddev)]
    assert strategy.clipping_norm == pytest.approx(0.5 * math.exp(-0.2 * (3 / 4 - 0.5)))
    # ...and the update noise uses the norm of this round's clipping (0.5), not the next one.
    assert spy.stds == [pytest.approx(plan.update_noise_multiplier * 0.5 / 4)]
    assert strategy.report()["clipping_norm"] == strategy.clipping_norm
    assert strategy.ledger.rounds[0]["clipping_norm"] == 0.5


def test_epsilon_after_every_round_and_no_release_beyond_the_plan(tmp_path, monkeypatch):
    current = _arrays([0.0])
    strategy, _ = _wrapper(tmp_path, {}, current)
    monkeypatch.setattr(strategy, "gaussian", NoiseSpy())
    seen = []
    for server_round in (1, 2, 3):
        strategy.ledger.check_next()
        strategy.aggregate_train(server_round, [_reply(1, "A", _arrays([0.1]), 5)])
        seen.append(strategy.ledger.epsilon)
    assert seen[0] < seen[1] < seen[2] <= 2.0
    assert seen[2] == pytest.approx(2.0, rel=0.01)
    with pytest.raises(RuntimeError, match="planned for 3 rounds"):
        strategy.ledger.check_next()
    report = strategy.report()
    assert report["privacy_unit"] == "agency" and report["releases"] == 3 and report["sample_rate"] == 1.0
    assert [r["epsilon"] for r in report["per_round"]] == seen


# ------------------------------------------------- the whole strategy against the real ClientApp

def test_two_rounds_with_the_real_agencies(tiny_spec, monkeypatch):
    """Flower's Strategy.start with the wrapper, agencies training plainly (in process)."""
    from test_secagg import LocalGrid

    from tasks.model import initial_model

    spec = run_spec.read(tiny_spec)
    names = [a.name for a in spec.agencies]
    recorder = RoundRecorder(tiny_spec.parent / "central-metrics.jsonl", "fedavg-central-dp", names)
    settings = dataclasses.replace(spec.central_dp, accountant="prv", epsilon=8.0)
    strategy = central_dp_strategy(recorder, settings, len(names), rounds=2)
    initial = ArrayRecord(initial_model(spec.task.hidden, spec.seed).state_dict())
    train_config = ConfigRecord({"architecture": "fedavg-central-dp", "dp": False, "rounds": 2, "local-epochs": 1, "batch-size": 64, "learning-rate": 0.01})
    result = strategy.start(grid=LocalGrid(tiny_spec, len(names)), initial_arrays=initial, num_rounds=2, timeout=60, train_config=train_config, evaluate_config=ConfigRecord({"architecture": "fedavg-central-dp"}))
    assert list(result.arrays.keys()) == list(initial.keys())
    rows = [json.loads(line) for line in recorder.metrics_path.read_text().splitlines()]
    assert {(r["agency"], r["round"]) for r in rows} == {(n, r) for n in names for r in (1, 2)}
    assert not any("epsilon" in r for r in rows)  # agencies trained plainly: no record-level ε
    report = strategy.report()
    assert report["privacy_unit"] == "agency" and report["releases"] == 2
    assert report["epsilon"] <= 8.0 and report["epsilon"] == pytest.approx(8.0, rel=0.01)


# ------------------------------------------------- degenerate updates and the noise's source

@pytest.mark.parametrize("central", [{}, {"adaptive": True}])
def test_an_update_equal_to_the_global_model_is_already_clipped(tmp_path, monkeypatch, central):
    """Flower 1.42's clip divides by the update's norm: a zero update raised ZeroDivisionError."""
    current = _arrays([1.0, 2.0], [3.0])
    strategy, _ = _wrapper(tmp_path, {**central, "clipping_norm": 0.5}, current)
    spy = NoiseSpy()
    monkeypatch.setattr(strategy, "gaussian", spy)
    unchanged = _reply(1, "A", _arrays([1.0, 2.0], [3.0]), 10)
    moved = _reply(2, "B", _arrays([1.0, 2.0], [3.0 + 4.0]), 10)  # norm 4, clipped to 0.5
    arrays, _ = strategy.aggregate_train(1, [unchanged, moved])
    got = np.concatenate([a.reshape(-1) for a in arrays.to_numpy_ndarrays()])
    np.testing.assert_allclose(got, [1.0, 2.0, 3.0 + 0.5 / 4], rtol=1e-6)
    assert strategy.ledger.rounds[0]["agencies_aggregated"] == 2 and strategy.ledger.rounds[0]["released"]
    if central:  # only B counts as clipped: the norm moves by exp(-lr·(1/4 − q))
        assert strategy.clipping_norm == pytest.approx(0.5 * math.exp(-0.2 * (1 / 4 - 0.5)))


def test_a_non_finite_update_is_left_out_like_a_failed_agency(tmp_path, monkeypatch):
    current = _arrays([0.0, 0.0])
    strategy, _ = _wrapper(tmp_path, {}, current)
    monkeypatch.setattr(strategy, "gaussian", NoiseSpy())
    arrays, _ = strategy.aggregate_train(1, [_reply(1, "A", _arrays([np.nan, 0.0]), 10), _reply(2, "B", _arrays([0.3, 0.4]), 10)])
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], np.array([0.3, 0.4]) / 4, rtol=1e-6)
    assert strategy.ledger.rounds[0]["agencies_aggregated"] == 1


@pytest.mark.parametrize("central", [{}, {"adaptive": True}])
def test_noise_is_not_reproducible_from_the_config_seed_and_has_std_sigma_c_over_n(tmp_path, central):
    """Two coordinators seeded alike (numpy's global generator, as a config seed would) draw
    different noise, leave the global generator untouched, and the measured std is σ_Δ·C/n."""
    size, seed = 200_000, 7
    noises = []
    for attempt in range(2):
        np.random.seed(seed)
        before = np.random.get_state()[1].copy()
        current = _arrays(np.zeros(size))
        strategy, _ = _wrapper(tmp_path / str(attempt), {**central, "clipping_norm": 0.5}, current)
        arrays, _ = strategy.aggregate_train(1, [_reply(1, "A", _arrays(np.zeros(size)), 10)])
        np.testing.assert_array_equal(np.random.get_state()[1], before)  # global generator not drawn from
        noises.append(arrays.to_numpy_ndarrays()[0].astype(np.float64))
        expected = strategy.ledger.plan.update_noise_multiplier * 0.5 / len(AGENCIES)
        # std of a sample std over 200k draws is ≈0.16%: 1% is > 6 of those
        assert noises[-1].std() == pytest.approx(expected, rel=0.01)
        assert abs(noises[-1].mean()) < 5 * expected / math.sqrt(size)
    assert not np.allclose(noises[0], noises[1])
    assert abs(np.corrcoef(noises[0], noises[1])[0, 1]) < 0.02
