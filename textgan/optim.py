"""Optimizers: Adam, AdamW and OrthoGrad-AdamW, built from a config section or explicit arguments.

    opt = build_optimizer(model.parameters(), cfg.pretrain)  # its optimizer, lr, weight_decay
    opt_d = build_optimizer(disc.parameters(), cfg.train, lr=cfg.train.d_lr)
    opt = make_optimizer(params, "adam", lr=2e-4, betas=(0.5, 0.999))     # explicit

OrthoGrad (Prieto et al. 2025, "Grokking at the edge of numerical stability"): before each step,
every parameter's gradient g is replaced by its component orthogonal to the weights w, rescaled
to the norm of g:

    g_perp = g - (<w, g> / (<w, w> + eps)) w
    g_used = g_perp * ||g|| / (||g_perp|| + eps)

so the optimizer cannot lower the loss by just scaling the weights up (the "naive loss
minimisation" that leads to softmax collapse). Here it is `OrthoAdamW`, a subclass of
`torch.optim.AdamW` whose `step` projects the gradients first. A subclass rather than the paper's
wrapper around an inner optimizer: there is then one `param_groups` list and one `state`, so
`state_dict()`/`load_state_dict()`, LR schedulers and ignite's optimizer schedulers work as for
any torch optimizer (the wrapper shares param_groups with its inner optimizer, and torch's
`load_state_dict` rebinds them, silently detaching the two).

The base is AdamW: weight decay is decoupled, so it shrinks the weights directly instead of being
added to the gradient after the projection (which would put back the radial component OrthoGrad
removes). With weight_decay = 0, AdamW is exactly Adam.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import Tensor

from textgan.errors import ConfigError

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "orthograd")
ORTHO_EPS = 1e-30  # as in the paper's code; the maths runs in fp32 or wider, where it is > 0

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


class OptimizerSettings(Protocol):
    """What `build_optimizer` reads from a config section (`config.StageConfig` has these)."""

    optimizer: str
    lr: float
    weight_decay: float


def orthogonalize_(param: Tensor, grad: Tensor, eps: float = ORTHO_EPS) -> None:
    """Replace `grad` in place by its part orthogonal to `param`, rescaled to the norm of `grad`.

    A tensor with a single element is left alone: the orthogonal complement of a line through
    the origin in 1-D is {0}, so the projection leaves only rounding noise, which the rescaling
    would blow up to a full-size step of arbitrary sign. Weights of zero (fresh biases) leave the
    gradient unchanged, since the projection coefficient is 0.
    """
    if grad.is_sparse:
        raise RuntimeError("OrthoGrad does not support sparse gradients")
    if param.numel() <= 1:
        return
    # fp32 at least: eps = 1e-30 underflows in fp16/bf16 and the dot products need the range.
    dtype = torch.promote_types(param.dtype, torch.float32)
    w = param.detach().reshape(-1).to(dtype)  # (P,)
    g = grad.reshape(-1).to(dtype)  # (P,)
    coefficient = torch.dot(w, g) / (torch.dot(w, w) + eps)
    g_perp = g - coefficient * w  # (P,)
    g_used = g_perp * (torch.linalg.vector_norm(g) / (torch.linalg.vector_norm(g_perp) + eps))
    grad.copy_(g_used.view_as(grad))


class OrthoAdamW(torch.optim.AdamW):
    """AdamW on gradients made orthogonal to the weights (OrthoGrad, Prieto et al. 2025).

    Same constructor, state_dict and param_groups as torch.optim.AdamW; the projection runs as
    this optimizer's first step pre-hook and writes into `p.grad`, so after `step` the gradients
    are the ones actually used. A pre-hook rather than an overridden `step` calling
    `super().step()`: torch wraps each optimizer class's `step` with its hook runner, and an
    override calling a wrapped parent would run every step hook twice.

    No closure: AdamW evaluates a closure after the pre-hooks, recomputing the gradients and so
    undoing the projection. Call backward() first, then step().
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, ortho_eps: float = ORTHO_EPS,
                 **kwargs: Any):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)
        self.ortho_eps = ortho_eps
        self.register_step_pre_hook(_orthogonalize_before_step)


def _orthogonalize_before_step(optimizer: torch.optim.Optimizer, args: tuple[Any, ...],
                               kwargs: dict[str, Any]) -> None:
    """Step pre-hook of OrthoAdamW: project every gradient before AdamW reads it."""
    # torch passes the step's full positional args, self first: a closure would be args[1].
    if kwargs.get("closure") is not None or (len(args) > 1 and args[1] is not None):
        raise RuntimeError("OrthoAdamW.step takes no closure: call backward() before step()")
    eps = getattr(optimizer, "ortho_eps", ORTHO_EPS)
    with torch.no_grad():
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    orthogonalize_(param, param.grad, eps)


def make_optimizer(params: Params, kind: str, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """An optimizer of `kind` over `params`: "adam" (L2 weight decay added to the gradient, as
    torch.optim.Adam does), "adamw" (decoupled weight decay) or "orthograd" (`OrthoAdamW`)."""
    if lr <= 0:
        raise ConfigError(f"learning rate must be > 0, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    # fused: one kernel over every parameter instead of a dozen ops per tensor (on a CPU 0.7 ms
    # against 8 ms a step for the default preset's 1.1M parameters; NOTES.md, issue 6)
    settings: dict[str, Any] = dict(lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    if kind == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, **settings)
    elif kind == "adamw":
        optimizer = torch.optim.AdamW(params, **settings)
    elif kind == "orthograd":
        optimizer = OrthoAdamW(params, **settings)
    else:
        raise ConfigError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")
    logger.debug("optimizer %s lr=%g weight_decay=%g betas=%s", kind, lr, weight_decay, betas)
    return optimizer


def build_optimizer(params: Params, cfg: OptimizerSettings, *,
                    lr: float | None = None) -> torch.optim.Optimizer:
    """A stage's optimizer: `make_optimizer` from its section's `optimizer`, `lr` and
    `weight_decay` (a `StageConfig`); `lr` for a network with a rate of its own (D's d_lr)."""
    return make_optimizer(params, cfg.optimizer, lr=cfg.lr if lr is None else lr,
                          weight_decay=cfg.weight_decay)
