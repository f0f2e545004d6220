"""python -m textgan.evaluate on a tiny trained run; the judges' flags, log lines and a stopped
run's classifier kept; IW-NLL by hand; bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys

import pytest
import torch

import textgan.evaluate as evaluate
import textgan.pretrain as pretrain
import textgan.train as train
from textgan.config import load_config
from textgan.corpora import load_corpus
from textgan.corpora.oracle import parse_many
from textgan.data import Batch
from textgan.errors import CheckpointError, SamplingError
from textgan.evaluation.report_tensorboard import flat_scalars
from textgan.evaluation.vae_health import importance_weighted_nll
from textgan.losses import gaussian_log_density, reconstruction_loss
from textgan.models import build_vae, one_hot_code

FAST = ["--preset", "tiny", "--no-progress"]
SMALL = ["--n", "40", "--curve-n", "20", "--curve-temperatures", "0.7,1.0", "--transfer-n", "20",
         "--iw-samples", "4", "--no-progress"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny run trained through both stages and evaluated once."""
    import datasets.config

    import textgan.corpora.synthetic as synthetic

    root = tmp_path_factory.mktemp("evaluated")
    run = root / "run"
    with pytest.MonkeyPatch.context() as patch:  # module scope: conftest's redirections by hand
        patch.setattr(synthetic, "default_root", lambda: root / "corpora")
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf-cache"))
        pretrain.main([*FAST, "--run-dir", str(run), "--pretrain.epochs=1"])
        train.main([*FAST, "--run-dir", str(run), "--train.epochs=1"])
        report = evaluate.main(["--run-dir", str(run), *SMALL])
    return run, report


def test_the_report_holds_every_metric_of_the_issue(evaluated):
    run, report = evaluated
    gen = report["generation"]
    for attribute in ("sentiment", "tense"):
        assert 0 <= gen["judge"][f"acc_{attribute}"] <= 1
        assert 0 <= gen["oracle"][f"acc_{attribute}"] <= 1
    assert {"acc_sentiment=negative", "acc_sentiment=positive"} <= set(gen["judge"])
    for key in ("judge_lm_ppl", "novelty", "ended", "length_mean", "test_length_mean"):
        assert math.isfinite(gen[key]), key
    assert 0 <= gen["oracle"]["grammatical"] <= 1
    div = report["diversity"]
    for n in (2, 3, 4):
        assert 0 <= div[f"bleu_{n}"] <= 100 and 0 <= div[f"self_bleu_{n}"] <= 100
        assert "leave-one-out" in div["signatures"][f"self_bleu_{n}"]
    assert {"distinct_1", "distinct_2", "distinct_3"} <= set(div)
    # the real levels the samples read against: the test split's own self-BLEU-4 (as many
    # sentences as samples) and the judge LM's perplexity of the test sentences
    assert div["test_self_bleu_n"] == 40 and 0 <= div["test_self_bleu_4"] <= 100
    assert math.isfinite(gen["test_judge_lm_ppl"]) and gen["test_judge_lm_ppl"] > 1
    for attribute in ("sentiment", "tense"):
        entry = report["transfer"][attribute]
        assert {"judge_acc", "judge_other_kept", "bleu_source", "oracle"} <= set(entry)
        assert {"acc", "content", "grammatical"} <= set(entry["oracle"])
        assert entry["judge_lm_ppl"] > 1 and entry["source_judge_lm_ppl"] > 1
        # each direction apart, and together they make up the pooled numbers
        by_target = entry["by_target"]
        assert sum(t["n"] for t in by_target.values()) == entry["n"]
        assert math.isclose(sum(t["judge_acc"] * t["n"] for t in by_target.values()),
                            entry["judge_acc"] * entry["n"], abs_tol=1e-9)
    assert report["transfer"]["bleu_signature"].startswith("nrefs:1|case:lc")
    vae = report["vae"]
    assert vae["iw_samples"] == 4 and math.isfinite(vae["iw_nll_per_token"])
    assert len(vae["kl_per_dim"]) == load_config("tiny").model.z_dim
    assert {"kl", "mi", "active_units"} <= set(vae)
    assert [p["temperature"] for p in report["curve"]] == [0.7, 1.0]
    judges = report["judges"]
    assert judges["classifier_test_accuracy"]
    assert judges["lm_check"]["real_better"] > 0.9
    assert judges["lm_check"]["shuffled_nll"] > judges["lm_check"]["real_nll"]
    assert judges["lm_training"]["stopped_by"] in ("epochs", "patience")
    settings = report["settings"]
    assert settings["n"] == 40 and settings["seed"] == 0 and settings["stage"] == "train"
    # what was written: JSON equal to the report, the readable table, the plot, TensorBoard
    assert json.loads((run / "report.json").read_text())["diversity"]["bleu_4"] == div["bleu_4"]
    markdown = (run / "report.md").read_text()
    assert "| self_bleu_4 |" in markdown and "Quality-diversity curve" in markdown
    assert "| classifier test accuracy sentiment |" in markdown
    check = judges["lm_check"]
    assert (f"| LM per-token NLL, the same {check['sentences']} with their words shuffled | "
            f"{check['shuffled_nll']:.4g} |") in markdown
    assert "| LM share of sentences scored better in the real order |" in markdown
    assert (run / "quality_diversity.png").read_bytes()[:4] == b"\x89PNG"
    assert list((run / "tb" / "evaluate").glob("events.out.tfevents.*"))
    assert "generation/judge/acc_sentiment" in flat_scalars(report)


def test_greedy_samples_are_decoded_greedily_and_say_so(evaluated):
    run, report = evaluated
    greedy = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--strategy", "greedy"])
    assert greedy["settings"]["strategy"] == "greedy"
    assert greedy["generation"] != report["generation"]  # not the sampled ones again
    assert "## Conditional generation (N=40, greedy)" in (run / "report.md").read_text()
    # greedy decoding ignores the temperature: another one gives the same sentences
    colder = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--strategy", "greedy",
                            "--temperature", "0.3"])
    assert colder["diversity"] == greedy["diversity"]


def test_no_repeat_ngram_decodes_samples_and_transfers_and_says_so(evaluated, capsys):
    run, _ = evaluated
    plain = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--strategy", "greedy"])
    banned = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--strategy", "greedy",
                            "--no-repeat-ngram", "1"])
    assert plain["settings"]["no_repeat_ngram"] == 0 and banned["settings"]["no_repeat_ngram"] == 1
    text = (run / "report.md").read_text()
    assert "## Conditional generation (N=40, greedy, no 1-gram repeated)" in text
    assert "## Style transfer of the test split (no 1-gram repeated)" in text
    # the tiny model repeats words ("the"), so the ban changes samples and transfers ...
    assert banned["diversity"] != plain["diversity"]
    assert banned["transfer"] != plain["transfer"]
    # ... but not the VAE's own reconstructions
    assert banned["vae"] == plain["vae"]
    with pytest.raises(SystemExit) as stopped:
        evaluate.main(["--run-dir", str(run), "--no-repeat-ngram", "-1"])
    assert stopped.value.code == 2 and "must be at least 0" in capsys.readouterr().err


def test_style_strengths_reach_the_transfers_and_the_report(evaluated, capsys):
    run, _ = evaluated
    flags = ["--run-dir", str(run), *SMALL, "--no-curve", "--strategy", "greedy"]
    plain = evaluate.main(flags)
    # D's probability never reaches 1.0 exactly, so every transfer is rewritten at 3
    strong = evaluate.main([*flags, "--style-strengths", "1,3", "--min-confidence", "1"])
    assert plain["transfer"]["style_strengths"] == [1.0]  # the run's config: one rewrite
    assert strong["transfer"]["style_strengths"] == [1.0, 3.0]
    assert strong["transfer"]["min_confidence"] == 1.0
    for attribute in ("sentiment", "tense"):
        assert plain["transfer"][attribute]["strengthened"] == 0.0
        assert strong["transfer"][attribute]["strengthened"] == 1.0
    assert strong["transfer"] != plain["transfer"]
    assert strong["generation"] == plain["generation"]  # samples are not transfers
    assert ("## Style transfer of the test split, style strengths 1, 3 until D reads the "
            "requested style at 1") in (run / "report.md").read_text()
    with pytest.raises(SystemExit) as stopped:
        evaluate.main([*flags, "--style-strengths", "0.5,-1"])
    assert stopped.value.code == 2 and "every number must be > 0" in capsys.readouterr().err


def test_the_validation_split_can_be_evaluated_instead_of_the_test_split(evaluated):
    run, report = evaluated
    valid = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--split", "valid"])
    assert report["settings"]["split"] == "test" and valid["settings"]["split"] == "valid"
    corpus = load_corpus(load_config("tiny").data)
    assert valid["settings"]["test_sentences"] == corpus.splits["valid"].num_rows
    markdown = (run / "report.md").read_text()
    assert "valid sentences" in markdown and "## Style transfer of the valid split" in markdown
    # other sentences: other transfers and another VAE score, the same samples
    assert valid["transfer"] != report["transfer"] and valid["vae"] != report["vae"]
    assert valid["generation"]["judge"] == report["generation"]["judge"]


def test_the_same_seed_gives_the_same_report(evaluated, tmp_path):
    run, report = evaluated
    again = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve"])
    assert again["generation"] == report["generation"]
    assert again["diversity"] == report["diversity"]
    assert again["vae"]["iw_nll_per_token"] == report["vae"]["iw_nll_per_token"]


def test_a_transfer_file_with_references(evaluated, tmp_path):
    run, _ = evaluated
    sentences = tmp_path / "mine.txt"
    sentences.write_text("my nephew was annoyed with the speaker .\n\nthe steak is great .\n")
    references = tmp_path / "mine.ref.txt"
    references.write_text("my nephew was thrilled with the speaker .\nthe steak is great .\n")
    report = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--transfer-file",
                            str(sentences), "--style", "sentiment=positive", "--references",
                            str(references)])
    entry = report["transfer_file"]
    assert entry["n"] == 2 and 0 <= entry["judge_acc_sentiment"] <= 1
    assert 0 <= entry["bleu_references"] <= 100 and 0 <= entry["bleu_source"] <= 100


def test_a_reference_file_of_another_length_is_refused(evaluated, tmp_path):
    run, _ = evaluated
    sentences = tmp_path / "mine.txt"
    sentences.write_text("the steak is great .\nthe soup was cold .\n")
    references = tmp_path / "short.txt"
    references.write_text("the steak is bad .\n")
    with pytest.raises(SamplingError, match="has 1 sentences but the transfer file .* has 2"):
        evaluate.main(["--run-dir", str(run), *SMALL, "--transfer-file", str(sentences),
                       "--style", "sentiment=negative", "--references", str(references)])
    with pytest.raises(SamplingError, match="needs --style"):
        evaluate.main(["--run-dir", str(run), *SMALL, "--transfer-file", str(sentences)])


def test_a_missing_run_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate.main(["--run-dir", str(tmp_path / "nowhere"), "--no-progress"])
    result = subprocess.run([sys.executable, "-m", "textgan.evaluate", "--run-dir",
                             str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: run folder") and "Traceback" not in result.stderr


def test_a_checkpoint_is_found_inside_the_run_folder_or_refused(evaluated):
    run, _ = evaluated
    inside = next((run / "pretrain").glob("pretrain_checkpoint_*.pt"))
    report = evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--checkpoint",
                            f"pretrain/{inside.name}"])
    assert report["settings"]["stage"] == "pretrain"
    with pytest.raises(CheckpointError, match="checkpoint nothing.pt not found"):
        evaluate.main(["--run-dir", str(run), *SMALL, "--checkpoint", "nothing.pt"])


def test_train_judges_refuses_to_overwrite_without_asking(evaluated):
    run, _ = evaluated
    with pytest.raises(CheckpointError, match="--retrain-judges"):
        evaluate.main(["train-judges", "--run-dir", str(run), "--no-progress"])


# --------------------------------------------------------------------------- the judges' flags


def _bare_copy(run, folder):
    """The run folder's config and tokenizer, without judges or checkpoints."""
    folder.mkdir()
    for name in ("config.toml", "tokenizer.model", "tokenizer.sha256"):
        shutil.copy(run / name, folder / name)
    return folder


def test_the_judge_flags_default_to_the_judge_settings():
    from textgan.evaluation.judges import JudgeSettings

    args = evaluate.build_parser().parse_args(["--run-dir", "x"])
    assert evaluate.judge_settings(args) == JudgeSettings()
    args = evaluate.build_parser().parse_args(["--run-dir", "x", "--judge-epochs", "2",
                                               "--judge-time", "0", "--judge-lm-sentences", "0"])
    assert evaluate.judge_settings(args) == dataclasses.replace(
        JudgeSettings(), classifier_epochs=2, lm_epochs=2, classifier_time_limit=0.0,
        lm_time_limit=0.0, lm_max_sentences=0)


def test_a_stopped_train_judges_keeps_the_classifier_and_logs_each_epoch(
        evaluated, tmp_path, monkeypatch, caplog, capsys):
    import textgan.corpora.synthetic as synthetic
    import textgan.evaluation.judge_training as judge_training

    run, _ = evaluated
    monkeypatch.setattr(synthetic, "default_root", lambda: run.parent / "corpora")
    copy = _bare_copy(run, tmp_path / "run")
    flags = ["train-judges", "--run-dir", str(copy), "--no-progress", "--judge-epochs", "2",
             "--judge-time", "60", "--judge-lm-sentences", "300"]
    fit_lm = judge_training._fit_lm

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(judge_training, "_fit_lm", interrupted)
    with caplog.at_level(logging.INFO, logger="textgan"), pytest.raises(KeyboardInterrupt):
        evaluate.main(flags)
    assert sorted(p.name for p in (copy / "judges").iterdir()) == ["classifier.pt"]
    lines = [record.getMessage() for record in caplog.records]
    for epoch in (1, 2):  # shown under --no-progress, with the seconds and the accuracy
        assert any(line.startswith(f"judge classifier epoch {epoch}/2: ")
                   and " s, valid accuracy sentiment " in line for line in lines), lines
    assert "judge classifier epoch" not in capsys.readouterr().err  # the bars are hidden

    def retrained(*args, **kwargs):
        raise AssertionError("the finished classifier was trained again")

    monkeypatch.setattr(judge_training, "_fit_lm", fit_lm)
    monkeypatch.setattr(judge_training, "_fit_classifier", retrained)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="textgan"):
        report = evaluate.main(flags)  # no --retrain-judges needed: there was no complete set
    assert report["reused"] == ["classifier"]
    assert report["settings"]["classifier_epochs"] == 2
    assert report["settings"]["lm_time_limit"] == 60.0
    assert report["lm"]["train_sentences"] == 300 and report["lm"]["epochs_run"] <= 2
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("judge classifier: reusing ") for line in lines), lines
    assert any(line.startswith("judge LM epoch 1/2: ") and " s, valid perplexity " in line
               for line in lines), lines
    printed = capsys.readouterr().out
    assert "judge classifier, test accuracy sentiment: " in printed
    assert "against their words shuffled" in printed
    with pytest.raises(CheckpointError, match="--retrain-judges"):
        evaluate.main(flags)


def test_existing_judges_of_other_settings_are_refused(evaluated):
    run, _ = evaluated
    with pytest.raises(CheckpointError, match="classifier_epochs: 6 -> 2"):
        evaluate.main(["--run-dir", str(run), *SMALL, "--no-curve", "--judge-epochs", "2"])


def test_the_oracle_scores_the_synthetic_test_split_perfectly(tiny_config):
    corpus = load_corpus(tiny_config.data)
    test = corpus.splits["test"]
    parses = parse_many(test["text"])
    assert len(parses) > 0 and all(p.grammatical for p in parses)
    for attribute, classes in corpus.attributes.items():
        assert [p.attributes[attribute] for p in parses] == [classes[i] for i in test[attribute]]


# --------------------------------------------------------------------------- IW-NLL by hand

NUM_CLASSES = [2]


def _tiny_vae():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    vae = build_vae(cfg.model, vocab_size=12, code_dim=2, pad_id=0, bos_id=2, eos_id=3)
    vae.encoder.eval()
    vae.generator.eval()
    return vae


def _batch(labels):
    tokens = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
    labels = torch.tensor(labels)
    return Batch(tokens=tokens, lengths=torch.tensor([4, 3]), labels=labels,
                 label_mask=labels >= 0)


def _log_weights(vae, batch, z, labels):
    """(B,) log p(x|z,c) + log p(z) - log q(z|x) for z (B, Z) and class labels (B,)."""
    posterior = vae.encoder(batch.tokens, batch.lengths)
    code = one_hot_code(torch.as_tensor(labels).view(-1, 1), NUM_CLASSES)
    logits = vae.generator(vae.generator.teacher_inputs(batch.tokens), z, code)
    log_px = -reconstruction_loss(logits, batch.tokens, batch.lengths).nll_sum
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
    log_q = gaussian_log_density(z, posterior.mean, posterior.logvar).sum(-1)
    return log_px + log_pz - log_q


@torch.no_grad()
def test_iw_nll_with_one_sample_is_minus_the_single_sample_elbo():
    vae = _tiny_vae()
    batch = _batch([[0], [1]])
    iw = importance_weighted_nll(vae.encoder, vae.generator, [batch], num_classes=NUM_CLASSES,
                                 samples=1, seed=3)
    posterior = vae.encoder(batch.tokens, batch.lengths)
    eps = torch.randn((1, 2, posterior.mean.shape[1]),
                      generator=torch.Generator().manual_seed(3))[0]
    z = posterior.mean + eps * torch.exp(0.5 * posterior.logvar)
    expected = -_log_weights(vae, batch, z, [0, 1])
    assert iw.nll_per_sentence == pytest.approx(float(expected.mean()), rel=1e-5)
    assert iw.nll_per_token == pytest.approx(float(expected.sum()) / 7, rel=1e-5)


@torch.no_grad()
def test_a_missing_label_is_marginalised_over_its_classes():
    vae = _tiny_vae()
    batch = _batch([[-1], [-1]])
    iw = importance_weighted_nll(vae.encoder, vae.generator, [batch], num_classes=NUM_CLASSES,
                                 samples=1, seed=5)
    posterior = vae.encoder(batch.tokens, batch.lengths)
    eps = torch.randn((1, 2, posterior.mean.shape[1]),
                      generator=torch.Generator().manual_seed(5))[0]
    z = posterior.mean + eps * torch.exp(0.5 * posterior.logvar)
    both = torch.stack([_log_weights(vae, batch, z, [label, label]) for label in (0, 1)])
    expected = -(torch.logsumexp(both, dim=0) - math.log(2))  # p(x) = 1/2 p(x|0) + 1/2 p(x|1)
    assert iw.nll_per_sentence == pytest.approx(float(expected.mean()), rel=1e-5)


@torch.no_grad()
def test_more_importance_samples_tighten_the_bound_on_average():
    vae = _tiny_vae()
    batch = _batch([[0], [1]])
    one = [importance_weighted_nll(vae.encoder, vae.generator, [batch], num_classes=NUM_CLASSES,
                                   samples=1, seed=s).nll_per_sentence for s in range(20)]
    many = importance_weighted_nll(vae.encoder, vae.generator, [batch],
                                   num_classes=NUM_CLASSES, samples=64, seed=0).nll_per_sentence
    assert many <= sum(one) / len(one)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        importance_weighted_nll(vae.encoder, vae.generator, [batch], num_classes=NUM_CLASSES,
                                samples=0)
