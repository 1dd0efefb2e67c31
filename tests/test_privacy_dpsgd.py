"""DP-SGD does what the accountant assumes, by either implementation: per-sample clipping to C,
Gaussian noise of std σ·C over the expected batch size, Poisson sampling at rate q, and a noise
step even when the batch is empty. (Book-keeping clipping against a per-sample reference:
tests/test_privacy_fastclip.py.)"""

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

import privacy.dpsgd as dpsgd
from privacy.budget import DPPlan
from tasks.model import make_model

METHODS = ["bookkeeping", "opacus"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only contend (as in clients)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _plan(sigma: float, q: float, steps: int, clip: float = 0.5) -> DPPlan:
    return DPPlan(sigma, q, steps, rounds=1, max_grad_norm=clip, target_epsilon=1.0, delta=1e-5, accountant="prv")


def _data(n: int = 64, d: int = 23, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    return X, y


def _sgd(monkeypatch):
    monkeypatch.setattr(dpsgd, "make_optimizer", lambda params, lr: torch.optim.SGD(params, lr=lr))


@pytest.mark.parametrize("method", METHODS)
def test_one_step_equals_reference_clipped_mean_gradient(monkeypatch, method):
    _sgd(monkeypatch)
    X, y = _data()
    model = make_model(X.shape[1], (16,), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    # Reference: per-sample gradients one by one via torch.func, clipped to C, summed, divided by
    # the expected batch size (q·n = n here).
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, x, t):
        out = functional_call(model, p, (x.unsqueeze(0),))
        return torch.nn.functional.binary_cross_entropy_with_logits(out, t.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, torch.tensor(X), torch.tensor(y))
    norms = torch.sqrt(sum(g.reshape(len(X), -1).pow(2).sum(1) for g in per_sample.values()))
    clip = float(norms.median())  # half the samples clipped, half not
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    assert (factor < 1).any() and (factor == 1).any()
    expected = {k: before[k] - 0.1 * torch.einsum("i,i...->...", factor, g) / len(X) for k, g in per_sample.items()}

    dpsgd.train_dp(model, X, y, plan=_plan(0.0, 1.0, 1, clip), lr=0.1, generator=torch.Generator().manual_seed(0), method=method)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_noise_has_std_sigma_times_clip_over_expected_batch(monkeypatch, method):
    _sgd(monkeypatch)
    X, y = _data(n=8)
    X[:] = 0.0  # with zero input the first layer's weight gradient is exactly 0: only noise moves it
    sigma, clip, q = 2.0, 0.5, 0.5  # expected batch q·n = 4, whatever the realised batch
    moves = []
    for seed in range(40):
        model = make_model(X.shape[1], (16,), seed=1)
        w0 = model[0].weight.detach().clone()
        plan = _plan(sigma, q, 1, clip)
        dpsgd.train_dp(model, X, y, plan=plan, lr=1.0, generator=torch.Generator().manual_seed(seed), method=method)
        moves.append((model[0].weight.detach() - w0).flatten())
    std = torch.cat(moves).std().item()
    assert std == pytest.approx(sigma * clip / (q * len(X)), rel=0.05)


@pytest.mark.parametrize("method", METHODS)
def test_empty_batch_still_takes_a_noise_step(method):
    X, y = _data(n=50)
    model = make_model(X.shape[1], (8,), seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    plan = _plan(1.0, 1e-9, 3)
    stats = dpsgd.train_dp(model, X, y, plan=plan, lr=0.01, generator=torch.Generator().manual_seed(0), method=method)
    assert stats["mean_batch"] == 0.0 and np.isnan(stats["loss"])
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("method", METHODS)
def test_poisson_batches_have_expected_mean_size(method):
    X, y = _data(n=2_000)
    model = make_model(X.shape[1], (8,), seed=1)
    plan = _plan(1.0, 0.05, 200)
    stats = dpsgd.train_dp(model, X, y, plan=plan, lr=0.001, generator=torch.Generator().manual_seed(0), method=method)
    assert stats["mean_batch"] == pytest.approx(100, rel=0.05)
    assert stats["steps"] == 200


@pytest.mark.parametrize("method", METHODS)
def test_trained_model_is_a_plain_module_again(method):
    X, y = _data()
    model = make_model(X.shape[1], (8,), seed=1)
    dpsgd.train_dp(model, X, y, plan=_plan(1.0, 0.5, 2), lr=0.01, generator=torch.Generator().manual_seed(0), method=method)
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert set(model.state_dict()) == set(make_model(X.shape[1], (8,)).state_dict())


def test_method_choice():
    X, y = _data(n=20)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="method 'fast'"):
        dpsgd.train_dp(make_model(23, (4,)), X, y, plan=_plan(1.0, 0.5, 1), lr=0.01, generator=gen, method="fast")
    other = torch.nn.Sequential(torch.nn.Linear(23, 1), torch.nn.Flatten(0))  # not a tasks.model.MLP
    with pytest.raises(ValueError, match="bookkeeping.*Sequential"):
        dpsgd.train_dp(other, X, y, plan=_plan(1.0, 0.5, 1), lr=0.01, generator=gen, method="bookkeeping")
    before = other[0].weight.detach().clone()
    dpsgd.train_dp(other, X, y, plan=_plan(1.0, 0.5, 1), lr=0.01, generator=gen)  # auto: Opacus
    assert not torch.equal(before, other[0].weight)


# ---------------------------------------------------------------- Poisson sampling


def _inclusions(n: int, q: float, steps: int, seed: int = 0) -> torch.Tensor:
    """steps × n 0/1 matrix of which records each step sampled."""
    out = torch.zeros(steps, n)
    for j, idx in enumerate(dpsgd.poisson_batches(n, q, steps, torch.Generator().manual_seed(seed))):
        assert idx.dtype == torch.long and (idx[1:] > idx[:-1]).all()  # sorted, no repeats
        assert len(idx) == 0 or (0 <= idx.min() and idx.max() < n)
        out[j, idx] = 1.0
    return out


@pytest.mark.parametrize("block", [1 << 18, 64])  # one draw for all steps; blocks of 8 steps
def test_poisson_sampling_is_independent_bernoulli_per_record_and_step(monkeypatch, block):
    monkeypatch.setattr(dpsgd, "_BLOCK_SAMPLES", block)
    n, q, steps = 40, 0.2, 10_000
    inc = _inclusions(n, q, steps)
    # each record in each position of the step sequence: Binomial(steps, q) counts
    sd = (steps * q * (1 - q)) ** 0.5
    assert (inc.sum(0) - steps * q).abs().max() < 5 * sd
    # batch sizes Binomial(n, q): mean and variance
    sizes = inc.sum(1)
    assert sizes.mean().item() == pytest.approx(n * q, rel=0.02)
    assert sizes.var().item() == pytest.approx(n * q * (1 - q), rel=0.05)
    # independence: pairs of records together (also first/last, across step boundaries) at q²
    for a, b in [(0, 1), (0, n - 1), (17, 23)]:
        both = (inc[:, a] * inc[:, b]).mean().item()
        assert both == pytest.approx(q * q, abs=5 * (q * q / steps) ** 0.5)
    last_then_first = (inc[:-1, n - 1] * inc[1:, 0]).mean().item()
    assert last_then_first == pytest.approx(q * q, abs=5 * (q * q / steps) ** 0.5)


def test_bernoulli_successes_in_small_chunks_match_one_draw():
    # drawing the geometric gaps a few at a time continues the same process
    trials, p = 1_000, 0.1
    counts = torch.zeros(trials)
    for seed in range(400):
        pos = dpsgd._bernoulli_successes(trials, p, torch.Generator().manual_seed(seed), chunk=3)
        assert (pos[1:] > pos[:-1]).all() and pos.max() < trials
        counts[pos] += 1
    assert counts.mean().item() == pytest.approx(400 * p, rel=0.03)
    assert (counts - 400 * p).abs().max() < 5 * (400 * p * (1 - p)) ** 0.5


def test_poisson_sampling_edges():
    gen = torch.Generator().manual_seed(0)
    assert [b.tolist() for b in dpsgd.poisson_batches(4, 1.0, 2, gen)] == [[0, 1, 2, 3]] * 2
    assert [len(b) for b in dpsgd.poisson_batches(4, 0.0, 3, gen)] == [0, 0, 0]
    assert [len(b) for b in dpsgd.poisson_batches(0, 0.5, 2, gen)] == [0, 0]
    assert len(list(dpsgd.poisson_batches(10, 0.5, 0, gen))) == 0
    assert dpsgd.expected_batch_size(2_000, 0.05) == 100 and dpsgd.expected_batch_size(50, 1e-9) == 1
