"""The networks: the VAE's encoder and generator, and the structured code c.

    encoder, generator = build_vae(cfg.model, vocab_size=V, code_dim=code_dim(num_classes),
                                   pad_id=..., bos_id=..., eos_id=...)

With `cfg.model.share_embedding` the two hold the SAME nn.Embedding, so it appears in both
`encoder.parameters()` and `generator.parameters()`: when one optimizer covers both, deduplicate
the parameters (torch warns about duplicates in a parameter group, and the tests turn warnings
into errors); when separate optimizers step E and G, decide which one owns the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from torch import nn

from textgan.config import ModelConfig
from textgan.models.attention import (Memory, drop_memory, encode_soft_source, encode_source,
                                      select_memory)
from textgan.models.code import (code_dim, code_offsets, fill_missing, one_hot_code, sample_code,
                                 split_code, strengthen_code)
from textgan.models.discriminator import Discriminator, hard_weights
from textgan.models.encoder import Encoder, Posterior, make_embedding, reparameterize
from textgan.models.generator import (Decoded, Generator, Step, apply_word_dropout,
                                      ban_repeated_ngrams, choose_next, filter_top_k,
                                      filter_top_p, shift_right)
from textgan.models.relaxation import RELAXATIONS, gumbel_noise, relax, straight_through
from textgan.models.soft import (SOFT_MASKS, SoftSentence, alive_weights, position_weights,
                                 soft_generate)


class VAE(NamedTuple):
    """The encoder and generator of one model (sharing an embedding table or not)."""

    encoder: Encoder
    generator: Generator


def build_vae(cfg: ModelConfig, *, vocab_size: int, code_dim: int, pad_id: int, bos_id: int,
              eos_id: int) -> VAE:
    """Encoder and generator, sharing their embedding table if cfg.share_embedding."""
    shared: nn.Embedding | None = None
    if cfg.share_embedding:
        shared = make_embedding(cfg, vocab_size=vocab_size, pad_id=pad_id)
    encoder = Encoder(cfg, vocab_size=vocab_size, pad_id=pad_id, embedding=shared)
    generator = Generator(cfg, vocab_size=vocab_size, code_dim=code_dim, pad_id=pad_id,
                          bos_id=bos_id, eos_id=eos_id, embedding=shared)
    return VAE(encoder=encoder, generator=generator)


def unique_parameters(*modules: nn.Module, exclude: Iterable[nn.Module] = ()
                      ) -> list[nn.Parameter]:
    """The parameters of `modules`, each once, in first-seen order, none that `exclude` hold.

    A table two modules share is listed once (one optimizer over both must not see it twice).
    `exclude` is for separate optimizers: a table the encoder shares with the generator is
    the generator's, so the encoder's own are `unique_parameters(encoder, exclude=[generator])`.
    """
    seen = {id(param) for module in exclude for param in module.parameters()}
    params = []
    for module in modules:
        for param in module.parameters():
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def vae_parameters(vae: VAE) -> list[nn.Parameter]:
    """Every parameter of the encoder and generator once, in a stable order (shared table once)."""
    return unique_parameters(*vae)


__all__ = [
    "RELAXATIONS", "SOFT_MASKS", "SoftSentence", "alive_weights", "gumbel_noise",
    "position_weights", "relax", "soft_generate", "straight_through",
    "Memory", "drop_memory", "encode_soft_source", "encode_source", "select_memory",
    "VAE", "Decoded", "Discriminator", "Encoder", "Generator", "Posterior", "Step",
    "apply_word_dropout", "ban_repeated_ngrams", "build_vae", "choose_next", "code_dim",
    "code_offsets", "fill_missing",
    "filter_top_k", "filter_top_p", "hard_weights", "make_embedding", "one_hot_code",
    "reparameterize", "sample_code", "shift_right", "split_code", "strengthen_code",
    "unique_parameters", "vae_parameters",
]
