"""Data-parallel training: batch shards, gradients equal to one process's, and 2-process runs.

The multi-process tests spawn 2 CPU processes with the gloo backend (a few seconds each).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import ignite.distributed as idist
import numpy as np
import pytest
import torch

import textgan.engines as engines
import textgan.pretrain as pretrain
import textgan.train as train
from textgan import parallel
from textgan.checkpoint import RNGStates, latest_checkpoint, read_checkpoint
from textgan.config import load_config
from textgan.data import Batch, BucketBatchSampler
from textgan.engines import create_pretrain_trainer, read_outputs
from textgan.models import vae_parameters
from textgan.schedules import KL_WEIGHT, WORD_DROPOUT
from tiny_models import BOS, EOS, NUM_CLASSES, PAD, UNK, VOCAB, adversarial_steps, tiny_vae
GLOBAL_BATCH = 7  # odd: the two shards differ in size, so the weighting matters
WORLD = 2


# --------------------------------------------------------------------------- batch shards


@pytest.mark.parametrize("n", [100, 97, 65])
def test_shards_split_every_global_batch_between_processes(n):
    lengths = np.random.default_rng(0).integers(1, 20, n)
    single = BucketBatchSampler(lengths, 8, 4, shuffle=True, seed=3)
    shards = [BucketBatchSampler(lengths, 8, 4, shuffle=True, seed=3).shard(r, 3)
              for r in range(3)]
    for epoch in range(2):
        for sampler in (single, *shards):
            sampler.set_epoch(epoch)
        global_batches = [b for b in single if len(b) >= 3]
        per_rank = [list(shard) for shard in shards]
        assert all(len(batches) == len(global_batches) == len(shard)
                   for batches, shard in zip(per_rank, shards))
        for i, batch in enumerate(global_batches):
            parts = [per_rank[r][i] for r in range(3)]
            assert sorted(sum(parts, [])) == sorted(batch)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_resumed_shard_skips_the_global_batches_already_done():
    lengths = np.random.default_rng(1).integers(1, 20, 49)  # last global batch: 1 sentence
    shard = BucketBatchSampler(lengths, 8, 2, shuffle=True, seed=0).shard(1, 2)
    full = list(shard)
    assert len(full) == len(shard) == 6  # the 1-sentence batch is skipped by both processes
    shard.set_epoch(0, skip_batches=4)
    assert list(shard) == full[4:]


# --------------------------------------------------------------------------- gradients


def tiny_config():
    # no dropout, no free bits: every loss is a mean over sentences, so the data-parallel
    # gradient must equal the single-process one exactly (up to float rounding)
    return load_config("tiny", overrides=["model.dropout=0.0", "pretrain.free_bits=0.0",
                                          "pretrain.code_source=label",
                                          "train.free_bits=0.0", "train.word_dropout=0.0",
                                          "discriminator.dropout=0.0"])


def global_batch() -> Batch:
    gen = torch.Generator().manual_seed(5)
    lengths = torch.randint(2, 8, (GLOBAL_BATCH,), generator=gen)
    tokens = torch.randint(4, VOCAB, (GLOBAL_BATCH, 8), generator=gen)
    positions = torch.arange(8).unsqueeze(0)
    tokens[positions == (lengths - 1).unsqueeze(1)] = EOS
    tokens[positions >= lengths.unsqueeze(1)] = PAD
    labels = torch.randint(0, 2, (GLOBAL_BATCH, 2), generator=gen)
    return Batch(tokens=tokens, lengths=lengths, labels=labels, label_mask=labels >= 0)


def shard_of(batch: Batch, rank: int, world: int) -> Batch:
    return Batch(*(field[rank::world] for field in batch[:4]))


def global_prior():
    gen = torch.Generator().manual_seed(9)
    return (torch.randn(GLOBAL_BATCH, 8, generator=gen),
            torch.randint(0, 2, (GLOBAL_BATCH, 2), generator=gen))


def one_pretrain_step(rank: int, world: int) -> dict:
    cfg = tiny_config()
    vae = tiny_vae(cfg)
    params = vae_parameters(vae)
    # SGD: the update is the gradient, scaled (Adam's first step, ~lr * sign(g), would amplify
    # float rounding on near-zero gradients)
    optimizer = torch.optim.SGD(params, lr=0.1)
    trainer = create_pretrain_trainer(
        vae.encoder, vae.generator, optimizer, cfg=cfg.pretrain, num_classes=NUM_CLASSES,
        unk_id=UNK, pad_id=PAD, bos_id=BOS, dataset_size=100, device=torch.device("cpu"))
    setattr(trainer.state, KL_WEIGHT, 0.5)
    setattr(trainer.state, WORD_DROPOUT, 0.0)
    batch = global_batch()
    # c from the labels; z = the posterior mean: no noise, which would differ by process
    output = trainer._process_function(trainer, shard_of(batch, rank, world))
    return {"grads": [p.grad.clone() for p in params],
            "params": [p.detach().clone() for p in params],
            "loss": output["loss"], "tokens": output["tokens"]}


def one_adversarial_round(rank: int, world: int) -> dict:
    cfg = tiny_config()
    steps, vae, disc = adversarial_steps(cfg, lambda params: torch.optim.SGD(params, lr=0.1))
    z, labels = global_prior()
    steps.prior = lambda n: (z[rank::world], labels[rank::world])  # each its prior draws
    batch = shard_of(global_batch(), rank, world)
    d_out, _ = read_outputs(steps.discriminator_step(batch, warm_up=True), batch.batch_size)
    g_out, _ = read_outputs(steps.generator_step(batch, tau=0.7, hard=False), batch.batch_size)
    modules = (vae.encoder, vae.generator, disc)
    return {"grads": [p.grad.clone() for m in modules for p in m.parameters()
                      if p.grad is not None],
            "params": [p.detach().clone() for m in modules for p in m.parameters()],
            "loss": g_out["g_loss"], "d_loss": d_out["d_loss"]}


def _without_noise(step):
    """Run a step with z = the posterior mean (the reparameterisation noise differs by process)."""
    original = engines.reparameterize
    engines.reparameterize = lambda posterior, **_: posterior.mean
    try:
        return step(idist.get_rank(), idist.get_world_size())
    finally:
        engines.reparameterize = original


def run_in_two_processes(step, tmp_path) -> list[dict]:
    out = tmp_path / "results"
    out.mkdir()
    idist.spawn("gloo", _save_step, args=(step, str(out)), nproc_per_node=WORLD,
                master_addr="127.0.0.1", master_port=parallel.free_port())
    return [torch.load(out / f"{rank}.pt", weights_only=False) for rank in range(WORLD)]


def _save_step(local_rank: int, step, folder: str) -> None:
    torch.save(_without_noise(step), f"{folder}/{idist.get_rank()}.pt")


@pytest.mark.parametrize("step", [one_pretrain_step, one_adversarial_round],
                         ids=["pretrain", "adversarial"])
def test_two_processes_compute_the_gradient_of_the_global_batch(step, tmp_path):
    single = _without_noise(step)  # world size 1 here: the whole global batch
    ranks = run_in_two_processes(step, tmp_path)
    for result in ranks:
        assert len(result["grads"]) == len(single["grads"])
        for got, want in zip(result["grads"], single["grads"]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        for got, want in zip(result["params"], single["params"]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        # every process stepped the same update: their weights stay bit-identical
        assert all(torch.equal(a, b) for a, b in zip(result["params"], ranks[0]["params"]))
        # the reported loss is the global batch's, the same in every process
        assert result["loss"] == pytest.approx(single["loss"], rel=1e-5)
    if "tokens" in single:
        assert ranks[0]["tokens"] == ranks[1]["tokens"] == single["tokens"]


def test_one_process_needs_no_collective():
    grads = [torch.ones(3)]
    param = torch.nn.Parameter(torch.zeros(3))
    param.grad = grads[0]
    parallel.average_gradients([param], 5)  # world size 1: unchanged, no process group needed
    assert torch.equal(param.grad, torch.ones(3))
    values, total = parallel.mean_over_processes(torch.tensor([2.0]), 4)
    assert values.tolist() == [2.0] and total == 4.0


# --------------------------------------------------------------------------- RNG states


def test_rng_states_give_each_process_its_own_stream_or_a_derived_one(monkeypatch):
    states = [torch.manual_seed(s).get_state() for s in (1, 2)]
    saved = {**RNGStates().state_dict(), "torch_by_rank": torch.stack(states)}
    monkeypatch.setattr(parallel, "world_size", lambda: 2)
    monkeypatch.setattr(parallel, "rank", lambda: 1)
    RNGStates().load_state_dict(saved)  # same world size: rank 1's own stream
    assert torch.equal(torch.get_rng_state(), states[1])
    monkeypatch.setattr(parallel, "world_size", lambda: 3)
    RNGStates().load_state_dict(saved)  # another world size: derived from rank 0's and rank
    derived = torch.get_rng_state()
    assert not torch.equal(derived, saved["torch"]) and not torch.equal(derived, states[1])
    RNGStates().load_state_dict(saved)
    assert torch.equal(torch.get_rng_state(), derived)  # the same on every resume
    monkeypatch.setattr(parallel, "rank", lambda: 0)
    RNGStates().load_state_dict(saved)
    assert torch.equal(torch.get_rng_state(), saved["torch"])


# --------------------------------------------------------------------------- whole stages


@pytest.fixture
def spawn_env(tmp_path, monkeypatch):
    """Spawned processes do not see the tests' monkeypatches: redirect by environment."""
    monkeypatch.setenv("TEXTGAN_SYNTHETIC_ROOT", str(tmp_path / "corpora"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


def test_both_stages_run_in_two_processes_and_resume_in_one(spawn_env):
    run = spawn_env / "run"
    common = ["--preset", "tiny", "--no-progress", "--run-dir", str(run),
              "--data.synthetic_size=600"]
    result = pretrain.main([*common, "--nproc-per-node", "2", "--pretrain.epochs=1"])
    # the same 17 global batches of 32 as one process (540 training sentences), half of each
    # in each process
    assert result["epoch"] == 1 and result["iteration"] == 17
    state = read_checkpoint(latest_checkpoint(run / "pretrain", "pretrain"))
    assert state["rng"]["torch_by_rank"].shape[0] == 2
    assert np.isfinite(result["metrics"]["elbo"])

    result = train.main([*common, "--nproc-per-node", "2", "--train.epochs=1"])
    assert result["epoch"] == 1 and np.isfinite(result["metrics"]["oracle_grammatical"])
    # a change of world size: the same run folder goes on in one process
    result = train.main([*common, "--train.epochs=2"])
    assert result["epoch"] == 2 and result["resumed_from"]
    assert (run / "tb" / "train").is_dir()


def test_ctrl_c_stops_both_processes_with_a_checkpoint_and_the_run_resumes(spawn_env):
    """Ctrl-C reaches the launcher and both workers (one process group, as in a terminal)."""
    run = spawn_env / "run"
    common = ["--preset", "tiny", "--no-progress", "--run-dir", str(run),
              "--data.synthetic_size=600"]
    command = [sys.executable, "-m", "textgan.pretrain", *common, "--nproc-per-node", "2",
               "--pretrain.epochs=500"]  # far more than the test waits for
    started = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while latest_checkpoint(run / "pretrain", "pretrain") is None:  # epoch 1 is done
        assert started.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    epoch_one = read_checkpoint(latest_checkpoint(run / "pretrain", "pretrain"))
    time.sleep(1.0)  # into epoch 2 or later
    os.killpg(started.pid, signal.SIGINT)
    _, stderr = started.communicate(timeout=240)

    assert started.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "Connection closed by peer" not in stderr
    assert "interrupted: checkpoint saved at iteration" in stderr
    assert "due to exception: \n" not in stderr  # ignite's bare line for a KeyboardInterrupt
    interrupted = read_checkpoint(latest_checkpoint(run / "pretrain", "pretrain"))
    stopped_at = interrupted["trainer"]["iteration"]
    assert stopped_at > epoch_one["trainer"]["iteration"]
    # the processes stopped together, so the checkpoint holds every process's random state
    assert "torch_by_rank" in interrupted["rng"]
    assert "Ctrl-C: stopping all processes after this iteration" in stderr
    # and the run goes on from there, exactly as an unbroken run of two processes
    finish = stopped_at // 17 + 1  # 17 global batches per epoch: the epoch it stopped in
    two = ["--nproc-per-node", "2", f"--pretrain.epochs={finish}"]
    result = pretrain.main([*common, *two])
    assert result["resumed_from"] and result["epoch"] == finish
    assert result["iteration"] == 17 * finish  # the broken epoch completed, not restarted
    unbroken = spawn_env / "unbroken"
    pretrain.main([*common, "--run-dir", str(unbroken), *two])
    resumed, reference = (read_checkpoint(latest_checkpoint(folder / "pretrain", "pretrain"))
                          for folder in (run, unbroken))
    for name, tensor in reference["model"].items():
        assert torch.equal(resumed["model"][name], tensor), f"{name} differs from the unbroken run"


def test_a_bad_process_count_is_refused():
    from textgan.errors import ConfigError

    with pytest.raises(ConfigError, match="nproc-per-node"):
        pretrain.main(["--preset", "tiny", "--nproc-per-node", "0"])

