"""The adversarial stage: gradient isolation of its steps, resume, and the tiny pipeline."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

import textgan.pretrain as pretrain
import textgan.train as train
from textgan.checkpoint import latest_checkpoint, read_checkpoint
from textgan.config import load_config
from textgan.data import Batch
from textgan.errors import CheckpointError, ConfigError
from tiny_models import EOS, PAD, adversarial_steps

FAST = ["--preset", "tiny", "--no-progress"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One pretrained tiny run folder, copied by the tests that train on it."""
    import datasets.config

    import textgan.corpora.synthetic as synthetic

    # module scope runs before conftest's per-test redirections: redirect by hand
    root = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "default_root", lambda: root / "corpora")
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf-cache"))
        pretrain.main([*FAST, "--run-dir", str(root / "run"), "--pretrain.epochs=1"])
    return root


def copy_run(pretrained, tmp_path):
    import shutil

    shutil.copytree(pretrained / "run", tmp_path / "run")
    return tmp_path / "run"


def make_steps(**overrides):
    cfg = load_config("tiny", overrides=[f"train.{k}={v}" for k, v in overrides.items()])
    return adversarial_steps(cfg)


def batch():
    tokens = torch.tensor([[5, 6, 7, EOS, PAD], [8, 9, EOS, PAD, PAD], [10, 11, 12, 13, EOS]])
    labels = torch.tensor([[0, 1], [1, -1], [1, 0]])
    return Batch(tokens=tokens, lengths=torch.tensor([4, 3, 5]), labels=labels,
                 label_mask=labels >= 0)


def no_grads(module):
    return all(p.grad is None for p in module.parameters())


def test_the_discriminator_step_never_reaches_the_generator_or_encoder():
    steps, vae, disc = make_steps()
    out = steps.discriminator_step(batch(), warm_up=False)
    assert no_grads(vae.generator) and no_grads(vae.encoder)
    assert all(p.grad is not None for p in disc.parameters() if p.requires_grad)
    assert out["d_fake"] > 0 and out["d_entropy"] > 0


def test_the_warm_up_step_trains_d_on_real_sentences_only():
    steps, vae, disc = make_steps()
    out = steps.discriminator_step(batch(), warm_up=True)
    assert out["d_fake"] == 0.0 and out["d_entropy"] == 0.0 and out["d_real"] > 0
    assert no_grads(vae.generator)


@pytest.mark.parametrize("relaxation", ["softmax", "gumbel", "st_gumbel", "reinmax"])
def test_the_generator_step_trains_g_and_e_but_never_d(relaxation):
    steps, vae, disc = make_steps(relaxation=relaxation)
    before = [p.detach().clone() for p in disc.parameters()]
    out = steps.generator_step(batch(), tau=0.5, hard=relaxation == "st_gumbel")
    assert no_grads(disc)
    assert all(torch.equal(a, b) for a, b in zip(before, disc.parameters()))
    assert all(p.grad is not None for p in vae.generator.parameters())
    assert any(p.grad is not None for p in vae.encoder.parameters())
    assert out["attr_c"] > 0 and out["attr_z"] > 0


@pytest.mark.parametrize("soft_mask", ["soft", "detached", "hard", "faded"])
def test_attribute_and_independence_losses_reach_g_and_not_e(soft_mask):
    """With L_VAE's weight gone, only the two losses through the soft sentence remain."""
    for name, keep in (("lambda_c", "attr_c"), ("lambda_z", "attr_z")):
        other = {"lambda_c": 0.0, "lambda_z": 0.0, name: 1.0}
        steps, vae, disc = make_steps(kl_weight=0.0, soft_mask=soft_mask, **other)
        g_before = [p.detach().clone() for p in vae.generator.parameters()]
        e_before = [p.detach().clone() for p in steps.params["e"]]
        # drop the VAE term by replacing the real batch's reconstruction with a constant
        steps.generator_step = _without_reconstruction(steps)
        steps.generator_step(batch(), tau=0.5, hard=False)
        assert any(not torch.equal(a, b) for a, b in zip(g_before, vae.generator.parameters())), \
            f"{keep} does not reach G"
        assert all(torch.equal(a, b) for a, b in zip(e_before, steps.params["e"])), \
            f"{keep} reaches E"
        assert no_grads(disc)


def _without_reconstruction(steps):
    import textgan.engines as engines

    original = steps.generator_step

    def step(batch, tau, hard):
        real = engines.reconstruction_loss

        def zero(*args, **kwargs):
            rec = real(*args, **kwargs)
            return rec._replace(per_sentence=rec.per_sentence.detach() * 0)

        engines.reconstruction_loss = zero
        try:
            return original(batch, tau, hard)
        finally:
            engines.reconstruction_loss = real

    return step


def test_train_needs_a_pretrained_run(tmp_path):
    with pytest.raises(CheckpointError, match="no pretrained run"):
        train.main([*FAST, "--run-dir", str(tmp_path / "empty")])


def test_tiny_pipeline_pretrain_train_sample_and_transfer(pretrained, tmp_path):
    import textgan.sample as sample

    run_dir = copy_run(pretrained, tmp_path)
    result = train.main([*FAST, "--run-dir", str(run_dir), "--train.epochs=1",
                         "--train.transfer_examples=1"])
    assert result["epoch"] == 1 and not result["stopped_on_nan"]
    metrics = result["metrics"]
    for name in ("d_acc_real", "d_acc_greedy", "d_acc_soft", "oracle_grammatical",
                 "oracle_acc_sentiment", "usage_tense_past", "elbo", "bleu"):
        assert name in metrics, name
    state = read_checkpoint(result["last_checkpoint"])
    for key in ("model", "discriminator", "optimizer_d", "optimizer_g", "optimizer_e",
                "tau_schedule", "hard_schedule", "rng", "trainer"):
        assert key in state, key
    assert state["meta"]["stage"] == "train"

    out = sample.main(["--run-dir", str(run_dir), "--n", "1"])
    assert out["stage"] == "train" and len(out["samples"]) == 4
    out = sample.main(["--run-dir", str(run_dir), "--style", "sentiment=positive",
                       "--transfer", "the pasta was bland ."])
    assert len(out["transfers"]) == 1

    again = train.main([*FAST, "--run-dir", str(run_dir), "--train.epochs=1"])
    assert again["already_finished"]


def test_ctrl_c_and_resume_match_an_unbroken_adversarial_run(pretrained, tmp_path, monkeypatch):
    args = ["--train.epochs=1", "--train.transfer_examples=0", "--train.samples_per_style=0"]
    unbroken = train.main([*FAST, "--run-dir", str(copy_run(pretrained, tmp_path / "a")),
                           *args])
    broken_dir = copy_run(pretrained, tmp_path / "b")
    original = train.create_train_trainer

    def interrupted(*a, **k):
        trainer = original(*a, **k)

        @trainer.on(Events.ITERATION_COMPLETED(once=15))  # after the D warm-up (10)
        def _ctrl_c(engine):
            raise KeyboardInterrupt

        return trainer

    with monkeypatch.context() as patch:
        patch.setattr(train, "create_train_trainer", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train.main([*FAST, "--run-dir", str(broken_dir), *args])
    assert latest_checkpoint(broken_dir / "train", "train").name == "train_checkpoint_15.pt"
    resumed = train.main([*FAST, "--run-dir", str(broken_dir), *args])
    assert resumed["iteration"] == unbroken["iteration"]
    a = read_checkpoint(unbroken["last_checkpoint"])
    b = read_checkpoint(resumed["last_checkpoint"])
    for key in ("model", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(b[key][name], tensor), f"{key}.{name} differs after resume"
    for name, value in unbroken["metrics"].items():
        if not isinstance(value, torch.Tensor):
            assert resumed["metrics"][name] == value, name


def test_early_stopping_ends_the_adversarial_stage_and_a_rerun_says_so(pretrained, tmp_path,
                                                                       caplog):
    import logging

    caplog.set_level(logging.INFO, logger="textgan")
    run = copy_run(pretrained, tmp_path)
    # learning rates of ~0 keep the validation NLL flat, so patience 1 stops after epoch 2
    frozen = ["--train.lr=1e-12", "--train.d_lr=1e-12", "--train.patience=1",
              "--train.early_stop_metric=nll", "--train.early_stop_mode=min"]
    first = train.main([*FAST, "--run-dir", str(run), "--train.epochs=5", *frozen])
    assert first["epoch"] == 2
    again = train.main([*FAST, "--run-dir", str(run), "--train.epochs=5", *frozen])
    assert again["already_finished"] and "stopped early" in caplog.text


def test_an_unknown_early_stopping_metric_is_refused_with_close_names(pretrained, tmp_path):
    run = copy_run(pretrained, tmp_path)
    with pytest.raises(ConfigError, match="oracle_grammatical"):
        train.main([*FAST, "--run-dir", str(run), "--train.patience=2",
                    "--train.early_stop_metric=oracle_gramatical"])
