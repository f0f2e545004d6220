"""Analytic FLOP counts (textgan.flops): by hand, by scaling, and against torch's flop counter
on the real modules (forward passes, tiny sizes, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from textgan.config import DiscriminatorConfig, ModelConfig
from textgan.flops import (
    FROZEN,
    NO_GRAD,
    TRAIN,
    Cost,
    adversarial_step_flops,
    conv1d_flops,
    decode_flops,
    discriminator_flops,
    encoder_flops,
    generator_flops,
    gru_flops,
    linear_flops,
    pretrain_step_flops,
    soft_embedding_flops,
)
from textgan.models import Discriminator, build_vae, code_dim, one_hot_code, sample_code

PAD, UNK, BOS, EOS = 0, 1, 2, 3
VOCAB = 40
NUM_CLASSES = [2, 3]


def model_cfg(**overrides) -> ModelConfig:
    values = {"embedding_dim": 8, "hidden_dim": 12, "z_dim": 4, "encoder_layers": 1,
              "encoder_bidirectional": True, "generator_layers": 1, "dropout": 0.0}
    values.update(overrides)
    return ModelConfig(**values)


def counted(fn) -> int:
    """Matrix-product FLOPs torch's flop counter sees while fn() runs."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def words(batch: int, length: int) -> torch.Tensor:
    """(batch, length) ids that are neither special nor padding, ending in EOS."""
    torch.manual_seed(0)
    tokens = torch.randint(4, VOCAB, (batch, length))
    tokens[:, -1] = EOS
    return tokens


# --------------------------------------------------------------------------- by hand


def test_a_one_layer_gru_counted_by_hand():
    # 3 gates x (input 10x20 + hidden 20x20 MACs) x 2 FLOPs = 3 x (400 + 800) = 3600
    assert gru_flops(10, 20) == 3600


def test_a_deep_bidirectional_gru_counted_by_hand():
    # layer 1: 2 directions x 3 x (2*10*20 + 2*20*20) = 7200
    # layer 2 reads both directions (40 wide): 2 x 3 x (2*40*20 + 2*20*20) = 14400
    assert gru_flops(10, 20, num_layers=2, bidirectional=True) == 7200 + 14400


def test_linear_conv_and_soft_embedding_by_hand():
    assert linear_flops(3, 5) == 30
    assert conv1d_flops(4, 6, 3) == 144
    assert soft_embedding_flops(100, 8) == 1600


def test_the_encoder_by_hand():
    cfg = model_cfg(embedding_dim=8, hidden_dim=12, z_dim=4, encoder_bidirectional=True)
    cost = encoder_flops(cfg)
    assert cost.per_token == 2 * 3 * (2 * 8 * 12 + 2 * 12 * 12)
    assert cost.per_sentence == 2 * (2 * 12) * (2 * 4)  # [fwd; bwd] state -> [mean; logvar]


def test_the_generator_by_hand():
    cfg = model_cfg(embedding_dim=8, hidden_dim=12, z_dim=4, generator_layers=1)
    cost = generator_flops(cfg, vocab_size=VOCAB, code_dim=5)
    step_input = 8 + 4 + 5  # word embedding ; z ; c
    assert cost.per_token == 3 * (2 * step_input * 12 + 2 * 12 * 12) + 2 * 12 * VOCAB
    assert cost.per_sentence == 2 * (4 + 5) * 12


def test_the_cnn_discriminator_by_hand():
    cfg = DiscriminatorConfig(kind="cnn", embedding_dim=6, filter_widths=[2, 3], filters=5)
    cost = discriminator_flops(cfg, num_classes=[2, 3])
    assert cost.per_token == 2 * 6 * 5 * 2 + 2 * 6 * 5 * 3
    # windows after the end (max width 3: 2 of width 2, 1 of width 3) + heads 10 -> 2 and 10 -> 3
    tail = 2 * (2 * 6 * 5 * 2) + 1 * (2 * 6 * 5 * 3)
    assert cost.per_sentence == tail + 2 * 10 * 2 + 2 * 10 * 3


def test_cost_arithmetic():
    cost = Cost(per_token=10, per_sentence=100)
    assert (cost + cost).total(tokens=3, sentences=2) == 2 * (30 + 200)
    assert (3 * cost).per_token == 30 and (cost * 3).per_sentence == 300


# --------------------------------------------------------------------------- scaling


def test_doubling_the_hidden_size_quadruples_the_recurrent_part():
    small, large = gru_flops(16, 256), gru_flops(16, 512)
    # the input products (3 gates x 2 x I x H) only double; the rest is the recurrent part
    recurrent_small, recurrent_large = small - 3 * 2 * 16 * 256, large - 3 * 2 * 16 * 512
    assert recurrent_large == 4 * recurrent_small
    # the hidden product dominates when the input is narrow: close to 4x overall
    assert 3.8 < large / small < 4.0


def test_the_output_projection_scales_with_the_vocabulary():
    cfg = model_cfg()
    small = generator_flops(cfg, vocab_size=1000, code_dim=4).per_token
    large = generator_flops(cfg, vocab_size=2000, code_dim=4).per_token
    assert large - small == linear_flops(cfg.hidden_dim, 1000)


def test_a_training_step_is_three_forward_passes():
    cfg = model_cfg()
    forward = encoder_flops(cfg) + generator_flops(cfg, vocab_size=VOCAB, code_dim=5)
    step = pretrain_step_flops(cfg, vocab_size=VOCAB, code_dim=5)
    assert step.total(70, 7) == pytest.approx(3 * forward.total(70, 7))


def test_adversarial_parts_add_up_and_scale_with_the_batch():
    model, disc = model_cfg(), DiscriminatorConfig(embedding_dim=6, filters=5)
    args = {"vocab_size": VOCAB, "num_classes": NUM_CLASSES, "max_len": 9}
    one = adversarial_step_flops(model, disc, batch_size=4, real_tokens=30, **args)
    two = adversarial_step_flops(model, disc, batch_size=8, real_tokens=60, **args)
    assert one["total"] == pytest.approx(sum(v for k, v in one.items() if k != "total"))
    for key in one:
        assert two[key] == pytest.approx(2 * one[key])
    # a frozen network costs 2 forward passes, a sampled one 1, a trained one 3
    d = discriminator_flops(disc, num_classes=NUM_CLASSES)
    assert one["d_real"] == pytest.approx(TRAIN * d.total(30, 4))
    assert one["d_labels"] == pytest.approx(NO_GRAD * d.total(30, 4))
    assert one["d_soft"] == pytest.approx(
        FROZEN * (d.total(36, 4) + 36 * soft_embedding_flops(VOCAB, 6)))
    shorter = adversarial_step_flops(model, disc, batch_size=4, real_tokens=30,
                                     generated_tokens=20, **args)
    assert shorter["d_fake"] < one["d_fake"] and shorter["e_soft"] < one["e_soft"]
    assert shorter["g_soft"] == one["g_soft"]  # soft generation always runs max_len steps


def test_decoding_counts_every_row_for_every_step():
    cfg = model_cfg()
    gen = generator_flops(cfg, vocab_size=VOCAB, code_dim=5)
    assert decode_flops(cfg, vocab_size=VOCAB, code_dim=5, sentences=10, steps=7) == \
        pytest.approx(gen.total(70, 10))


# --------------------------------------------------------------------------- the real modules


@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, False), (2, True)])
def test_the_encoder_count_matches_torch_on_packed_sentences(layers, bidirectional):
    cfg = model_cfg(encoder_layers=layers, encoder_bidirectional=bidirectional)
    vae = build_vae(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                    bos_id=BOS, eos_id=EOS)
    tokens, lengths = words(3, 7), torch.tensor([7, 4, 2])
    # padding is never read (packed), so only the 13 real tokens count
    assert counted(lambda: vae.encoder(tokens, lengths)) == encoder_flops(cfg).total(13, 3)


@pytest.mark.parametrize("layers", [1, 2])
def test_the_generator_count_matches_torch_under_teacher_forcing(layers):
    cfg = model_cfg(generator_layers=layers)
    vae = build_vae(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                    bos_id=BOS, eos_id=EOS)
    tokens = words(3, 6)  # no padding: every position is real
    z, c = torch.randn(3, cfg.z_dim), one_hot_code(sample_code(3, NUM_CLASSES), NUM_CLASSES)
    expected = generator_flops(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES))
    assert counted(lambda: vae.generator(vae.generator.teacher_inputs(tokens), z, c)) == \
        expected.total(18, 3)


@pytest.mark.parametrize("kind", ["cnn", "gru"])
def test_the_discriminator_count_matches_torch(kind):
    cfg = DiscriminatorConfig(kind=kind, embedding_dim=6, filter_widths=[2, 3, 4], filters=5,
                              hidden_dim=7)
    disc = Discriminator(cfg, vocab_size=VOCAB, num_classes=NUM_CLASSES, pad_id=PAD)
    tokens = words(3, 6)  # no padding: the CNN's windows are the real ones and its own tail
    lengths = torch.full((3,), 6)
    expected = discriminator_flops(cfg, num_classes=NUM_CLASSES).total(18, 3)
    assert counted(lambda: disc(tokens, lengths)) == expected
