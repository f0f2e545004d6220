"""The hu2017 preset (Hu et al. 2017 as published) end to end, at tiny sizes, semi-supervised."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import textgan.evaluate as evaluate
import textgan.pretrain as pretrain
import textgan.train as train
from textgan.config import load_config
from textgan.corpora.__main__ import main as corpora_main

# the tiny preset's sizes and schedules; everything else is hu2017's
TINY_SIZES = ["--data.synthetic_size=1200", "--data.batch_size=32", "--data.bucket_batches=8",
              "--model.embedding_dim=32", "--model.hidden_dim=64", "--model.z_dim=8",
              "--discriminator.embedding_dim=32", "--discriminator.filters=16",
              "--pretrain.epochs=1", "--pretrain.kl_ramp_steps=20", "--pretrain.checkpoint_every=0",
              "--train.epochs=1", "--train.d_warmup_steps=10", "--train.tau_steps=20",
              "--train.checkpoint_every=0", "--train.transfer_examples=0",
              "--train.samples_per_style=0"]


def test_the_preset_is_hu_et_al_s_algorithm():
    cfg = load_config("hu2017")
    assert cfg.pretrain.code_source == "prior" and cfg.pretrain.kl_max == 1.0
    t = cfg.train
    assert t.lambda_c == t.lambda_z == t.lambda_u == t.entropy_weight == 0.1
    assert t.kl_weight == 1.0 and t.word_dropout == cfg.pretrain.word_dropout
    assert (t.relaxation, t.soft_mask, t.independence_loss, t.unlabelled_code) == (
        "softmax", "hard", "nll", "expectation")
    assert t.lambda_t == 0.0 and t.lambda_cycle == 0.0 and not cfg.model.attention


def test_hu2017_with_10_percent_of_the_labels_trains_both_stages(tmp_path, caplog):
    run_dir = tmp_path / "run"
    args = ["--preset", "hu2017", "--no-progress", "--run-dir", str(run_dir), *TINY_SIZES,
            "--data.label_fraction=0.1"]
    pretrain.main(args)
    caplog.set_level("INFO")
    result = train.main(["--run-dir", str(run_dir), "--no-progress"])
    assert result["epoch"] == 1 and not result["stopped_on_nan"]
    assert "labels kept for" in caplog.text
    metrics = result["metrics"]
    assert -1.0 <= metrics["z_recovery"] <= 1.0
    assert all(math.isfinite(value) for value in metrics.values()
               if isinstance(value, float))


def test_hu2017_on_a_slice_of_real_yelp_text_with_10_percent_of_the_labels(tmp_path):
    """The published algorithm on real text: a word vocabulary of the corpus, carved splits, the
    judges without an oracle; the sizes shrink, the algorithm is hu2017's."""
    corpus, run_dir = tmp_path / "corpora" / "yelp", tmp_path / "run"
    corpora_main(["yelp", "--out", str(corpus), "--from",
                  str(Path(__file__).parent / "data" / "yelp_slice"), "--no-progress"])
    args = ["--preset", "hu2017", "--no-progress", "--run-dir", str(run_dir), *TINY_SIZES,
            f"--data.source={corpus}", "--data.valid_size=40", "--data.test_size=40",
            "--tokenizer.vocab_size=600", "--data.label_fraction=0.1"]
    pretrain.main(args)
    result = train.main(args)
    assert result["epoch"] == 1 and not result["stopped_on_nan"]
    report = evaluate.main(["--run-dir", str(run_dir), "--n", "20", "--transfer-n", "10",
                            "--iw-samples", "2", "--no-curve", "--no-progress",
                            "--judge-epochs", "1"])
    assert "oracle" not in report["generation"]  # real text: judged by the judges alone
    assert report["transfer"]["sentiment"]["n"] == 10
    assert 0.0 <= report["transfer"]["sentiment"]["judge_acc"] <= 1.0


def test_a_vae_loss_that_changes_between_the_stages_is_said(caplog):
    caplog.set_level("INFO", logger="textgan.train")
    train.log_stage_differences(load_config("default"), pretrained_iterations=100_000)
    assert "KL weight 0.2 -> 0.35, word dropout 0.25 -> 0" in caplog.text
    caplog.clear()
    # the same VAE loss in both stages once the pretraining's ramps are done
    train.log_stage_differences(load_config("hu2017"), pretrained_iterations=100_000)
    assert "changes from pretraining" not in caplog.text


def test_a_kl_ramp_cut_short_by_the_pretraining_is_said_at_the_value_it_reached(caplog):
    """The yelp preset before Y13: a 1,500-step ramp to 0.3 over one 865-iteration epoch ends
    at 0.3 * 864 / 1500, and the stage's 0.3 is a jump."""
    caplog.set_level("INFO", logger="textgan.train")
    cfg = load_config("yelp")
    cfg = replace(cfg, pretrain=replace(cfg.pretrain, kl_max=0.3, kl_ramp_steps=1500),
                  train=replace(cfg.train, kl_weight=0.3))
    train.log_stage_differences(cfg, pretrained_iterations=865)
    assert f"KL weight {0.3 * 864 / 1500:.3g} -> 0.3" in caplog.text
    caplog.clear()
    train.log_stage_differences(cfg, pretrained_iterations=1501)  # the ramp done
    assert "changes from pretraining" not in caplog.text


def test_the_yelp_stage_keeps_the_beta_its_one_epoch_of_pretraining_ends_with(caplog):
    """NOTES.md, Y12: the jump halved the posterior's KL; the preset's ramp now ends inside the
    865-iteration epoch at the stage's kl_weight."""
    caplog.set_level("INFO", logger="textgan.train")
    train.log_stage_differences(load_config("yelp"), pretrained_iterations=865)
    assert "changes from pretraining" not in caplog.text
