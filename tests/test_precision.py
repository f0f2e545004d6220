"""bf16 autocast of the training steps, exercised on the CPU (the path is meant for GPUs).

`pytest tests/test_precision.py --device cuda` runs the step checks on a GPU instead."""

from __future__ import annotations

import pytest
import torch

from textgan.config import load_config
from textgan.data import Batch
from textgan.engines import create_pretrain_trainer, mixed_precision, read_outputs
from textgan.errors import ConfigError
from textgan.models import vae_parameters
from textgan.schedules import KL_WEIGHT, WORD_DROPOUT
from tiny_models import BOS, EOS, NUM_CLASSES, PAD, UNK, adversarial_steps, tiny_vae


def batch() -> Batch:
    tokens = torch.tensor([[5, 6, 7, EOS, PAD], [8, 9, EOS, PAD, PAD], [10, 11, 12, 13, EOS]])
    labels = torch.tensor([[0, 1], [1, -1], [1, 0]])
    return Batch(tokens=tokens, lengths=torch.tensor([4, 3, 5]), labels=labels,
                 label_mask=labels >= 0)


def pretrain_step(precision: str, device: torch.device) -> tuple[dict, list[torch.Tensor]]:
    cfg = load_config("tiny", overrides=[f"pretrain.precision={precision}"])
    vae = tiny_vae(cfg)
    for module in vae:
        module.to(device)
    params = vae_parameters(vae)
    trainer = create_pretrain_trainer(
        vae.encoder, vae.generator, torch.optim.SGD(params, lr=0.1), cfg=cfg.pretrain,
        num_classes=NUM_CLASSES, unk_id=UNK, pad_id=PAD, bos_id=BOS, dataset_size=3,
        device=device)
    setattr(trainer.state, KL_WEIGHT, 0.5)
    setattr(trainer.state, WORD_DROPOUT, 0.0)
    output = trainer._process_function(trainer, batch())
    return output, params


def adversarial_round(precision: str, device: torch.device,
                      compiled: bool = False) -> tuple[dict, list[torch.Tensor]]:
    # no dropout: a bf16 tensor's dropout mask may take other random numbers than an fp32
    # one's, and every later draw (z, the prior) would then differ between the two rounds
    cfg = load_config("tiny", overrides=[f"train.precision={precision}",
                                         "discriminator.dropout=0.0", "train.word_dropout=0.0",
                                         f"train.compile_soft_step={compiled}"])
    steps, _, _ = adversarial_steps(cfg, lambda params: torch.optim.SGD(params, lr=0.1),
                                    device=device)
    # D in warm-up: a sampled fake batch could pick other tokens in bf16 and shift every later
    # random draw, and the rounds would no longer be comparable
    real = batch().to(device)
    output, _ = read_outputs({**steps.discriminator_step(real, warm_up=True),
                              **steps.generator_step(real, tau=0.7, hard=False)}, 3)
    return output, [*steps.params["d"], *steps.params["g"], *steps.params["e"]]


@pytest.mark.parametrize("step, keys", [(pretrain_step, ["loss", "rec", "kl"]),
                                        (adversarial_round, ["d_real", "rec", "attr_c", "attr_z"])],
                         ids=["pretrain", "adversarial"])
def test_a_bf16_step_trains_fp32_weights_with_losses_close_to_fp32(step, keys, device):
    full, _ = step("fp32", device)
    half, params = step("bf16", device)
    for key in keys:
        # the same step with bf16 matmuls: the losses agree to about bf16's precision (before
        # the encoder's posterior head was kept in fp32, attr_z moved 10%)
        assert half[key] == pytest.approx(full[key], rel=0.01, abs=1e-3), key
    assert all(p.dtype == torch.float32 for p in params)  # autocast, not a bf16 model
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in params
               if p.grad is not None)
    assert all(torch.isfinite(p.grad).all() for p in params if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_compiled_soft_step_gives_the_adversarial_round_of_the_eager_one(precision, device):
    eager, _ = adversarial_round(precision, device)
    compiled, params = adversarial_round(precision, device, compiled=True)
    for key in ("g_loss", "attr_c", "attr_z", "g_grad_norm", "e_grad_norm"):
        # bf16: the compiled and eager GRU round differently, to about bf16's precision
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4 if precision == "fp32"
                                              else 0.01, abs=1e-5), key
    assert all(torch.isfinite(p.grad).all() for p in params if p.grad is not None)


def test_the_region_is_bf16_autocast_or_nothing(device):
    x = torch.randn(4, 8, device=device)
    layer = torch.nn.Linear(8, 8).to(device)
    with mixed_precision(device, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with mixed_precision(device, "fp32"):
        assert layer(x).dtype == torch.float32


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        load_config("tiny", overrides=["train.precision=fp16"])
