"""No host synchronisation inside the training steps (issue 6), checked on a CPU.

A CPU has nothing to wait for, so these tests count, with textgan.sync_audit, the operations
that would wait for a GPU, with the CUDA choices switched on: the value checks as device-side
assertions (`textgan.checks.reading_waits`) and the D step's decoding checking for its exit
every GPU_EXIT_CHECK_EVERY steps. The audit cannot see a `.cpu()` of a tensor already on the
CPU: the one such copy left on the GPU path (the soft sentence's lengths, which the
bidirectional encoder's packing needs on the host) is documented in README, not tested here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import textgan.checks as checks
from textgan.config import load_config
from textgan.data import Batch, collate
from textgan.engines import create_pretrain_trainer, read_outputs
from textgan.models import Discriminator, vae_parameters
from textgan.models.generator import GPU_EXIT_CHECK_EVERY
from textgan.schedules import KL_WEIGHT, WORD_DROPOUT
from textgan.sync_audit import HOST_SIDE_SITES as ON_THE_HOST
from textgan.sync_audit import SyncAudit
from tiny_models import BOS, EOS, NUM_CLASSES, PAD, UNK, VOCAB, adversarial_steps, tiny_vae



@pytest.fixture
def cuda_choices(monkeypatch):
    monkeypatch.setattr(checks, "reading_waits", lambda tensor: True)


def batch() -> Batch:
    rows = [{"ids": [5, 6, 7, EOS], "a": 0, "b": 1}, {"ids": [8, 9, EOS], "a": 1, "b": -1},
            {"ids": [10, 11, 12, 13, EOS], "a": 1, "b": 0}]
    return collate(rows, pad_id=PAD, attribute_names=["a", "b"])


def test_the_audit_sees_reads_and_tensors_built_from_host_data():
    t = torch.arange(4)
    with SyncAudit() as audit:
        bool(t.any())
        t.sum().item()
        torch.tensor([1, 2])
        t.to(device="cpu", dtype=torch.float32)
        t.tolist()  # read without the dispatcher: invisible (the module docstring says so)
    assert audit.total() == 4
    assert sorted(site.split(" ", 1)[1] for site in audit.sites()) == \
        ["copy to the host", "read", "tensor from host data"]


def test_checks_raise_on_the_cpu_and_assert_on_the_device_path(cuda_choices):
    with SyncAudit() as audit:
        checks.require(torch.tensor([True, True]), lambda: "never")
    assert audit.total() == 1  # the tensor literal above; the check itself read nothing
    with pytest.raises(RuntimeError):  # torch._assert_async, which on a CPU fails at once
        checks.require(torch.tensor([True, False]), lambda: "never")


def test_an_adversarial_round_reads_the_device_once_to_end_its_decoding(cuda_choices):
    cfg = load_config("tiny", overrides=["discriminator.kind=gru"])
    steps, _, _ = adversarial_steps(cfg)
    steps.discriminator_step(batch(), warm_up=False)  # first calls build lazy state
    with SyncAudit() as audit:
        values = {**steps.discriminator_step(batch(), warm_up=False),
                  **steps.generator_step(batch(), tau=0.5, hard=False)}
    unexpected = audit.unexpected(ON_THE_HOST)
    # max_len 8, checked every GPU_EXIT_CHECK_EVERY = 8 steps: the one read is at the last step
    assert GPU_EXIT_CHECK_EVERY == 8
    assert len(unexpected) == 1 and sum(unexpected.values()) == 1, unexpected
    assert next(iter(unexpected)).startswith("textgan/models/generator.py"), unexpected
    assert all(value.dim() == 0 for value in values.values())  # read later, all at once
    floats, _ = read_outputs(values, 3)
    assert all(isinstance(v, float) for v in floats.values())


def test_the_cpu_path_still_reads_its_checks():
    """Without the CUDA choices the same round reads its checks (free on a CPU)."""
    steps, _, _ = adversarial_steps(load_config("tiny"))
    with SyncAudit() as audit:
        steps.discriminator_step(batch(), warm_up=False)
    assert any(site.startswith("textgan/checks.py") for site in audit.unexpected(ON_THE_HOST))


def test_a_pretraining_step_reads_nothing_from_the_device(cuda_choices):
    cfg = load_config("tiny")
    vae = tiny_vae(cfg)
    trainer = create_pretrain_trainer(
        vae.encoder, vae.generator, torch.optim.Adam(vae_parameters(vae)), cfg=cfg.pretrain,
        num_classes=NUM_CLASSES, unk_id=UNK, pad_id=PAD, bos_id=BOS, dataset_size=3,
        device=torch.device("cpu"))
    setattr(trainer.state, KL_WEIGHT, 0.5)
    setattr(trainer.state, WORD_DROPOUT, 0.25)
    trainer._process_function(trainer, batch())
    with SyncAudit() as audit:
        output = trainer._process_function(trainer, batch())
    assert audit.unexpected(ON_THE_HOST) == {}
    assert output["tokens"] == 12


def test_batches_carry_their_lengths_on_the_host():
    made = batch()
    assert torch.equal(made.host_lengths, torch.tensor([4, 3, 5]))
    moved = made.to("meta")  # any other device: host_lengths stays behind on the CPU
    assert moved.tokens.device.type == "meta" and moved.host_lengths.device.type == "cpu"
    bare = Batch(made.tokens, made.lengths, made.labels, made.label_mask)
    assert torch.equal(bare.to("cpu").host_lengths, made.lengths) and bare.num_tokens == 12


def test_decoding_checks_for_its_exit_every_k_steps_with_the_same_sentences():
    cfg = load_config("tiny")
    generator = tiny_vae(cfg).generator.eval()
    z, c = torch.randn(6, cfg.model.z_dim), torch.zeros(6, generator.code_dim)
    runs = {}
    for every in (1, 3, 100):
        draws = torch.Generator().manual_seed(1)
        runs[every] = generator.decode(z, c, max_len=12, strategy="sample", generator=draws,
                                       exit_check_every=every)
    for every, run in runs.items():
        width = run.tokens.shape[1]
        assert torch.equal(run.lengths, runs[1].lengths) and torch.equal(run.ended, runs[1].ended)
        assert torch.equal(run.tokens[:, :runs[1].tokens.shape[1]], runs[1].tokens)
        assert bool((run.tokens[:, runs[1].tokens.shape[1]:] == PAD).all())
        assert width - runs[1].tokens.shape[1] < every
    with pytest.raises(ValueError, match="exit_check_every"):
        generator.decode(z, c, max_len=4, exit_check_every=0)


def test_decoding_checks_every_step_on_a_cpu_and_every_few_where_reads_wait(monkeypatch):
    generator = tiny_vae(load_config("tiny")).generator.eval()
    z, c = torch.zeros(2, generator.z_dim), torch.zeros(2, generator.code_dim)
    never_end = torch.tensor([PAD, BOS, EOS])  # so every row runs all max_len steps
    generator.forbid_special = lambda logits: logits.index_fill(-1, never_end, float("-inf"))
    for waits, reads in ((False, 20), (True, 20 // GPU_EXIT_CHECK_EVERY)):
        monkeypatch.setattr(checks, "reading_waits", lambda tensor: waits)
        with SyncAudit() as audit:
            decoded = generator.decode(z, c, max_len=20)
        assert decoded.tokens.shape == (2, 20) and not bool(decoded.ended.any())
        assert audit.total() == reads, audit.sites()


def test_the_gru_discriminator_reads_hard_sentences_as_a_packed_gru_would():
    cfg = load_config("tiny", overrides=["discriminator.kind=gru"])
    disc = Discriminator(cfg.discriminator, vocab_size=VOCAB, num_classes=NUM_CLASSES,
                         pad_id=PAD).eval()
    made = batch()
    embedded = disc.embedding(made.tokens)
    gru: nn.GRU = disc.reader.gru
    packed = pack_padded_sequence(embedded, made.lengths, batch_first=True, enforce_sorted=False)
    _, h_n = gru(packed)
    expected = [head(h_n[-1]) for head in disc.heads]
    for got, want in zip(disc(made.tokens, made.lengths), expected):
        torch.testing.assert_close(got, want)
