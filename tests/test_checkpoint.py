"""Checkpoint plumbing: RNG state round trip, rotation, latest-by-iteration, refusal messages."""

import hashlib
import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from textgan.checkpoint import (
    FORMAT_VERSION,
    RNGStates,
    RunMeta,
    check_compatible,
    latest_checkpoint,
    make_checkpointer,
    read_checkpoint,
    restore,
)
from textgan.config import load_config
from textgan.errors import CheckpointError


class FakeTokenizer:
    def __init__(self, model_bytes=b"spm-model"):
        self.model_bytes = model_bytes
        self.sha256 = hashlib.sha256(model_bytes).hexdigest()


def draw_everything():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist())


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    rng = RNGStates()
    torch.save({"rng": rng.state_dict()}, tmp_path / "rng.pt")
    expected = draw_everything()
    draw_everything()  # move every generator on
    rng.load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert draw_everything() == expected


def run_with_checkpoints(folder, iterations, keep_last=2, every=1):
    model = torch.nn.Linear(2, 1)
    trainer = Engine(lambda engine, batch: None)
    cfg = load_config("tiny")
    to_save = {"model": model, "trainer": trainer, "rng": RNGStates(),
               "meta": RunMeta(stage="pretrain", config=cfg, tokenizer=FakeTokenizer(),
                               attributes={"sentiment": ["negative", "positive"]})}
    checkpointer = make_checkpointer(to_save, folder, "pretrain", keep_last=keep_last)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=every), checkpointer)
    trainer.run([0] * 5, max_epochs=iterations // 5)
    return cfg


def test_rotation_keeps_the_last_k_and_latest_is_by_iteration(tmp_path):
    run_with_checkpoints(tmp_path, iterations=10, keep_last=2)
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert names == ["pretrain_checkpoint_10.pt", "pretrain_checkpoint_9.pt"]
    assert latest_checkpoint(tmp_path, "pretrain").name == "pretrain_checkpoint_10.pt"
    assert latest_checkpoint(tmp_path, "train") is None


def test_checkpoint_holds_meta_and_loads_weights_only(tmp_path):
    cfg = run_with_checkpoints(tmp_path, iterations=5)
    state = read_checkpoint(latest_checkpoint(tmp_path, "pretrain"))
    meta = state["meta"]
    assert meta["format_version"] == FORMAT_VERSION and meta["stage"] == "pretrain"
    assert meta["tokenizer_model"] == b"spm-model"
    assert meta["attributes"] == {"sentiment": ["negative", "positive"]}
    assert state["trainer"]["iteration"] == 5
    check_compatible(state, tmp_path, config=cfg, tokenizer_sha256=FakeTokenizer().sha256,
                     stages=("pretrain",))
    trainer = Engine(lambda engine, batch: None)
    restore({"trainer": trainer}, state)
    assert trainer.state.iteration == 5


def test_refusals_name_the_difference(tmp_path):
    cfg = run_with_checkpoints(tmp_path, iterations=5)
    path = latest_checkpoint(tmp_path, "pretrain")
    state = read_checkpoint(path)
    with pytest.raises(CheckpointError, match="another tokenizer"):
        check_compatible(state, path, tokenizer_sha256=FakeTokenizer(b"other").sha256)
    with pytest.raises(CheckpointError, match="'pretrain' checkpoint; expected 'train'"):
        check_compatible(state, path, stages=("train",))
    other = load_config("tiny", overrides=["model.z_dim=3", "pretrain.epochs=50"])
    with pytest.raises(CheckpointError) as error:
        check_compatible(state, path, config=other)
    assert "model.z_dim: 8 -> 3" in str(error.value)
    assert "pretrain.epochs:" not in str(error.value)  # a runtime key may change on resume
    check_compatible(state, path, config=load_config("tiny", overrides=["pretrain.epochs=50"]))
    assert cfg.pretrain.epochs != 50


def test_unreadable_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable textgan checkpoint"):
        read_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="no 'meta' entry"):
        read_checkpoint(foreign)
    future = tmp_path / "future.pt"
    torch.save({"meta": {"format_version": FORMAT_VERSION + 1}}, future)
    with pytest.raises(CheckpointError, match="checkpoint format"):
        read_checkpoint(future)


def test_restore_names_missing_entries(tmp_path):
    run_with_checkpoints(tmp_path, iterations=5)
    state = read_checkpoint(latest_checkpoint(tmp_path, "pretrain"))
    with pytest.raises(CheckpointError, match="lacks optimizer"):
        restore({"optimizer": torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1)}, state)
