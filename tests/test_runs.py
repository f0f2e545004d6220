"""The run folder's one owner (textgan/runs.py): which checkpoint stands for each use, the
config and tokenizer of a folder, and a named checkpoint looked up inside it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from textgan import runs
from textgan.config import PretrainConfig, StageConfig, TrainConfig, load_config, save_config
from textgan.errors import CheckpointError, ConfigError
from textgan.runs import RunFolder, find_checkpoint, named_checkpoint, resolve_config


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": path.name}, path)  # a whole torch zip file
    return path


def test_a_stage_ends_at_its_newest_checkpoint_not_its_best(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.stage_end("pretrain") is None
    _checkpoint(tmp_path / "pretrain" / "pretrain_checkpoint_10.pt")
    newest = _checkpoint(tmp_path / "pretrain" / "pretrain_checkpoint_200.pt")
    _checkpoint(tmp_path / "pretrain" / "best_checkpoint_10_elbo=-40.0.pt")
    assert folder.stage_end("pretrain") == newest
    assert folder.stage_end("train") is None


def test_inference_takes_the_adversarial_stage_then_pretraining_then_its_best(tmp_path):
    best = _checkpoint(tmp_path / "pretrain" / "best_checkpoint_10_elbo=-40.0.pt")
    assert find_checkpoint(tmp_path) == best
    pretrained = _checkpoint(tmp_path / "pretrain" / "pretrain_checkpoint_20.pt")
    assert find_checkpoint(tmp_path) == pretrained
    trained = _checkpoint(tmp_path / "train" / "train_checkpoint_5.pt")
    assert find_checkpoint(tmp_path) == trained


def test_a_cut_short_checkpoint_is_passed_over_for_the_one_before(tmp_path, caplog):
    whole = _checkpoint(tmp_path / "train" / "train_checkpoint_5.pt")
    (tmp_path / "train" / "train_checkpoint_9.pt").write_bytes(b"PK\x03\x04 cut")
    assert find_checkpoint(tmp_path) == whole
    assert "train_checkpoint_9.pt" in caplog.text


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "run folder not found"),
    (lambda root: root.write_text("x"), "is a file, not a run folder"),
    (lambda root: root.mkdir(), "no checkpoint in the run folder"),
])
def test_no_checkpoint_says_what_was_looked_for(tmp_path, make, message):
    root = tmp_path / "run"
    make(root)
    with pytest.raises(CheckpointError, match=message):
        find_checkpoint(root)


def test_a_folder_without_config_is_not_a_run_folder(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.toml: not a run folder"):
        RunFolder(tmp_path).config()
    assert RunFolder(tmp_path).tokenizer_sha256() is None
    cfg = load_config("tiny")
    save_config(cfg, tmp_path / "config.toml")
    assert RunFolder(tmp_path).config() == cfg


def test_a_named_checkpoint_is_looked_up_inside_the_run_folder(tmp_path):
    inside = _checkpoint(tmp_path / "run" / "train" / "train_checkpoint_5.pt")
    assert named_checkpoint("train/train_checkpoint_5.pt", tmp_path / "run") == inside
    assert named_checkpoint(inside, None) == inside
    missing = named_checkpoint("nowhere.pt", tmp_path / "run")
    assert missing == Path("nowhere.pt")  # as given, for the loader to refuse
    assert runs.stage_home(inside) == tmp_path / "run"
    assert runs.stage_home(tmp_path / "loose.pt") is None


def test_a_resumed_config_may_change_only_runtime_keys(tmp_path):
    saved = tmp_path / "config.toml"
    save_config(load_config("tiny"), saved)
    args = argparse.Namespace(preset=None, config=None)
    cfg, resumed = resolve_config(args, ["pretrain.epochs=7"], saved)
    assert resumed and cfg.pretrain.epochs == 7
    with pytest.raises(ConfigError, match="pretrain.lr"):
        resolve_config(args, ["pretrain.lr=0.5"], saved)
    cfg, resumed = resolve_config(args, [], tmp_path / "absent.toml")
    assert not resumed and cfg == load_config("default")


def test_both_stages_share_one_set_of_loop_settings():
    shared = {f.name for f in StageConfig.__dataclass_fields__.values()}
    assert {"epochs", "lr", "optimizer", "patience", "time_limit", "keep_last"} <= shared
    for section in (PretrainConfig(), TrainConfig()):
        for name in shared:  # one default and one help for both sections
            assert getattr(section, name) == getattr(StageConfig(), name)
    cfg = load_config("default", overrides=["train.time_limit=5"])
    assert cfg.train.time_limit == 5 and cfg.pretrain.time_limit == 0
