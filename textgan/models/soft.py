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
the first EOS) for logging, samples and the D step's hard inputs if one wants them; it is read
from the stacked rows after the loop, so the loop itself does nothing but the steps.

`compiled=True` (train.compile_soft_step) runs each step as one `torch.compile`d function of
tensors (`soft_step`), for GPUs, where the ~20 kernel launches of an eager step bound the loop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from textgan.losses import length_mask
from textgan.models.attention import Memory
from textgan.models.generator import Generator
from textgan.models.relaxation import check_relaxation, relax, relaxation_noise
from textgan.models.soft_step import cell_weights, compiled_soft_step, dropout_masks, run_compiled


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


SOFT_MASKS = ("soft", "detached", "hard", "faded")


def position_weights(sentence: SoftSentence, mask: str) -> Tensor:
    """(B, T) fp32 weights with which D and E read the positions of a soft sentence: the one
    reading both use.

    Both read the positions up to and including the argmax reading's first EOS (`lengths`) and
    nothing after: E, a bidirectional GRU trained on real sentences read to their end, gives
    noise when it runs through a faded tail (NOTES.md, experiment G), so D is cut there too
    rather than judging a longer sentence than E reads. Within the cut, the mask says how each
    position weighs. "soft": P(no EOS before t), differentiable -- the EOS probabilities then
    get a gradient from whatever reads the sentence, and a style loss that gains from more
    style-bearing positions teaches G to delay EOS (sentences run on: NOTES.md, experiment E).
    "detached": the same weights as constants, so EOS is learned from the sentence's content
    alone. "hard": 1 at every position, as Hu et al.'s code cuts soft sentences at the length
    of their hard reading. "faded" is the one reading without the cut: the detached weights at
    all max_len positions, the faded tail included (the stage's reading before issue 18, kept
    to measure what the cut changes on real text: NOTES.md, Y10).
    """
    if mask not in SOFT_MASKS:
        raise ValueError(f"unknown soft mask '{mask}' (use one of {SOFT_MASKS})")
    if mask == "faded":
        return sentence.weights.detach()
    cut = length_mask(sentence.lengths, sentence.weights.shape[1]).float()  # (B, T)
    if mask == "soft":
        return sentence.weights * cut
    if mask == "detached":
        return sentence.weights.detach() * cut
    return cut


def soft_generate(generator: Generator, z: Tensor, c: Tensor, *, max_len: int, tau: float,
                  kind: str, hard: bool = False, noise: torch.Generator | None = None,
                  compiled: bool = False, memory: Memory | None = None) -> SoftSentence:
    """Run the generator freely for `max_len` steps on its own relaxed outputs, all rows at once.

    z (B, Z), c (B, C). `kind` and `hard` go to `relax` (hard is ignored by "reinmax", whose
    forward pass is always one-hot); `noise` drives the Gumbel / ReinMax draws ("softmax" draws
    nothing) and must live on z's device. Dropout applies if the generator is in training mode,
    as in teacher forcing. `compiled` runs each step as one `torch.compile`d function
    (`soft_step`): the same values to rounding and the same relaxation draws, fewer kernels;
    the first calls compile (seconds to a minute). `memory`: the source sentence a generator
    with attention reads (style transfer), None for none (samples from the prior).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    check_relaxation(kind, tau)  # fail before any work, not inside the first step
    zc = generator.conditioning(z, c)  # (B, Z+C)
    hidden = generator.initial_state(z, c)  # (L, B, H)
    input_emb = generator.embed(generator.start_tokens(zc.shape[0], device=zc.device))  # (B, E)
    if compiled:
        if generator.attention is not None or generator.tied:
            raise ValueError("the compiled soft step supports neither model.attention nor "
                             "model.tie_output; set train.compile_soft_step = false")
        probs = _compiled_steps(generator, input_emb, hidden, zc, max_len=max_len, tau=tau,
                                kind=kind, hard=hard, noise=noise)
    else:
        probs = []
        for _ in range(max_len):
            logits, hidden = generator.step(input_emb, hidden, zc, memory)  # (B, V)
            y = relax(generator.forbid_special(logits), tau, kind, hard=hard,
                      generator=noise)  # (B, V) fp32
            probs.append(y)
            input_emb = generator.embed_soft(y)  # (B, E), differentiable in y
    stacked = torch.stack(probs, dim=1)  # (B, T, V)
    tokens, lengths = hard_reading(stacked, eos_id=generator.eos_id, pad_id=generator.pad_id)
    # fp32 whatever autocast does to the GRU: relax returns fp32 rows
    return SoftSentence(probs=stacked, weights=alive_weights(stacked[..., generator.eos_id]),
                        tokens=tokens, lengths=lengths)


def _compiled_steps(generator: Generator, input_emb: Tensor, hidden: Tensor, zc: Tensor, *,
                    max_len: int, tau: float, kind: str, hard: bool,
                    noise: torch.Generator | None) -> list[Tensor]:
    """The loop of `soft_generate` with each step compiled; the random numbers drawn eagerly."""
    step, weights = compiled_soft_step(), cell_weights(generator)
    batch, vocab = input_emb.shape[0], weights.embedding.shape[0]
    # filled on the device (torch.tensor would copy from the host, which waits for a GPU)
    tau_tensor = torch.full((), tau, dtype=torch.float32, device=zc.device)
    probs = []
    for _ in range(max_len):
        draws = relaxation_noise(kind, (batch, vocab), device=zc.device, generator=noise)
        y, input_emb, hidden = run_compiled(
            step, input_emb, hidden, zc, tau_tensor, draws, dropout_masks(generator, batch),
            weights, kind=kind, hard=hard)
        probs.append(y)
    return probs


def hard_reading(probs: Tensor, *, eos_id: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """The argmax tokens (B, T) of relaxed rows (B, T, V), PAD after the first EOS, and the
    lengths (B,) up to and including the first EOS (T where there is none)."""
    chosen = probs.detach().argmax(dim=-1)  # (B, T)
    is_eos = (chosen == eos_id).long()  # (B, T)
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0  # (B, T) an EOS came strictly before
    return chosen.masked_fill(after_eos, pad_id), (~after_eos).sum(dim=1)
