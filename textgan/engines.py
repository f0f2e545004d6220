"""Process functions and Engine construction for each training stage.

A step does forward, loss, backward and optimizer step, and returns plain floats; everything
else (schedules, checkpoints, validation, logging) is attached by handlers. Randomness in a step
comes only from torch's global generator, which checkpoints save and restore, so a resumed run
draws the same noise as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from ignite.engine import Engine

from textgan.config import PretrainConfig
from textgan.data import Batch
from textgan.losses import (
    decomposed_kl_loss,
    free_bits_kl,
    gaussian_kl,
    kl_decomposition,
    reconstruction_loss,
)
from textgan.models import (
    Encoder,
    Generator,
    apply_word_dropout,
    fill_missing,
    one_hot_code,
    reparameterize,
    sample_code,
)
from textgan.schedules import KL_WEIGHT, WORD_DROPOUT

# Keys of the pretraining step's output, in the order the step computes them.
PRETRAIN_OUTPUTS = ("loss", "rec", "nll", "kl", "kl_term", "grad_norm")


def style_labels(batch: Batch, num_classes: Sequence[int], source: str) -> torch.Tensor:
    """(B, A) class indices for c: from the prior, or the label where known ('label')."""
    if source == "label":
        return fill_missing(batch.labels, batch.label_mask, num_classes)
    return sample_code(batch.tokens.shape[0], num_classes, device=batch.tokens.device)


def create_pretrain_trainer(encoder: Encoder, generator: Generator,
                            optimizer: torch.optim.Optimizer, *, cfg: PretrainConfig,
                            num_classes: Sequence[int], unk_id: int, pad_id: int, bos_id: int,
                            dataset_size: int, device: torch.device) -> Engine:
    """The VAE stage: loss = reconstruction + beta(t) * KL (free bits or TC-decomposed)."""
    params = _unique_parameters(encoder, generator)
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure the norm, clip nothing

    def step(engine: Engine, batch: Batch) -> dict[str, float]:
        encoder.train()
        generator.train()
        tokens_in_batch = int(batch.lengths.sum())  # on the CPU already: no device sync
        batch = batch.to(device, non_blocking=True)

        posterior = encoder(batch.tokens, batch.lengths)
        z = reparameterize(posterior)  # (B, Z), noise drawn per sentence
        c = one_hot_code(style_labels(batch, num_classes, cfg.code_source), num_classes)
        inputs = apply_word_dropout(generator.teacher_inputs(batch.tokens),
                                    getattr(engine.state, WORD_DROPOUT),
                                    unk_id=unk_id, pad_id=pad_id, bos_id=bos_id)
        logits = generator(inputs, z, c)  # (B, T, V)

        rec = reconstruction_loss(logits, batch.tokens, batch.lengths)
        kl = free_bits_kl(gaussian_kl(posterior.mean, posterior.logvar), cfg.free_bits)
        if cfg.kl_decomposition:
            terms = kl_decomposition(z, posterior.mean, posterior.logvar, dataset_size)
            kl_term = decomposed_kl_loss(terms, cfg.mi_weight, cfg.tc_weight, cfg.dim_kl_weight)
        else:
            kl_term = kl.loss_value
        loss = rec.per_sentence + getattr(engine.state, KL_WEIGHT) * kl_term

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

        # One host sync for all scalars instead of one per .item().
        values = torch.stack([loss.detach(), rec.per_sentence.detach(), rec.per_token.detach(),
                              kl.raw.detach(), kl_term.detach(), grad_norm.detach()]).tolist()
        output: dict[str, Any] = dict(zip(PRETRAIN_OUTPUTS, values))
        output["tokens"] = tokens_in_batch
        output["kl_per_dim"] = kl.per_dim_mean.detach()  # (Z,), read by TensorBoard handlers
        return output

    return Engine(step)


def _unique_parameters(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters of several modules, a shared embedding table counted once."""
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        for param in module.parameters():
            seen.setdefault(id(param), param)
    return list(seen.values())
