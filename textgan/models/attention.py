"""Attention from the generator over the source sentence's encoder states (`model.attention`).

    posterior, states = encoder.encode_with_states(tokens, lengths)  # states (B, S, M)
    memory = generator.memory(states, length_mask(lengths, S))        # keys computed once
    memory = drop_memory(memory, rate)                                # training: some rows forget
    logits = generator(inputs, z, c, memory=memory)                  # (B, T, V)

Why: a VAE's z is a bottleneck of a few dozen numbers, so a sentence rebuilt from [z; c] alone
keeps its gist but loses words (on Yelp, greedy reconstructions reach BLEU ~20 to their inputs).
Style transfer can keep no more of the source than reconstruction does. With attention the
generator reads the source's words directly (Luong et al. 2015, "general" score), as in texar's
simplified controlled-generation model, and the adversarial stage's transfer loss teaches it to
change only what carries the style.

Sentences drawn from the prior have no source. The generator then runs with `memory=None`,
where the attention context is zero: exactly what it sees for the rows whose memory
`drop_memory` removed during training (zeroed keys and values give uniform weights over zero
vectors), so the same network learns both modes, with and without a source.

Shapes: S source positions, M = encoder state size (2H when bidirectional), H = generator
hidden size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from textgan.losses import length_mask


class Memory(NamedTuple):
    """A source sentence as the generator attends to it."""

    keys: Tensor  # (B, S, H) the states mapped into the generator's space (W m_s), computed once
    values: Tensor  # (B, S, M) the encoder states
    mask: Tensor  # (B, S) bool, True at real source positions


class Attention(nn.Module):
    """Luong attention: score(h_t, m_s) = h_t . (W m_s), context = sum_s a_ts m_s, and the
    attentional state tanh(W_c [h_t; context]) that replaces h_t before the output layer."""

    def __init__(self, hidden_dim: int, memory_dim: int) -> None:
        super().__init__()
        self.memory_dim = memory_dim
        self.key = nn.Linear(memory_dim, hidden_dim, bias=False)
        self.combine = nn.Linear(hidden_dim + memory_dim, hidden_dim)

    def memory(self, states: Tensor, mask: Tensor) -> Memory:
        """Encoder states (B, S, M) and their mask (B, S) -> the Memory the steps attend to."""
        if states.shape[-1] != self.memory_dim:
            raise ValueError(f"encoder states have size {states.shape[-1]}, this attention "
                             f"expects {self.memory_dim}")
        return Memory(keys=self.key(states), values=states, mask=mask)

    def forward(self, outputs: Tensor, memory: Memory | None) -> Tensor:
        """GRU outputs (B, T, H) -> attentional states (B, T, H); memory None = zero context."""
        if memory is None:
            context = outputs.new_zeros(*outputs.shape[:-1], self.memory_dim)  # (B, T, M)
        else:
            scores = outputs @ memory.keys.transpose(1, 2)  # (B, T, S)
            scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
            context = torch.softmax(scores, dim=-1) @ memory.values  # (B, T, M)
        return torch.tanh(self.combine(torch.cat([outputs, context.to(outputs.dtype)], dim=-1)))


def drop_memory(memory: Memory | None, rate: float, *,
                generator: torch.Generator | None = None) -> Memory | None:
    """Memory with each row forgotten with probability `rate` (its context becomes zero).

    Zeroed keys give every position the same score, and zeroed values make the context zero:
    the row is decoded as if there were no source (`memory=None`), so the generator keeps
    learning to write from [z; c] alone, which is how it samples from the prior. The mask is
    kept, so no row is ever all masked (a softmax over nothing). rate 0 returns `memory` itself
    and draws no random numbers; so does a missing memory (None: a generator without attention).
    """
    if memory is None:
        return None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"memory dropout rate must lie in [0, 1], got {rate}")
    if rate == 0.0:
        return memory
    batch = memory.values.shape[0]
    draw = torch.rand((batch,), generator=generator, device=memory.values.device)
    keep = (draw >= rate).to(memory.values.dtype).view(batch, 1, 1)  # (B, 1, 1)
    return Memory(keys=memory.keys * keep.to(memory.keys.dtype), values=memory.values * keep,
                  mask=memory.mask)


def select_memory(memory: Memory | None, rows: slice | Tensor) -> Memory | None:
    """The memory of some rows (a slice or an index tensor), None stays None."""
    if memory is None:
        return None
    return Memory(keys=memory.keys[rows], values=memory.values[rows], mask=memory.mask[rows])


def encode_source(encoder: Any, generator: Any, tokens: Tensor, lengths: Tensor,
                  host_lengths: Tensor | None = None) -> tuple[Any, Memory | None]:
    """q(z|x) of source sentences and, for a generator with attention, their Memory (else None).

    tokens (B, S) right-padded, lengths (B,) on the tokens' device; host_lengths, the same on
    the CPU where the caller has them (packing reads them there; see Encoder.forward).
    """
    packing_lengths = lengths if host_lengths is None else host_lengths
    if generator.attention is None:
        return encoder(tokens, packing_lengths), None
    posterior, states = encoder.encode_with_states(tokens, packing_lengths)
    return posterior, generator.memory(states, length_mask(lengths, tokens.shape[1]))


def encode_soft_source(encoder: Any, generator: Any, embedded: Tensor, lengths: Tensor
                       ) -> tuple[Any, Memory | None]:
    """`encode_source` for a soft sentence given as embeddings (B, T, E) (probabilities times
    the table, weighted by position), read up to lengths (B,) (its hard reading's end)."""
    if generator.attention is None:
        return encoder.encode_embeddings(embedded, lengths), None
    posterior, states = encoder.encode_embeddings_with_states(embedded, lengths)
    return posterior, generator.memory(states, length_mask(lengths, embedded.shape[1]))
