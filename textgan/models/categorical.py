"""Draws from categorical distributions over the vocabulary, one uniform number per row.

    index = sample_categorical(probs, generator=g)        # (B,) from (B, V) rows summing to ~1

Why not `torch.multinomial`: on a CPU it draws one exponential variate per vocabulary entry
(B x V per decoding step; 91 ms of the 125 ms of a step at B = 250, V = 14k, NOTES.md), where
inverting the cumulative distribution needs one uniform per row: a cumsum, a scaled uniform, a
binary search. The draws differ from multinomial's for the same seed, not in law.

Precision: the cumsum stays in the rows' dtype, fp32 in practice (float64 would cost 5x for
nothing: torch's CPU cumsum accumulates fp32 in double and rounds each partial sum once), so a
token's probability is honoured to within the rounding of the partial sums, ~1e-7 of the row's
total; a token of smaller probability than that may never be drawn.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_categorical(probs: Tensor, *, generator: torch.Generator | None = None,
                       uniform: Tensor | None = None) -> Tensor:
    """Indices (B,) drawn from the rows of `probs` (B, V): non-negative, any positive total.

    Inverse CDF: u ~ Uniform[0, total) and the first index whose cumulative mass exceeds u.
    An entry of probability 0 adds nothing to the cumsum, so it is never drawn (the search
    needs a strictly larger value); u is kept strictly below the row's total, so rounding
    cannot step past the last entry of positive mass.

    `uniform` (B, 1) in [0, 1), when given, replaces the draw from `generator`: a compiled
    caller draws its random numbers outside the compiled region (`uniform_draws`).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (B, V), got {tuple(probs.shape)}")
    cumulative = probs.detach().cumsum(dim=-1)  # (B, V)
    total = cumulative[:, -1:]  # (B, 1)
    if uniform is None:
        uniform = uniform_draws(probs.shape[0], generator=generator, device=probs.device,
                                dtype=cumulative.dtype)
    target = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cumulative, target, right=True).squeeze(1)  # (B,)


def uniform_draws(batch: int, *, generator: torch.Generator | None = None,
                  device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """The (B, 1) uniform numbers `sample_categorical` draws, drawn the same way."""
    return torch.rand((batch, 1), generator=generator, device=device, dtype=dtype)
