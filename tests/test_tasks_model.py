"""tasks.model and tasks.train: Opacus-compatible MLP, weights round trip, plain training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.validators import ModuleValidator

from tasks.features import N_FEATURES
from tasks.model import get_weights, make_model, set_weights
from tasks.train import loss_fn, make_optimizer, predict_proba, train_plain


def toy_problem(n: int = 2_000, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).astype(np.float32)
    return X, y


def mean_loss(model: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return loss_fn()(model(torch.as_tensor(X)), torch.as_tensor(y)).item()


# ---------------------------------------------------------------- model


@pytest.mark.parametrize("hidden", [(64, 64), (16,), ()])
def test_model_is_valid_for_opacus(hidden):
    model = make_model(N_FEATURES, hidden)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    ModuleValidator.validate(model, strict=True)  # raises on anything Opacus cannot handle
    assert model(torch.zeros(5, N_FEATURES)).shape == (5,)


def test_seeded_model_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = make_model(10, seed=7), make_model(10, seed=7)
    assert torch.rand(1) == expected_next
    for wa, wb in zip(get_weights(a), get_weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_weights_round_trip():
    source, target = make_model(10, seed=1), make_model(10, seed=2)
    weights = get_weights(source)
    assert [w.shape for w in weights] == [tuple(t.shape) for t in source.state_dict().values()]
    set_weights(target, weights)
    for a, b in zip(get_weights(target), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    weights[0][:] = 0  # copies: changing them does not touch either model
    assert np.abs(get_weights(source)[0]).sum() > 0
    with pytest.raises(ValueError, match="arrays"):
        set_weights(target, weights[:-1])
    with pytest.raises(ValueError, match="shape"):
        set_weights(target, [w.T for w in weights])


# ---------------------------------------------------------------- training


def test_train_plain_learns_a_toy_problem():
    X, y = toy_problem(n=1_000)
    model = make_model(X.shape[1], (16, 16), seed=0)
    before = mean_loss(model, X, y)
    result = train_plain(model, X, y, epochs=8, batch_size=64, lr=2e-2, generator=torch.Generator().manual_seed(0))
    assert result["steps"] == 8 * math.ceil(len(X) / 64)
    assert result["loss"] < 0.35 < before
    accuracy = ((predict_proba(model, X) >= 0.5) == y).mean()
    assert accuracy > 0.85


def test_train_plain_is_deterministic_given_the_seed():
    X, y = toy_problem(n=500)

    def run(seed: int) -> list[np.ndarray]:
        model = make_model(X.shape[1], seed=0)
        train_plain(model, X, y, epochs=2, batch_size=32, lr=1e-2, generator=torch.Generator().manual_seed(seed))
        return get_weights(model)

    for a, b in zip(run(3), run(3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(run(3), run(4), strict=True))


def test_train_plain_edges():
    X, y = toy_problem(n=10)
    model = make_model(X.shape[1], seed=0)
    small = train_plain(model, X, y, epochs=3, batch_size=256, lr=1e-3, generator=torch.Generator().manual_seed(0))
    assert small["steps"] == 3 and math.isfinite(small["loss"])
    before = get_weights(model)
    empty = train_plain(model, X[:0], y[:0], epochs=3, batch_size=8, lr=1e-3, generator=torch.Generator())
    assert math.isnan(empty["loss"]) and empty["steps"] == 0
    for a, b in zip(get_weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="labels"):
        train_plain(model, X, y[:5], epochs=1, batch_size=8, lr=1e-3, generator=torch.Generator())


def test_predict_proba():
    X, _ = toy_problem(n=300)
    model = make_model(X.shape[1], seed=0)
    model.train()
    p = predict_proba(model, X)
    assert p.dtype == np.float64 and p.shape == (300,) and ((p > 0) & (p < 1)).all()
    assert model.training  # mode restored
    with torch.no_grad():
        np.testing.assert_allclose(p, torch.sigmoid(model(torch.as_tensor(X))).numpy(), rtol=1e-6)
    assert predict_proba(model, X[:0]).shape == (0,)


def test_optimizer_is_the_same_for_every_architecture():
    model = make_model(4, seed=0)
    assert isinstance(make_optimizer(model.parameters(), lr=1e-3), torch.optim.Adam)


# Opacus' hooks on a first layer whose input needs no gradient: harmless, torch warns anyway.
@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
def test_opacus_per_sample_gradients_match_one_by_one_gradients():
    from opacus import GradSampleModule

    X, y = toy_problem(n=6)
    model = make_model(X.shape[1], (8,), seed=0)
    wrapped = GradSampleModule(make_model(X.shape[1], (8,), seed=0))
    loss_fn()(wrapped(torch.as_tensor(X)), torch.as_tensor(y)).backward()
    for i in range(len(X)):
        model.zero_grad()
        loss_fn()(model(torch.as_tensor(X[i : i + 1])), torch.as_tensor(y[i : i + 1])).backward()
        for p, q in zip(model.parameters(), wrapped.parameters(), strict=True):
            # loss_reduction="mean" (Opacus' default) already undoes the batch mean's 1/n
            torch.testing.assert_close(q.grad_sample[i], p.grad)
