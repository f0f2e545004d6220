"""The pretraining stage end to end on the tiny preset: run folder, resume, refusals, Ctrl-C."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events

import textgan.pretrain as pretrain
from textgan.checkpoint import latest_checkpoint, read_checkpoint
from textgan.errors import CheckpointError, ConfigError, TextganError

FAST = ["--preset", "tiny", "--no-progress", "--pretrain.epochs=2"]


def run(run_dir, *extra):
    return pretrain.main([*FAST, "--run-dir", str(run_dir), *extra])


def interrupt_after(monkeypatch, iteration):
    """Make the trainer raise KeyboardInterrupt (as Ctrl-C would) after `iteration`."""
    original = pretrain.create_pretrain_trainer

    def create(*args, **kwargs):
        trainer = original(*args, **kwargs)

        @trainer.on(Events.ITERATION_COMPLETED(once=iteration))
        def _ctrl_c(engine):
            raise KeyboardInterrupt

        return trainer

    monkeypatch.setattr(pretrain, "create_pretrain_trainer", create)


def model_state(run_dir):
    state = read_checkpoint(latest_checkpoint(run_dir / "pretrain", "pretrain"))
    return state["model"], state


def test_run_folder_holds_config_tokenizer_checkpoints_and_logs(tmp_path):
    result = run(tmp_path / "run")
    root = tmp_path / "run"
    assert (root / "config.toml").is_file()
    assert (root / "tokenizer.model").is_file() and (root / "tokenizer.sha256").is_file()
    assert result["epoch"] == 2 and result["iteration"] > 0
    assert result["best_checkpoint"] and result["last_checkpoint"].endswith(
        f"pretrain_checkpoint_{result['iteration']}.pt")
    assert any((root / "tb" / "pretrain").glob("events.out.tfevents.*"))
    metrics = result["metrics"]
    for name in ("nll", "ppl", "kl", "elbo", "active_units", "mi", "token_acc", "eos_rate",
                 "bleu"):
        assert name in metrics, name
    assert math.isfinite(metrics["elbo"]) and metrics["ppl"] > 1.0
    state = read_checkpoint(result["last_checkpoint"])
    for key in ("model", "optimizer", "trainer", "kl_schedule", "word_dropout_schedule",
                "early_stopping", "rng", "meta", "checkpointer", "best_checkpointer"):
        assert key in state, key
    assert state["meta"]["stage"] == "pretrain"


def test_a_finished_stage_is_not_restarted_and_can_be_extended(tmp_path):
    first = run(tmp_path / "run")
    again = run(tmp_path / "run")
    assert again["already_finished"] and again["iteration"] == first["iteration"]
    longer = run(tmp_path / "run", "--pretrain.epochs=3")
    assert not longer["already_finished"] and longer["epoch"] == 3
    assert longer["iteration"] == first["iteration"] * 3 // 2


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches_an_unbroken_one(tmp_path,
                                                                               monkeypatch):
    unbroken = run(tmp_path / "unbroken")

    with monkeypatch.context() as patch:
        interrupt_after(patch, 10)  # mid-epoch: the tiny preset has 34 batches per epoch
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "broken")
    saved = latest_checkpoint(tmp_path / "broken" / "pretrain", "pretrain")
    assert saved.name == "pretrain_checkpoint_10.pt"
    before, _ = model_state(tmp_path / "broken")

    resumed = run(tmp_path / "broken")
    assert resumed["resumed_from"].endswith("pretrain_checkpoint_10.pt")
    assert resumed["iteration"] == unbroken["iteration"]
    for name, value in unbroken["metrics"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed["metrics"][name], value), name
        else:
            assert resumed["metrics"][name] == value, name

    after, _ = model_state(tmp_path / "broken")
    reference, _ = model_state(tmp_path / "unbroken")
    for name, tensor in reference.items():
        assert torch.equal(after[name], tensor), f"{name} differs from the unbroken run"
    # every parameter kept training after the resume (the pad row of the table is fixed)
    for name, tensor in after.items():
        if tensor.is_floating_point():
            assert not torch.equal(before[name], tensor), f"{name} stopped training"


def test_a_changed_config_or_tokenizer_is_refused_naming_the_difference(tmp_path):
    run(tmp_path / "run")
    with pytest.raises(ConfigError) as error:
        run(tmp_path / "run", "--model.z_dim=4")
    assert "model.z_dim: 8 -> 4" in str(error.value)

    other = tmp_path / "other"
    run(other, "--tokenizer.vocab_size=200", "--pretrain.epochs=1")
    for name in ("tokenizer.model", "tokenizer.sha256"):
        (tmp_path / "run" / name).write_bytes((other / name).read_bytes())
    with pytest.raises(CheckpointError, match="another tokenizer"):
        run(tmp_path / "run", "--pretrain.epochs=3")


def test_bad_command_lines_are_user_errors(tmp_path):
    with pytest.raises(TextganError, match="unrecognised argument"):
        pretrain.main([*FAST, "--run-dir", str(tmp_path / "run"), "stray"])
    with pytest.raises(ConfigError, match="pretrain.epochs must be > 0"):
        run(tmp_path / "run", "--pretrain.epochs=0")


def test_nan_stops_training_without_overwriting_the_good_checkpoint(tmp_path,
                                                                     monkeypatch, caplog):
    run(tmp_path / "run", "--pretrain.epochs=1")
    good = latest_checkpoint(tmp_path / "run" / "pretrain", "pretrain")
    original = pretrain.create_pretrain_trainer

    def poisoned(*args, **kwargs):
        trainer = original(*args, **kwargs)

        @trainer.on(Events.ITERATION_STARTED(once=40))
        def _poison(engine):
            with torch.no_grad():
                for param in kwargs.get("encoder", args[0]).parameters():
                    param.fill_(float("nan"))

        return trainer

    monkeypatch.setattr(pretrain, "create_pretrain_trainer", poisoned)
    result = run(tmp_path / "run", "--pretrain.epochs=2")
    assert result["stopped_on_nan"]
    assert "became nan" in caplog.text
    assert latest_checkpoint(tmp_path / "run" / "pretrain", "pretrain") == good
