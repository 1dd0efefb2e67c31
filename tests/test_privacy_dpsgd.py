"""DP-SGD does what the accountant assumes: per-sample clipping to C, Gaussian noise of std σ·C,
Poisson sampling at rate q, and a noise step even when the batch is empty."""

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

import privacy.dpsgd as dpsgd
from privacy.budget import DPPlan
from tasks.model import make_model


def _plan(sigma: float, q: float, steps: int, clip: float = 0.5) -> DPPlan:
    return DPPlan(sigma, q, steps, rounds=1, max_grad_norm=clip, target_epsilon=1.0, delta=1e-5, accountant="prv")


def _data(n: int = 64, d: int = 23, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    return X, y


def _sgd(monkeypatch):
    monkeypatch.setattr(dpsgd, "make_optimizer", lambda params, lr: torch.optim.SGD(params, lr=lr))


def test_one_step_equals_reference_clipped_mean_gradient(monkeypatch):
    _sgd(monkeypatch)
    X, y = _data()
    model = make_model(X.shape[1], (16,), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    # Reference: per-sample gradients one by one via torch.func, clipped to C, averaged over
    # the expected batch size (q·n = n here).
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, x, t):
        out = functional_call(model, p, (x.unsqueeze(0),))
        return torch.nn.functional.binary_cross_entropy_with_logits(out, t.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, torch.tensor(X), torch.tensor(y))
    norms = torch.sqrt(sum(g.reshape(len(X), -1).pow(2).sum(1) for g in per_sample.values()))
    factor = (0.5 / (norms + 1e-6)).clamp(max=1.0)
    expected = {k: before[k] - 0.1 * torch.einsum("i,i...->...", factor, g) / len(X) for k, g in per_sample.items()}

    dpsgd.train_dp(model, X, y, plan=_plan(0.0, 1.0, 1), lr=0.1, generator=torch.Generator().manual_seed(0))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)


def test_noise_has_std_sigma_times_clip_over_batch(monkeypatch):
    _sgd(monkeypatch)
    X, y = _data(n=1)
    X[:] = 0.0  # with zero input the first layer's weight gradient is exactly 0: only noise moves it
    sigma, clip = 2.0, 0.5
    moves = []
    for seed in range(40):
        model = make_model(X.shape[1], (16,), seed=1)
        w0 = model[0].weight.detach().clone()
        dpsgd.train_dp(model, X, y, plan=_plan(sigma, 1.0, 1, clip), lr=1.0, generator=torch.Generator().manual_seed(seed))
        moves.append((model[0].weight.detach() - w0).flatten())
    std = torch.cat(moves).std().item()
    assert std == pytest.approx(sigma * clip / 1, rel=0.05)


def test_empty_batch_still_takes_a_noise_step():
    X, y = _data(n=50)
    model = make_model(X.shape[1], (8,), seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    stats = dpsgd.train_dp(model, X, y, plan=_plan(1.0, 1e-9, 3), lr=0.01, generator=torch.Generator().manual_seed(0))
    assert stats["mean_batch"] == 0.0
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_poisson_batches_have_expected_mean_size():
    X, y = _data(n=2_000)
    model = make_model(X.shape[1], (8,), seed=1)
    stats = dpsgd.train_dp(model, X, y, plan=_plan(1.0, 0.05, 200), lr=0.001, generator=torch.Generator().manual_seed(0))
    assert stats["mean_batch"] == pytest.approx(100, rel=0.05)
    assert stats["steps"] == 200


def test_trained_model_is_a_plain_module_again():
    X, y = _data()
    model = make_model(X.shape[1], (8,), seed=1)
    dpsgd.train_dp(model, X, y, plan=_plan(1.0, 0.5, 2), lr=0.01, generator=torch.Generator().manual_seed(0))
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert set(model.state_dict()) == set(make_model(X.shape[1], (8,)).state_dict())
