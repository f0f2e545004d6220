"""The soft generated sentence G_tau(z, c) of Hu et al. (2017), differentiable end to end.

    out = soft_generate(generator, z, c, max_len=15, tau=engine.state.tau, kind="softmax")
    emb = generator.embed_soft(out.probs)          # (B, T, E): what D and E read
    # weight each position of D's / E's input or loss by out.weights (B, T)

At every step the generator's logits (PAD and BOS forbidden) are relaxed (`relaxation.relax`:
softmax at temperature tau, Gumbel-softmax, straight-through or ReinMax), and the relaxed row
y_t is fed back as the probability-weighted embedding y_t @ E, with the SAME GRU, output layer
and embedding table as teacher forcing (`Generator.step`). Gradients reach the generator's
parameters and z and c through every step.

EOS-aware masking: a soft sentence has no single end, so position t is weighted by the
probability that no EOS came before it,

    weights[:, t] = prod_{s < t} (1 - y_s[eos])        (weights[:, 0] = 1)

For one-hot (hard) rows that is 1 up to and including the first EOS and 0 after it, which is
exactly hard EOS masking; for soft rows the tail fades as EOS mass accumulates. Because of that,
soft generation always runs exactly `max_len` steps: there is no point at which a soft sentence
has certainly ended, and stopping at a hard EOS would give rows different lengths for no saving
that matters at max_len ~ 15. `tokens`/`lengths` are the hard reading (argmax per step, cut at
the first EOS) for logging, samples and the D step's hard inputs if one wants them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from textgan.losses import length_mask
from textgan.models.generator import Generator
from textgan.models.relaxation import RELAXATIONS, relax


class SoftSentence(NamedTuple):
    """A soft generated sentence and its hard reading."""

    probs: Tensor  # (B, T, V) fp32 relaxed rows y_t (one-hot in the forward pass when hard)
    weights: Tensor  # (B, T) fp32 probability that no EOS came before position t
    tokens: Tensor  # (B, T) long argmax of y_t, EOS kept, pad_id after the first EOS
    lengths: Tensor  # (B,) long tokens up to and including the first EOS; T if none


def alive_weights(eos_probs: Tensor) -> Tensor:
    """(B, T) probability that no EOS came before each position, from (B, T) EOS probabilities.

    w_t = prod_{s<t} (1 - p_s): w_0 = 1, and for a hard EOS at position k the weights are 1 up
    to and including k and 0 after, i.e. the hard mask of length k + 1.
    """
    kept = torch.cumprod(1.0 - eos_probs.float(), dim=1)  # (B, T) no EOS up to and incl. t
    return torch.cat([torch.ones_like(kept[:, :1]), kept[:, :-1]], dim=1)


SOFT_MASKS = ("soft", "detached", "hard")


def position_weights(sentence: SoftSentence, mask: str) -> Tensor:
    """(B, T) fp32 weights with which D and E read the positions of a soft sentence.

    "soft": P(no EOS before t), differentiable -- the EOS probabilities then get a gradient from
    whatever reads the sentence, and a style loss that gains from more style-bearing positions
    teaches G to delay EOS (sentences run on: NOTES.md, experiment E). "detached": the same
    weights as constants, so EOS is learned from the sentence's content alone. "hard": 1 up to
    and including the argmax reading's first EOS, 0 after, as Hu et al.'s code cuts soft
    sentences at the length of their hard reading.
    """
    if mask == "soft":
        return sentence.weights
    if mask == "detached":
        return sentence.weights.detach()
    if mask == "hard":
        return length_mask(sentence.lengths, sentence.weights.shape[1]).float()
    raise ValueError(f"unknown soft mask '{mask}' (use one of {SOFT_MASKS})")


def soft_generate(generator: Generator, z: Tensor, c: Tensor, *, max_len: int, tau: float,
                  kind: str, hard: bool = False,
                  noise: torch.Generator | None = None) -> SoftSentence:
    """Run the generator freely for `max_len` steps on its own relaxed outputs, all rows at once.

    z (B, Z), c (B, C). `kind` and `hard` go to `relax` (hard is ignored by "reinmax", whose
    forward pass is always one-hot); `noise` drives the Gumbel / ReinMax draws ("softmax" draws
    nothing) and must live on z's device. Dropout applies if the generator is in training mode,
    as in teacher forcing.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if kind not in RELAXATIONS:  # fail before any work, not inside the first step
        raise ValueError(f"unknown relaxation '{kind}' (use one of {RELAXATIONS})")
    zc = generator.conditioning(z, c)  # (B, Z+C)
    hidden = generator.initial_state(z, c)  # (L, B, H)
    batch, device, eos = zc.shape[0], zc.device, generator.eos_id
    input_emb = generator.embed(generator.start_tokens(batch, device=device))  # (B, E)

    ended = torch.zeros(batch, dtype=torch.bool, device=device)  # (B,) hard reading
    lengths = torch.full((batch,), max_len, dtype=torch.long, device=device)  # (B,)
    probs, tokens = [], []
    for t in range(max_len):
        logits, hidden = generator.step(input_emb, hidden, zc)  # (B, V), (L, B, H)
        y = relax(generator.forbid_special(logits), tau, kind, hard=hard,
                  generator=noise)  # (B, V) fp32
        probs.append(y)

        chosen = y.detach().argmax(dim=-1)  # (B,)
        tokens.append(chosen.masked_fill(ended, generator.pad_id))
        first_eos = (chosen == eos) & ~ended
        lengths = lengths.masked_fill(first_eos, t + 1)
        ended = ended | first_eos

        input_emb = generator.embed_soft(y)  # (B, E), differentiable in y
    stacked = torch.stack(probs, dim=1)  # (B, T, V)
    # fp32 whatever autocast does to the GRU: relax returns fp32 rows
    return SoftSentence(probs=stacked, weights=alive_weights(stacked[..., eos]),
                        tokens=torch.stack(tokens, dim=1), lengths=lengths)
