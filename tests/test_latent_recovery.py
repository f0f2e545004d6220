"""z_recovery: how much of z survives G then E (the independence constraint's target)."""

from __future__ import annotations

import pytest
import torch

from textgan.config import load_config
from textgan.evaluation.vae_health import latent_recovery
from textgan.metrics import LatentRecovery
from tiny_models import NUM_CLASSES, tiny_vae


def recovery(z, z_read, batches=1):
    metric = LatentRecovery()
    metric.reset()
    for zs, reads in zip(z.chunk(batches), z_read.chunk(batches)):
        metric.update((zs, reads))
    return metric.compute()


def test_a_linear_reading_is_1_a_flipped_one_minus_1_a_constant_one_0():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 3, generator=g)
    assert recovery(z, 2 * z + 1) == pytest.approx(1.0, abs=1e-9)
    assert recovery(z, -z) == pytest.approx(-1.0, abs=1e-9)
    assert recovery(z, torch.full_like(z, 0.3)) == 0.0
    # batches add up to the same sums as one pass
    noisy = z + torch.randn(200, 3, generator=g)
    assert recovery(z, noisy, batches=4) == pytest.approx(recovery(z, noisy), abs=1e-12)


def test_the_mean_over_dimensions_hand_case():
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    read = torch.tensor([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]])  # dim 0 exact, dim 1 constant
    assert recovery(z, read) == pytest.approx(0.5, abs=1e-12)


def test_latent_recovery_of_a_model_is_seeded_and_leaves_the_global_rng_alone():
    encoder, generator = tiny_vae(load_config("tiny"))
    state = torch.get_rng_state()
    first = latent_recovery(encoder, generator, num_classes=NUM_CLASSES, n=64, max_len=8,
                            seed=3, batch_size=20)
    assert torch.equal(state, torch.get_rng_state())
    again = latent_recovery(encoder, generator, num_classes=NUM_CLASSES, n=64, max_len=8,
                            seed=3, batch_size=20)
    assert first == again and -1.0 <= first <= 1.0
