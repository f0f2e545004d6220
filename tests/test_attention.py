"""The generator's attention over the source (model.attention) and the tied output layer
(model.tie_output): shapes, masks, the no-source mode, memory dropout, gradients, and the
adversarial stage's transfer loss (train.lambda_t). Tiny sizes, CPU only."""

from __future__ import annotations

import pytest
import torch

from textgan.config import Config
from textgan.engines import other_labels, generated_rows
from textgan.losses import length_mask
from textgan.models import (Memory, build_vae, code_dim, drop_memory, encode_source,
                            select_memory, soft_generate)
from tests.test_models import (BOS, EOS, NUM_CLASSES, PAD, VOCAB, random_condition,
                               random_sentences, small_cfg)
from tests.tiny_models import adversarial_steps


def attentive_vae(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    cfg = small_cfg(attention=True, **overrides)
    return build_vae(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                     bos_id=BOS, eos_id=EOS)


def source(lengths: list[int], width: int | None = None, seed: int = 0):
    tokens = random_sentences(lengths, width=width, seed=seed)
    return tokens, torch.tensor(lengths)


def test_encoder_states_are_zero_after_each_row_and_agree_with_the_posterior():
    vae = attentive_vae()
    vae.encoder.eval()
    tokens, lengths = source([5, 3, 7])
    posterior, states = vae.encoder.encode_with_states(tokens, lengths)
    assert states.shape == (3, 7, 2 * small_cfg().hidden_dim)  # bidirectional: 2H
    assert torch.equal(states[1, 3:], torch.zeros_like(states[1, 3:]))
    plain = vae.encoder(tokens, lengths)
    assert torch.allclose(posterior.mean, plain.mean) and torch.allclose(posterior.logvar,
                                                                        plain.logvar)


def test_teacher_forcing_step_and_decode_agree_with_a_memory():
    vae = attentive_vae()
    vae.encoder.eval()
    vae.generator.eval()
    tokens, lengths = source([6, 4])
    posterior, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    assert isinstance(memory, Memory)
    z, c = posterior.mean, random_condition(2)[1]
    with torch.no_grad():
        decoded = vae.generator.decode(z, c, max_len=6, strategy="greedy", memory=memory)
        inputs = vae.generator.teacher_inputs(decoded.tokens)
        forced = vae.generator(inputs, z, c, memory).argmax(-1)  # (B, T)
    mask = length_mask(decoded.lengths, decoded.tokens.shape[1])
    assert torch.equal(forced[mask], decoded.tokens[mask])


def test_padding_of_the_source_never_changes_the_output():
    vae = attentive_vae()
    vae.encoder.eval()
    vae.generator.eval()
    tokens, lengths = source([4, 6])
    wider = torch.cat([tokens, torch.full((2, 3), PAD)], dim=1)
    wider[0, 5:] = 9  # garbage after the first row's end must be masked, not read
    z, c = random_condition(2)
    inputs = vae.generator.teacher_inputs(random_sentences([5, 5]))
    with torch.no_grad():
        narrow = vae.generator(inputs, z, c, encode_source(vae.encoder, vae.generator,
                                                           tokens, lengths)[1])
        wide = vae.generator(inputs, z, c, encode_source(vae.encoder, vae.generator,
                                                         wider, lengths)[1])
    assert torch.allclose(narrow, wide, atol=1e-6)


def test_a_forgotten_row_is_decoded_exactly_as_without_a_source():
    vae = attentive_vae()
    vae.generator.eval()
    tokens, lengths = source([5, 6, 4])
    _, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    forgotten = drop_memory(memory, 1.0)
    z, c = random_condition(3)
    inputs = vae.generator.teacher_inputs(tokens)
    with torch.no_grad():
        without = vae.generator(inputs, z, c, None)
        dropped = vae.generator(inputs, z, c, forgotten)
        with_source = vae.generator(inputs, z, c, memory)
    assert torch.allclose(without, dropped, atol=1e-6)
    assert not torch.allclose(without, with_source, atol=1e-3)  # the source is read at all


def test_memory_dropout_forgets_whole_rows_at_its_rate_and_zero_draws_nothing():
    vae = attentive_vae()
    tokens, lengths = source([5] * 400)
    _, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    state = torch.get_rng_state()
    assert drop_memory(memory, 0.0) is memory
    assert torch.equal(state, torch.get_rng_state())
    dropped = drop_memory(memory, 0.3, generator=torch.Generator().manual_seed(0))
    forgotten = dropped.values.abs().sum(dim=(1, 2)) == 0  # (B,)
    kept = torch.equal(dropped.values[~forgotten], memory.values[~forgotten])
    assert kept and 0.2 < forgotten.float().mean().item() < 0.4
    with pytest.raises(ValueError, match="memory dropout"):
        drop_memory(memory, 1.5)


def test_a_generator_without_attention_has_no_memory():
    torch.manual_seed(0)
    vae = build_vae(small_cfg(), vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                    bos_id=BOS, eos_id=EOS)
    tokens, lengths = source([4, 5])
    _, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    assert memory is None and select_memory(None, slice(0, 1)) is None
    with pytest.raises(ValueError, match="no attention"):
        vae.generator.memory(torch.zeros(2, 5, 24), torch.ones(2, 5, dtype=torch.bool))


@pytest.mark.parametrize("tie", [False, True])
def test_the_reconstruction_loss_reaches_attention_encoder_states_and_tied_output(tie):
    vae = attentive_vae(tie_output=tie)
    tokens, lengths = source([5, 6])
    posterior, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    logits = vae.generator(vae.generator.teacher_inputs(tokens), posterior.mean,
                           random_condition(2)[1], memory)
    assert logits.shape == (2, 6, VOCAB)
    logits.logsumexp(-1).sum().backward()
    attention = vae.generator.attention
    assert attention.key.weight.grad.abs().sum() > 0
    assert vae.encoder.gru.weight_hh_l0_reverse.grad.abs().sum() > 0
    if tie:
        assert not hasattr(vae.generator, "output")
        assert vae.generator.to_embedding.weight.grad.abs().sum() > 0
        # the table receives gradient as the output layer, not only as the input side
        assert vae.generator.embedding.weight.grad[EOS].abs().sum() > 0


def test_soft_generation_reads_the_memory_and_the_compiled_step_refuses_it():
    vae = attentive_vae()
    tokens, lengths = source([5, 4])
    _, memory = encode_source(vae.encoder, vae.generator, tokens, lengths)
    z, c = random_condition(2)
    with_source = soft_generate(vae.generator, z, c, max_len=4, tau=1.0, kind="softmax",
                                memory=memory)
    without = soft_generate(vae.generator, z, c, max_len=4, tau=1.0, kind="softmax")
    assert with_source.probs.shape == (2, 4, VOCAB)
    assert not torch.allclose(with_source.probs, without.probs)
    with pytest.raises(ValueError, match="compile_soft_step"):
        soft_generate(vae.generator, z, c, max_len=4, tau=1.0, kind="softmax", compiled=True)


def test_other_labels_moves_every_attribute_to_another_class():
    torch.manual_seed(0)
    labels = torch.tensor([[0, 0], [1, 2], [1, 1]] * 50)
    moved = other_labels(labels, [2, 3])
    assert torch.equal(moved[:, 0], 1 - labels[:, 0])  # two classes: the flip
    assert bool((moved[:, 1] != labels[:, 1]).all())
    assert set(moved[:, 1].tolist()) == {0, 1, 2}
    assert torch.equal(other_labels(labels[:, :1], [1]), labels[:, :1])  # one class stays


def test_generated_rows():
    assert generated_rows(128, 0) == 128
    assert generated_rows(128, 32) == 32
    assert generated_rows(20, 32) == 20


def tiny_attentive_config(**train) -> Config:
    cfg = Config()
    cfg.model = small_cfg(attention=True, tie_output=True)
    cfg.discriminator.embedding_dim = 8
    cfg.discriminator.filters = 4
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def labelled_batch():
    """Four labelled sentences in tiny_models' ids (PAD 0, EOS 3, words 4..29)."""
    from textgan.data import Batch

    lengths = torch.tensor([5, 6, 4, 7])
    tokens = torch.zeros(4, 7, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        tokens[row, :n - 1] = torch.randint(4, 30, (n - 1,))
        tokens[row, n - 1] = 3
    labels = torch.tensor([[0, 1], [1, 0], [0, 0], [1, 1]])
    return Batch(tokens=tokens, lengths=lengths, labels=labels,
                 label_mask=torch.ones_like(labels, dtype=torch.bool))


def test_the_transfer_loss_trains_the_generator_and_encoder_and_spares_the_discriminator():
    cfg = tiny_attentive_config(lambda_t=1.0, lambda_c=0.0, lambda_z=0.0, generated_batch_size=3)
    steps, vae, disc = adversarial_steps(cfg)
    batch = labelled_batch()
    before = {name: p.detach().clone() for name, p in disc.named_parameters()}
    out = steps.generator_step(batch, tau=1.0, hard=False)
    assert out["attr_t"].item() > 0
    assert all(torch.equal(before[name], p) for name, p in disc.named_parameters())
    assert vae.generator.attention.key.weight.grad is not None


def test_the_cycle_loss_reads_each_sentence_back_from_its_transfer():
    cfg = tiny_attentive_config(lambda_t=0.0, lambda_cycle=1.0, lambda_c=0.0, lambda_z=0.0,
                                generated_batch_size=3)
    steps, vae, disc = adversarial_steps(cfg)
    torch.manual_seed(0)
    batch = labelled_batch()
    tokens, lengths, labels = batch.tokens, batch.lengths, batch.labels
    posterior, source = encode_source(vae.encoder, vae.generator, tokens, lengths)
    transfer, cycle = steps.transfer_losses(batch, posterior, source, labels, 3, 1.0, False)
    assert transfer.item() == 0.0  # lambda_t = 0: not computed
    # about log V nats a token for untrained networks, over the 3 sentences' tokens
    assert 3.0 < cycle.item() / (5 + 6 + 4) * 3 < 4.5
    cycle.backward()
    assert vae.generator.attention.key.weight.grad.abs().sum() > 0  # read back through memory
    assert vae.encoder.gru.weight_ih_l0.grad.abs().sum() > 0  # E reads the soft sentence
    assert all(p.grad is None for p in disc.parameters())  # D plays no part in it
    out = steps.generator_step(batch, tau=1.0, hard=False)
    assert out["cycle"].item() > 0 and out["attr_t"].item() == 0.0
