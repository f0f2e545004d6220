"""Optimizers: the OrthoGrad projection on hand cases, that OrthoAdamW applies it, that every kind
descends a small quadratic, and that a saved/reloaded optimizer continues with identical steps."""

import dataclasses
import math

import pytest
import torch

from textgan.config import PretrainConfig
from textgan.errors import ConfigError
from textgan.optim import OPTIMIZERS, OrthoAdamW, build_optimizer, make_optimizer, orthogonalize_


def config(kind, lr=0.05, weight_decay=0.0):
    return dataclasses.replace(PretrainConfig(), optimizer=kind, lr=lr, weight_decay=weight_decay)


# --------------------------------------------------------------------------- the projection


def test_projection_hand_case():
    # w = (1, 0), g = (1, 1): the orthogonal part is (0, 1), rescaled to |g| = sqrt 2.
    w, g = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    orthogonalize_(w, g)
    torch.testing.assert_close(g, torch.tensor([0.0, math.sqrt(2.0)]))


def test_projection_is_orthogonal_and_keeps_the_norm():
    torch.manual_seed(0)
    w = torch.randn(7, 5, dtype=torch.float64)
    g = torch.randn(7, 5, dtype=torch.float64) + 0.8 * w  # a strong radial component
    norm = g.norm().item()
    assert abs(torch.sum(w * g).item()) > 1.0
    orthogonalize_(w, g)
    assert torch.sum(w * g).item() == pytest.approx(0.0, abs=1e-10)
    assert g.norm().item() == pytest.approx(norm, rel=1e-12)


def test_projection_edge_cases():
    zero_w, g = torch.zeros(3), torch.tensor([1.0, -2.0, 3.0])
    orthogonalize_(zero_w, g)  # fresh biases: nothing to project out
    torch.testing.assert_close(g, torch.tensor([1.0, -2.0, 3.0]))
    w, zero_g = torch.tensor([1.0, 2.0]), torch.zeros(2)
    orthogonalize_(w, zero_g)  # no gradient, no step, no NaN
    assert torch.equal(zero_g, torch.zeros(2))
    scalar_w, scalar_g = torch.tensor([2.0]), torch.tensor([0.5])
    orthogonalize_(scalar_w, scalar_g)  # 1-element tensors are left alone
    assert scalar_g.item() == 0.5


def test_projection_of_half_precision_gradients_is_finite():
    w = torch.randn(16).to(torch.bfloat16)
    g = torch.randn(16).to(torch.bfloat16)
    orthogonalize_(w, g)
    assert g.dtype == torch.bfloat16 and torch.isfinite(g).all()
    assert abs(torch.dot(w.float(), g.float()).item()) < 0.05 * w.float().norm() * g.float().norm()


def test_ortho_adamw_steps_on_the_projected_gradient():
    torch.manual_seed(0)
    start = torch.randn(4, 3)
    ortho = torch.nn.Parameter(start.clone())
    plain = torch.nn.Parameter(start.clone())
    opt_ortho = OrthoAdamW([ortho], lr=0.01)
    opt_plain = torch.optim.AdamW([plain], lr=0.01, weight_decay=0.0)
    for _ in range(3):
        grad = torch.randn(4, 3) + 0.5 * ortho.detach()
        ortho.grad = grad.clone()
        projected = grad.clone()
        orthogonalize_(plain.detach(), projected)
        plain.grad = projected
        before = ortho.detach().clone()
        opt_ortho.step()
        opt_plain.step()
        # after step, .grad holds what was used: orthogonal to the weights, same norm as before
        assert torch.sum(before * ortho.grad).item() == pytest.approx(0.0, abs=1e-5)
        assert ortho.grad.norm().item() == pytest.approx(grad.norm().item(), rel=1e-5)
        torch.testing.assert_close(ortho.detach(), plain.detach())


def test_ortho_adamw_runs_step_hooks_once_per_step():
    torch.optim.Adam([torch.nn.Parameter(torch.ones(2))])  # hooks Adam.step, AdamW's parent
    w = torch.nn.Parameter(torch.ones(3))
    opt = OrthoAdamW([w])
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append(1))
    w.grad = torch.tensor([1.0, 0.0, -1.0])
    opt.step()
    assert len(calls) == 1 and opt.state[w]["step"].item() == 1


def test_ortho_adamw_refuses_a_closure():
    w = torch.nn.Parameter(torch.ones(3))
    w.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="closure"):
        OrthoAdamW([w]).step(lambda: 0.0)


# --------------------------------------------------------------------------- building


def test_kinds_and_weight_decay():
    w = torch.nn.Parameter(torch.ones(2))
    assert type(build_optimizer([w], config("adam"))) is torch.optim.Adam
    assert type(build_optimizer([w], config("adamw"))) is torch.optim.AdamW
    assert type(build_optimizer([w], config("orthograd"))) is OrthoAdamW
    # decoupled decay: with a zero loss gradient, one step multiplies w by (1 - lr * wd)
    for kind in ("adamw", "orthograd"):
        p = torch.nn.Parameter(torch.tensor([2.0, -4.0]))
        opt = build_optimizer([p], config(kind, lr=0.1, weight_decay=0.5))
        p.grad = torch.zeros(2)
        opt.step()
        torch.testing.assert_close(p.detach(), torch.tensor([2.0, -4.0]) * (1 - 0.1 * 0.5))
    # coupled L2 (adam): the decay goes through Adam's normalisation, a full lr-sized step
    p = torch.nn.Parameter(torch.tensor([2.0, -4.0]))
    opt = build_optimizer([p], config("adam", lr=0.1, weight_decay=0.5))
    p.grad = torch.zeros(2)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.9, -3.9]))


def test_make_optimizer_takes_explicit_settings():
    w = torch.nn.Parameter(torch.ones(2))
    opt = make_optimizer([w], "adam", lr=2e-4, betas=(0.5, 0.999))
    assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("kind, lr, weight_decay", [("sgd", 0.1, 0.0), ("adam", 0.0, 0.0),
                                                    ("adamw", 0.1, -1.0)])
def test_bad_settings_are_config_errors(kind, lr, weight_decay):
    with pytest.raises(ConfigError):
        make_optimizer([torch.nn.Parameter(torch.ones(2))], kind, lr=lr,
                       weight_decay=weight_decay)


# --------------------------------------------------------------------------- descent, resume


def quadratic_loss(w):
    # Minimum at a point of the same norm as the start in another direction, so OrthoGrad (which
    # can only rotate the weights, to first order) can reach it too.
    target = torch.tensor([0.0, 3.0, 4.0])
    return (w - target).pow(2).sum()


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_each_optimizer_descends_a_quadratic(kind):
    w = torch.nn.Parameter(torch.tensor([5.0, 0.0, 0.0]))
    opt = build_optimizer([w], config(kind, lr=0.05))
    initial = quadratic_loss(w).item()
    for _ in range(300):
        opt.zero_grad()
        quadratic_loss(w).backward()
        opt.step()
    assert quadratic_loss(w).item() < 0.05 * initial


def train_steps(model, opt, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=generator)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_state_dict_round_trip_gives_identical_steps(kind, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    opt = build_optimizer(model.parameters(), config(kind, lr=0.01, weight_decay=0.01))
    train_steps(model, opt, 5, seed=1)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.pt")

    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True, map_location="cpu")
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    twin.load_state_dict(saved["model"])
    twin_opt = build_optimizer(twin.parameters(), config(kind, lr=0.01, weight_decay=0.01))
    twin_opt.load_state_dict(saved["opt"])

    train_steps(model, opt, 4, seed=2)
    train_steps(twin, twin_opt, 4, seed=2)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    # and the state really mattered: a fresh optimizer from the same weights diverges
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    fresh.load_state_dict(saved["model"])
    train_steps(fresh, build_optimizer(fresh.parameters(), config(kind, lr=0.01)), 4, seed=2)
    assert not torch.equal(next(fresh.parameters()), next(model.parameters()))
