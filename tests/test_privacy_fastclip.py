"""Book-keeping clipping computes DP-SGD's clipped, noised gradient exactly: checked against a slow
one-sample-at-a-time reference (torch.func.vmap(grad)), against the Opacus path, and for the
noise it adds. Also the hand-written passes it builds on (tasks.train.LinearStack), which plain
training uses too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import privacy.dpsgd as dpsgd
from privacy.budget import DPPlan
from privacy.fastclip import BookkeepingClipper, per_sample_grad_norms, supports
from tasks.model import MLP, get_weights, make_model
from tasks.train import linear_stack, loss_fn, train_plain


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only contend (as in clients)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _models() -> dict[str, MLP]:
    torch.manual_seed(5)
    return {
        "relu": make_model(23, (16, 8), seed=1),
        "tanh-sigmoid-nobias": MLP(nn.Linear(23, 16), nn.Tanh(), nn.Linear(16, 8, bias=False), nn.Sigmoid(), nn.Linear(8, 1)),
        "logistic": make_model(23, (), seed=2),
    }


def _batch(n: int = 48, d: int = 23, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # rows of very different scale: some per-sample gradients far below the clip norm, some above
    X = torch.randn(n, d, generator=gen) * torch.logspace(-1.5, 1, n).unsqueeze(1)
    y = (torch.rand(n, generator=gen) < 0.5).float()
    return X, y


def _reference_per_sample_grads(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per-sample gradients of the per-sample loss, one sample at a time, in parameter order."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, x, t):
        out = functional_call(model, p, (x.unsqueeze(0),))
        return nn.functional.binary_cross_entropy_with_logits(out, t.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, X, y)
    return [per_sample[k] for k, _ in model.named_parameters()]


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@pytest.mark.parametrize("name", ["relu", "tanh-sigmoid-nobias", "logistic"])
@pytest.mark.parametrize("sigma", [0.0, 1.3])
def test_clipped_noised_gradient_matches_per_sample_reference(name, sigma):
    model = _models()[name]
    X, y = _batch()
    per_sample = _reference_per_sample_grads(model, X, y)
    norms = torch.sqrt(sum(g.reshape(len(X), -1).pow(2).sum(1) for g in per_sample))
    torch.testing.assert_close(per_sample_grad_norms(model, X, y), norms, rtol=1e-5, atol=1e-7)
    clip = float(norms.median())
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    assert (factor < 0.9).sum() >= 5 and (factor == 1).sum() >= 20  # some well above C, half below
    divisor = 40.0  # the expected batch size q·n, not the realised 48

    clipper = BookkeepingClipper(model, max_grad_norm=clip, noise_multiplier=sigma, expected_batch_size=divisor)
    loss = clipper.compute(X, y, torch.Generator().manual_seed(7))
    fast = _flat([p.grad for p in model.parameters()])
    # the SAME noise: σ·C times the standard normals the same generator state gives
    z = torch.empty(len(fast)).normal_(0.0, 1.0, generator=torch.Generator().manual_seed(7))
    clipped_sum = _flat([torch.einsum("i,i...->...", factor, g) for g in per_sample])
    expected = (clipped_sum + sigma * clip * z) / divisor
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    with torch.no_grad():
        assert float(loss) == pytest.approx(float(loss_fn()(model(X), y)), rel=1e-5)
    clipper.release()
    assert all(p.grad is None for p in model.parameters())


def test_one_train_dp_step_equals_the_opacus_path_without_noise():
    X, y = _batch(n=300, seed=1)
    X, y = X.numpy(), y.numpy()
    plan = DPPlan(0.0, 0.2, 6, rounds=1, max_grad_norm=0.3, target_epsilon=1.0, delta=1e-5, accountant="prv")
    trained = {}
    for method in ("bookkeeping", "opacus"):
        model = make_model(23, (16, 8), seed=3)
        dpsgd.train_dp(model, X, y, plan=plan, lr=0.01, generator=torch.Generator().manual_seed(11), method=method)
        trained[method] = get_weights(model)
    initial = get_weights(make_model(23, (16, 8), seed=3))
    for fast, slow, start in zip(trained["bookkeeping"], trained["opacus"], initial, strict=True):
        assert not np.allclose(fast, start)
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_empty_batch_gives_noise_only():
    model = make_model(23, (8,), seed=1)
    X, y = torch.empty(0, 23), torch.empty(0)
    clipper = BookkeepingClipper(model, max_grad_norm=0.5, noise_multiplier=2.0, expected_batch_size=4)
    assert torch.isnan(clipper.compute(X, y, torch.Generator().manual_seed(3)))
    z = torch.empty(clipper.flat.numel()).normal_(0.0, 1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(clipper.flat, 2.0 * 0.5 * z / 4)
    silent = BookkeepingClipper(make_model(23, (8,), seed=1), max_grad_norm=0.5, noise_multiplier=0.0, expected_batch_size=4)
    silent.compute(X, y, torch.Generator())
    assert not silent.flat.any()


def test_noise_std_over_many_draws():
    model = make_model(23, (32,), seed=1)
    clipper = BookkeepingClipper(model, max_grad_norm=0.7, noise_multiplier=1.5, expected_batch_size=25)
    gen = torch.Generator().manual_seed(0)
    draws = []
    for _ in range(20):
        clipper.compute(torch.empty(0, 23), torch.empty(0), gen)
        draws.append(clipper.flat.clone())
    draws = torch.stack(draws)
    assert draws.std().item() == pytest.approx(1.5 * 0.7 / 25, rel=0.02)
    assert abs(draws.mean().item()) < 0.05 * 1.5 * 0.7 / 25


def test_supported_models():
    assert supports(make_model(23, (64, 64))) and supports(make_model(23, ()))
    assert not supports(nn.Sequential(nn.Linear(23, 1)))  # output not squeezed to one logit
    assert not supports(MLP(nn.Linear(23, 8), nn.GELU(), nn.Linear(8, 1)))  # unknown activation
    assert not supports(MLP(nn.Linear(23, 8), nn.ReLU(), nn.Linear(8, 2)))  # two outputs
    assert not supports(make_model(23, (8,)).double())
    hooked = make_model(23, (8,))
    hooked[0].register_forward_hook(lambda *args: None)
    assert not supports(hooked)
    frozen = make_model(23, (8,))
    frozen[0].weight.requires_grad_(False)
    assert not supports(frozen)
    shared = nn.Linear(8, 8)
    assert not supports(MLP(nn.Linear(23, 8), shared, nn.ReLU(), shared, nn.Linear(8, 1)))
    with pytest.raises(ValueError, match="book-keeping clipping needs"):
        BookkeepingClipper(nn.Linear(23, 1), max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=1)


# ---------------------------------------------------------------- the hand-written passes


@pytest.mark.parametrize("name", ["relu", "tanh-sigmoid-nobias", "logistic"])
def test_hand_written_passes_equal_autograd(name):
    model = _models()[name]
    X, y = _batch(n=32, seed=2)
    stack = linear_stack(model)
    logits, values = stack.forward(X)
    torch.testing.assert_close(logits, model(X))
    loss_fn()(model(X), y).backward()
    pairs = stack.backward(values, (torch.sigmoid(logits) - y).detach() / len(X))
    manual = []
    for (a, g), layer in zip(pairs, stack.linears, strict=True):
        manual.append(g.t() @ a)
        if layer.bias is not None:
            manual.append(g.sum(0))
    for mine, p in zip(manual, model.parameters(), strict=True):
        torch.testing.assert_close(mine.detach(), p.grad, rtol=1e-5, atol=1e-7)


def test_train_plain_hand_written_equals_autograd_path():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 23)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.float32)
    fast, slow = make_model(23, (16, 16), seed=0), make_model(23, (16, 16), seed=0)
    slow[0].register_forward_hook(lambda *args: None)  # a hook: train_plain falls back to autograd
    assert linear_stack(fast) is not None and linear_stack(slow) is None
    results = [
        train_plain(m, X, y, epochs=2, batch_size=64, lr=1e-2, generator=torch.Generator().manual_seed(4)) for m in (fast, slow)
    ]
    assert results[0]["steps"] == results[1]["steps"] == 16
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)
    for a, b in zip(get_weights(fast), get_weights(slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert all(p.grad is None for p in fast.parameters())
