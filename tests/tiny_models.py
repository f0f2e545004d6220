"""Tiny networks and steps shared by the step-level tests (not a test module itself)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from textgan.config import Config
from textgan.engines import AdversarialSteps
from textgan.models import Discriminator, build_vae, code_dim
from textgan.optim import make_optimizer

NUM_CLASSES = [2, 2]
VOCAB, PAD, UNK, BOS, EOS = 30, 0, 1, 2, 3


def adam(params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return make_optimizer(params, "adam", lr=1e-3)


def tiny_vae(cfg: Config):
    torch.manual_seed(0)
    return build_vae(cfg.model, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                     bos_id=BOS, eos_id=EOS)


def adversarial_steps(cfg: Config, optimizer: Callable[[list], torch.optim.Optimizer] = adam,
                      device: torch.device = torch.device("cpu")):
    """(steps, vae, discriminator) on a 30-token vocabulary, 2 x 2 classes, seed 0."""
    vae = tiny_vae(cfg)
    for module in vae:
        module.to(device)  # in place; a shared embedding table moves once
    disc = Discriminator(cfg.discriminator, vocab_size=VOCAB, num_classes=NUM_CLASSES,
                         pad_id=PAD).to(device)
    steps = AdversarialSteps(encoder=vae.encoder, generator=vae.generator, discriminator=disc,
                             optimizers={}, cfg=cfg.train, num_classes=NUM_CLASSES, max_len=8,
                             class_weights=[None, None], unk_id=UNK, pad_id=PAD, bos_id=BOS,
                             device=device)
    steps.optimizers = {name: optimizer(params) for name, params in steps.params.items()}
    return steps, vae, disc
