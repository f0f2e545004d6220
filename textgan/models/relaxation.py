"""Continuous relaxations of a categorical choice over the vocabulary, always in fp32.

    y = relax(logits, tau, "softmax")                       # softmax(logits / tau), Hu et al.
    y = relax(logits, tau, "gumbel", generator=g)           # Gumbel-softmax sample
    y = relax(logits, tau, "st_gumbel", hard=True, generator=g)   # straight-through one-hot
    y = relax(logits, tau, "reinmax", generator=g)          # one-hot, ReinMax gradient

`y` (B, V) is a distribution over the vocabulary (soft) or a one-hot row (hard) that carries a
gradient back to `logits`. The generator feeds `y @ embedding.weight` to its next step and to the
discriminator and encoder (`soft.soft_generate`).

Why fp32 whatever the caller's precision: a half-precision softmax over a large vocabulary
underflows the tail, and Gumbel noise in fp16/bf16 produces NaNs (pytorch#41663, #34372). The
logits are cast with `.float()` and autocast is switched off inside `relax`, so an fp16/bf16
region around the training step cannot push the relaxation back into reduced precision.

Why not `F.gumbel_softmax`: it draws from the global RNG and takes no `torch.Generator`, so a
seeded evaluation (or a test) could not reproduce a draw without touching global state.

Hard outputs are exactly one-hot in the forward pass, which the EOS weights of soft generation
rely on (1 - y[eos] must be exactly 0 after a hard EOS): the straight-through trick is written
`hard + (soft - soft.detach())`, whose forward value is `hard + 0`, bit for bit, by construction
and for any finite `soft` (ReinMax's pi2 leaves [0, 1]), not by an argument about rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from textgan.models.categorical import sample_categorical, uniform_draws

RELAXATIONS = ("softmax", "gumbel", "st_gumbel", "reinmax")


def gumbel_noise(shape: torch.Size | tuple[int, ...], *, device: torch.device | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel noise -log(-log U), U ~ Uniform, fp32, drawn from `generator`.

    U is clamped to [tiny, 1 - eps]: rand can return exactly 0 (log 0 = -inf, then -log(inf)
    = -inf noise) and U near 1 gives -log(U) = 0 and infinite noise. The clamp bounds the noise
    to about [-4.5, 16.6], which changes nothing a finite sample could tell apart.
    """
    finfo = torch.finfo(torch.float32)
    uniform = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    uniform = uniform.clamp(min=finfo.tiny, max=1.0 - finfo.eps)
    return -torch.log(-torch.log(uniform))


def one_hot_argmax(scores: Tensor) -> Tensor:
    """One-hot rows (B, V) at the argmax of each row of `scores` (B, V), same dtype."""
    index = scores.argmax(dim=-1, keepdim=True)  # (B, 1)
    return torch.zeros_like(scores).scatter_(-1, index, 1.0)


def straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """Forward value `hard` exactly, gradient of `soft` (Bengio et al. 2013).

    `soft - soft.detach()` is exactly 0 for finite `soft`, so the sum is bit-identical to `hard`
    (x - x = 0 in IEEE arithmetic; the sum's gradient w.r.t. `soft` is the identity).
    """
    return hard + (soft - soft.detach())


def reinmax(logits: Tensor, tau: float | Tensor, *, generator: torch.Generator | None = None,
            uniform: Tensor | None = None) -> Tensor:
    """ReinMax (Liu et al. 2023, "Bridging Discrete and Backpropagation: Straight-Through and
    Beyond", NeurIPS; Algorithm 2), fp32 logits (B, V) -> one-hot sample (B, V).

        pi0 = softmax(theta)
        D   = one_hot(sample from pi0)
        pi1 = (D + softmax(theta / tau)) / 2
        pi1 = softmax(stop_grad(ln pi1 - theta) + theta)
        pi2 = 2 pi1 - pi0 / 2
        D   = pi2 - stop_grad(pi2) + D

    The forward value is the sample D, drawn from the UNtempered softmax: tau enters only the
    gradient, which is 2 J(pi1)^T g - 1/2 J(pi0)^T g with J(p) = diag(p) - p p^T (the
    second-order, Heun's-method estimate; microsoft/ReinMax computes the same in a custom
    backward). Line 4 is a softmax whose value is pi1 and whose Jacobian is J(pi1).

    The authors recommend tau >= 1 for ReinMax (their reference code refuses tau < 1), unlike
    Gumbel-softmax; we accept any tau > 0 so one temperature schedule serves every relaxation.
    `uniform` (B, 1), when given, is the draw of D instead of one from `generator`.
    """
    pi0 = torch.softmax(logits, dim=-1)  # (B, V)
    index = sample_categorical(pi0, generator=generator, uniform=uniform).unsqueeze(1)  # (B, 1)
    sample = torch.zeros_like(pi0).scatter_(-1, index, 1.0)  # (B, V) one-hot D
    pi1 = (sample + torch.softmax(logits / tau, dim=-1)) / 2.0  # (B, V)
    # Where a logit is -inf (PAD/BOS masked by forbid_special), pi1 is 0 there too (D never
    # picks it, the tempered softmax gives 0) and ln(pi1) - theta would be -inf - -inf = NaN;
    # a zero shift keeps that entry at -inf, i.e. at probability 0, as it should be.
    shift = torch.where(torch.isfinite(logits), torch.log(pi1) - logits,
                        torch.zeros_like(logits))
    pi1 = torch.softmax(shift.detach() + logits, dim=-1)  # value pi1, Jacobian J(pi1)
    pi2 = 2.0 * pi1 - 0.5 * pi0
    return straight_through(sample, pi2)


def relax(logits: Tensor, tau: float, kind: str, *, hard: bool = False,
          generator: torch.Generator | None = None) -> Tensor:
    """Relaxed categorical rows (B, V) in fp32 from logits (B, V) of any float dtype.

    kind:
      - "softmax": softmax(logits / tau) (Hu et al. 2017); deterministic. With hard=True,
        straight-through argmax: forward one_hot(argmax), gradient of the tempered softmax.
      - "gumbel": a Gumbel-softmax sample softmax((logits + g) / tau), g ~ Gumbel(0, 1) from
        `generator` (Jang et al. 2017; Maddison et al. 2017). With hard=True, straight-through:
        forward one_hot(argmax of the sample) (= a draw from softmax(logits)), gradient of the
        soft sample.
      - "st_gumbel": the same computation as "gumbel"; the name says that the caller switches
        `hard` by a schedule (soft before train.hard_after_steps, hard after).
      - "reinmax": see `reinmax`; always hard in the forward pass, so `hard` is ignored.

    `tau` must be > 0; the temperature schedules keep it at or above a floor.
    """
    check_relaxation(kind, tau)
    noise = relaxation_noise(kind, logits.shape, device=logits.device, generator=generator)
    return relax_drawn(logits, tau, kind, hard=hard, noise=noise)


def check_relaxation(kind: str, tau: float) -> None:
    """Refuse an unknown kind or a temperature that is not > 0."""
    if kind not in RELAXATIONS:
        raise ValueError(f"unknown relaxation '{kind}' (use one of {RELAXATIONS})")
    if not tau > 0.0:
        raise ValueError(f"temperature must be > 0, got {tau}")


def relaxation_noise(kind: str, shape: torch.Size | tuple[int, int], *,
                     device: torch.device | None = None,
                     generator: torch.Generator | None = None) -> Tensor | None:
    """The random numbers one relaxed step of rows `shape` (B, V) uses, drawn from `generator`:
    Gumbel noise (B, V) for "gumbel" and "st_gumbel", ReinMax's uniform (B, 1), None for
    "softmax". `relax` draws them itself; a compiled caller draws them outside its compiled
    region (the same draws, from the same stream) and hands them to `relax_drawn`."""
    if kind == "reinmax":
        return uniform_draws(shape[0], generator=generator, device=device)
    if kind in ("gumbel", "st_gumbel"):
        return gumbel_noise(shape, device=device, generator=generator)
    return None


def relax_drawn(logits: Tensor, tau: float | Tensor, kind: str, *, hard: bool,
                noise: Tensor | None) -> Tensor:
    """`relax` with its random numbers given (`relaxation_noise`) and no argument checks; tau may
    be a 0-d tensor, so that a compiled step is not recompiled for each temperature."""
    # .float() alone makes everything below fp32 today (no op here is on an autocast
    # reduced-precision list); switching autocast off keeps it so if those lists grow.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()  # (B, V)
        if kind == "reinmax":
            return reinmax(logits, tau, uniform=noise)
        scores = logits / tau if kind == "softmax" else (logits + noise) / tau  # gumbel kinds
        soft = torch.softmax(scores, dim=-1)  # (B, V)
        if not hard:
            return soft
        return straight_through(one_hot_argmax(scores.detach()), soft)
