"""The evaluation judges: held-out accuracy of the n-gram classifier, the LM's perplexity and its
real-vs-shuffled check, the judges/ folder (round trip, tokenizer refusal, ensure, a judge saved
before the next trains and reused), bounded training, missing labels, determinism."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import types

import numpy as np
import pytest
import torch

import textgan.evaluation.judge_training as judge_training
import textgan.evaluation.judges as judges_module
from textgan.config import TokenizerConfig, load_config, save_config
from textgan.corpora import MISSING_LABEL, load_corpus
from textgan.data import tokenize_corpus
from textgan.errors import CheckpointError, ConfigError
from textgan.evaluation.judges import (
    Judges,
    JudgeSettings,
    classifier_loss,
    ensure_judges,
    fit_judges,
    load_judges,
    order_check,
    save_judges,
    train_judges,
)
from textgan.tokenizer import train_tokenizer

SENTENCES = 3000  # 2,700 train, 150 valid, 150 test
# Small settings for the tests that train again: a few seconds, not the held-out numbers.
QUICK = JudgeSettings(classifier_epochs=3, lm_epochs=1)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: intra-op threads buy nothing, and beside another torch process on 2 cores
    they spin against it (a 5 s training took 52 s with 2 threads). Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread_here(one_thread):
    yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A run folder (config + tokenizer of a 3,000-sentence synthetic corpus) with judges."""
    import datasets.config

    import textgan.corpora.synthetic as synthetic

    # module scope runs before conftest's per-test redirections: redirect by hand
    root = tmp_path_factory.mktemp("judges")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "default_root", lambda: root / "corpora")
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf-cache"))
        cfg = load_config("tiny", overrides=[f"data.synthetic_size={SENTENCES}"])
        run = root / "run"
        save_config(cfg, run / "config.toml")
        corpus = load_corpus(cfg.data)
        tokenizer = train_tokenizer(corpus.splits["train"]["text"], cfg.tokenizer, seed=0)
        tokenizer.save(run)
        splits, _ = tokenize_corpus(corpus, tokenizer, cfg.data.max_tokens)
        judges = train_judges(run, seed=0, progress=False)
    test = corpus.splits["test"]
    return {"run": run, "root": root, "judges": judges, "tokenizer": tokenizer, "splits": splits,
            "attributes": corpus.attributes, "texts": list(test["text"]),
            "labels": {name: np.asarray(test[name]) for name in corpus.attributes}}


def test_the_classifier_reads_the_held_out_styles(trained):
    judges: Judges = trained["judges"]
    report = judges.report["classifier"]
    assert judges.attribute_names == ["sentiment", "tense"]
    predictions = judges.classify(trained["texts"])
    assert len(predictions) == 2
    for name, predicted in zip(judges.attribute_names, predictions):
        assert predicted.shape == (len(trained["texts"]),) and predicted.dtype == np.int64
        accuracy = float(np.mean(predicted == trained["labels"][name]))
        assert accuracy >= 0.98, name
        # the reported held-out accuracy is the one classify gives on the same test sentences
        assert report["test_accuracy"][name] == pytest.approx(accuracy)
        assert report["test_labelled"][name] == len(trained["texts"])
        assert set(report["test_class_accuracy"][name]) == set(trained["attributes"][name])
    probabilities = judges.class_probabilities(trained["texts"][:5])
    assert [p.shape for p in probabilities] == [(5, 2), (5, 2)]
    assert np.allclose([p.sum(axis=1) for p in probabilities], 1.0, atol=1e-5)


def test_the_lm_prefers_real_sentences_to_shuffled_ones(trained):
    judges: Judges = trained["judges"]
    real = trained["texts"]
    rng = random.Random(0)
    shuffled = []
    for text in real:
        words = text.split()
        while len(set(words)) > 1 and words == text.split():
            rng.shuffle(words)
        shuffled.append(" ".join(words))
    real_scores, shuffled_scores = judges.sentence_nll(real), judges.sentence_nll(shuffled)
    assert judges.perplexity(real) < judges.perplexity(shuffled) / 3
    assert np.mean(real_scores.nll < shuffled_scores.nll) > 0.95
    # the same words, so the same token counts (EOS included); per-token, corpus level
    assert np.array_equal(real_scores.tokens, shuffled_scores.tokens)
    assert np.all(real_scores.tokens == [len(ids) + 1 for ids in judges.tokenizer.encode(real)])
    assert judges.perplexity(real) == pytest.approx(
        np.exp(real_scores.nll.sum() / real_scores.tokens.sum()))
    assert judges.perplexity(real) == pytest.approx(judges.report["lm"]["test_ppl"], rel=1e-6)
    assert 1.0 < judges.report["lm"]["valid_ppl"] < 20.0


def test_scores_do_not_depend_on_batching_or_order(trained):
    judges: Judges = trained["judges"]
    texts = trained["texts"][:40] + [""]  # an empty sentence: BOS -> EOS, one token
    small = Judges(**{**vars(judges), "settings": JudgeSettings(score_batch_size=7)})
    reverse = texts[::-1]
    nll, tokens = judges.sentence_nll(texts)
    assert np.allclose(small.sentence_nll(texts).nll, nll, rtol=1e-5)
    assert np.allclose(judges.sentence_nll(reverse).nll[::-1], nll, rtol=1e-5)
    assert tokens[-1] == 1
    for a, b, c in zip(judges.classify(texts), small.classify(texts), judges.classify(reverse)):
        assert np.array_equal(a, b) and np.array_equal(a, c[::-1])
    assert [p.shape for p in judges.classify([])] == [(0,), (0,)]
    with pytest.raises(TypeError, match="list of sentences"):
        judges.classify("the pasta was great .")


def test_the_judges_folder_round_trips(trained):
    run, judges = trained["run"], trained["judges"]
    folder = run / "judges"
    assert {p.name for p in folder.iterdir()} == {"classifier.pt", "lm.pt", "judges.json"}
    report = json.loads((folder / "judges.json").read_text(encoding="utf-8"))
    assert report["seed"] == 0 and report["tokenizer_sha256"] == trained["tokenizer"].sha256
    assert report["settings"] == JudgeSettings().to_dict()
    assert report["classifier"]["test_accuracy"] == judges.report["classifier"]["test_accuracy"]
    assert report["corpus"]["sentences"] == {"train": 2700, "valid": 150, "test": 150}
    for name in ("classifier.pt", "lm.pt"):  # plain state dicts + metadata
        state = torch.load(folder / name, map_location="cpu", weights_only=True)
        assert state["meta"]["tokenizer_sha256"] == trained["tokenizer"].sha256

    loaded = load_judges(run)
    texts = trained["texts"]
    for a, b in zip(loaded.classify(texts), judges.classify(texts)):
        assert np.array_equal(a, b)
    assert np.array_equal(loaded.sentence_nll(texts).nll, judges.sentence_nll(texts).nll)
    assert loaded.settings == judges.settings and loaded.seed == 0
    assert loaded.attributes == judges.attributes and not loaded.lm.training


def test_ensure_loads_and_refuses_other_settings(trained, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("ensure_judges trained although the judges were there")

    monkeypatch.setattr(judges_module, "train_judges", no_training)
    judges = ensure_judges(trained["run"])
    assert judges.report["classifier"] == trained["judges"].report["classifier"]
    with pytest.raises(CheckpointError, match="seed: 0 -> 1"):
        ensure_judges(trained["run"], seed=1)
    with pytest.raises(CheckpointError, match="lm_epochs: 6 -> 1"):
        ensure_judges(trained["run"], settings=JudgeSettings(lm_epochs=1))


def test_judges_of_another_tokenizer_are_refused(trained, tmp_path):
    other = train_tokenizer(trained["texts"], TokenizerConfig(model_type="word", vocab_size=200),
                            seed=0)
    assert other.sha256 != trained["tokenizer"].sha256
    with pytest.raises(CheckpointError, match="another tokenizer"):
        load_judges(trained["run"], other)
    with pytest.raises(CheckpointError, match="another tokenizer"):
        ensure_judges(trained["run"], other)
    # a run folder whose tokenizer was replaced after the judges were trained
    copy = tmp_path / "run"
    (copy / "judges").mkdir(parents=True)
    for path in (trained["run"] / "judges").iterdir():
        (copy / "judges" / path.name).write_bytes(path.read_bytes())
    other.save(copy)
    with pytest.raises(CheckpointError, match="another tokenizer"):
        load_judges(copy)
    with pytest.raises(CheckpointError, match="no judges"):
        load_judges(tmp_path / "empty")


def test_missing_labels_add_nothing_to_the_classifier_loss():
    torch.manual_seed(0)
    logits = [torch.randn(6, 2, requires_grad=True), torch.randn(6, 3, requires_grad=True)]
    labels = torch.tensor([[0, 2], [1, -1], [-1, -1], [1, 0], [-1, 1], [0, -1]])
    loss = classifier_loss(logits, labels)
    expected = sum(torch.nn.functional.cross_entropy(block[labels[:, a] >= 0],
                                                     labels[labels[:, a] >= 0, a])
                   for a, block in enumerate(logits))
    assert torch.allclose(loss, expected)
    loss.backward()
    for a, block in enumerate(logits):
        missing = labels[:, a] == MISSING_LABEL
        assert torch.all(block.grad[missing] == 0) and torch.all(block.grad[~missing] != 0)
    # an attribute without a single label in the batch adds exactly zero, not nan
    none = torch.full((3, 1), MISSING_LABEL)
    assert classifier_loss([torch.randn(3, 2)], none).item() == 0.0


def test_missing_labels_are_ignored_in_training(trained):
    """Half the labels of each attribute missing, a quarter of the sentences with none."""
    def drop(batch, indices):
        quarter = np.asarray(indices) % 4
        keep = {"sentiment": (quarter == 2) | (quarter == 3), "tense": quarter % 2 == 1}
        return {name: np.where(keep[name], batch[name], MISSING_LABEL).tolist()
                for name in keep}

    splits = dict(trained["splits"])
    splits["train"] = splits["train"].map(drop, batched=True, with_indices=True)
    # the classifier is what this is about: the LM gets a token share of the corpus
    settings = dataclasses.replace(QUICK, lm_max_sentences=64)
    judges = fit_judges(splits, trained["tokenizer"], trained["attributes"], seed=0,
                        settings=settings, progress=False)
    report = judges.report["classifier"]
    assert report["train_sentences"] == 2700 * 3 // 4  # the unlabelled quarter is left out
    assert report["train_unlabelled"] == {"sentiment": 675, "tense": 675}
    for name, predicted in zip(judges.attribute_names, judges.classify(trained["texts"])):
        assert np.mean(predicted == trained["labels"][name]) >= 0.95, name


def test_training_is_deterministic_and_leaves_the_global_rng_alone(trained):
    args = (trained["splits"], trained["tokenizer"], trained["attributes"])
    state = torch.get_rng_state()
    first = fit_judges(*args, seed=3, settings=QUICK, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    second = fit_judges(*args, seed=3, settings=QUICK, progress=False)
    for a, b in ((first.classifier, second.classifier), (first.lm, second.lm)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    other = fit_judges(*args, seed=4, settings=QUICK, progress=False)
    assert not torch.equal(other.lm.out.weight, first.lm.out.weight)


def test_a_folder_without_config_is_not_a_run_and_settings_are_checked(tmp_path):
    with pytest.raises(CheckpointError, match="not a run folder"):
        train_judges(tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lm_epochs must be at least 1"):
        JudgeSettings(lm_epochs=0)


def test_an_unlabelled_corpus_gets_only_the_lm(trained, tmp_path):
    judges = fit_judges(trained["splits"], trained["tokenizer"], {}, seed=0, settings=QUICK,
                        progress=False)
    assert judges.classifier is None and judges.report["classifier"] is None
    assert judges.classify(trained["texts"][:3]) == []
    trained["tokenizer"].save(tmp_path)
    save_judges(judges, tmp_path)
    assert not (tmp_path / "judges" / "classifier.pt").exists()
    loaded = load_judges(tmp_path)
    assert loaded.classifier is None and loaded.attributes == {}
    assert np.array_equal(loaded.sentence_nll(trained["texts"]).nll,
                          judges.sentence_nll(trained["texts"]).nll)


# --------------------------------------------------------------------------- the LM's check


def test_the_lm_check_is_in_judges_json_and_matches_the_scores(trained):
    judges: Judges = trained["judges"]
    check = json.loads((trained["run"] / "judges" / "judges.json").read_text())["lm"]["check"]
    assert check == judges.report["lm"]["check"]
    # 150 test sentences, fewer than the 1,000 asked for: every one, none of one repeated word
    assert check["sentences"] == 150 and check["left_out"] == 0 and check["seed"] == 0
    assert check["real_better"] > 0.95
    assert check["shuffled_nll"] > check["real_nll"] + 1.0
    # the real side is the corpus-level per-token NLL of the test sentences
    assert check["real_nll"] == pytest.approx(np.log(judges.perplexity(trained["texts"])),
                                              rel=1e-6)
    assert check["real_ppl"] == pytest.approx(np.exp(check["real_nll"]))


def test_the_lm_check_samples_and_shuffles_with_its_seed(trained):
    judges: Judges = trained["judges"]
    texts = trained["texts"] + ["good good good", "fine"]  # nothing to shuffle: left out
    first = order_check(judges, texts, sentences=40, seed=1)
    assert first == order_check(judges, texts, sentences=40, seed=1)
    assert first != order_check(judges, texts, sentences=40, seed=2)
    assert first["sentences"] + first["left_out"] == 40
    every = order_check(judges, texts, sentences=1000, seed=1)
    assert every["sentences"] == 150 and every["left_out"] == 2
    assert order_check(judges, ["fine", "so so"], seed=0) is None


# --------------------------------------------------------------------------- bounded training


def test_the_epoch_bound_stops_both_judges(trained):
    settings = JudgeSettings(classifier_epochs=2, lm_epochs=2, lm_patience=5)
    judges = fit_judges(trained["splits"], trained["tokenizer"], trained["attributes"], seed=0,
                        settings=settings, progress=False)
    for section in (judges.report["classifier"], judges.report["lm"]):
        assert section["epochs_run"] == 2 and section["stopped_by"] == "epochs"
        assert section["last_epoch_done"] == 1.0 and section["epoch"] in (1, 2)
        assert section["seconds"] > 0


def test_a_tiny_time_limit_stops_each_judge_in_its_first_epoch(trained):
    settings = JudgeSettings(classifier_time_limit=1e-6, lm_time_limit=1e-6,
                             lm_max_sentences=500)
    judges = fit_judges(trained["splits"], trained["tokenizer"], trained["attributes"], seed=0,
                        settings=settings, progress=False)
    classifier, lm = judges.report["classifier"], judges.report["lm"]
    for section in (classifier, lm):
        # one batch, then the part trained is validated and kept: a judge, however weak
        assert section["stopped_by"] == "time_limit" and section["epochs_run"] == 1
        assert 0 < section["last_epoch_done"] < 1 and section["epoch"] == 1
    assert lm["train_sentences"] == 500 and lm["train_available"] == 2700
    assert np.isfinite(lm["test_ppl"]) and lm["check"]["sentences"] == 150
    assert all(0 <= acc <= 1 for acc in classifier["test_accuracy"].values())


def test_the_time_limit_keeps_the_best_epoch_so_far(monkeypatch):
    """Validation scores 1, 3, 2: the time runs out in epoch 3, the weights of epoch 2 stay."""
    clock = {"now": 0.0}
    monkeypatch.setattr(judge_training, "time", types.SimpleNamespace(
        monotonic=lambda: clock["now"], perf_counter=lambda: clock["now"]))
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)

    def step(batch):
        with torch.no_grad():
            model.weight += 1.0  # after epoch e (4 batches): 4 * e
        clock["now"] += 10.0

    scores = {1: 1.0, 2: 3.0, 3: 2.0}
    loader = [torch.zeros(1)] * 4
    training, kept = judge_training._train_epochs(
        "toy", model, loader, step,
        lambda epoch: ((scores[epoch],), f"score {scores[epoch]}", f"scores of epoch {epoch}"),
        epochs=5, patience=None, time_limit=95.0, device=torch.device("cpu"), progress=False)
    # 40 s an epoch: the limit of 95 s falls in epoch 3, after its second batch
    assert training["stopped_by"] == "time_limit" and training["epochs_run"] == 3
    assert training["last_epoch_done"] == 0.5 and training["epoch"] == 2
    assert model.weight.item() == 8.0 and kept == "scores of epoch 2"


def test_each_epoch_logs_a_line_without_progress_bars(trained, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="textgan"):
        fit_judges(trained["splits"], trained["tokenizer"], trained["attributes"], seed=0,
                   settings=QUICK, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    for epoch in (1, 2, 3):
        assert any(line.startswith(f"judge classifier epoch {epoch}/3: ") and " s, valid accuracy"
                   " sentiment " in line for line in lines), lines
    assert any(line.startswith("judge LM epoch 1/1: ") and " s, valid perplexity " in line
               for line in lines), lines
    assert any(line.startswith("judge LM: epoch 1 kept (1 epochs)") and "real better in" in line
               for line in lines), lines
    assert "judge LM epoch" not in capsys.readouterr().err  # no bar


# --------------------------------------------------------------------------- saved one by one


def _bare_run(trained, folder):
    """A copy of the trained run folder without its judges: config and tokenizer."""
    folder.mkdir()
    for path in trained["run"].iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    return folder


def test_a_judge_is_saved_before_the_next_trains_and_reused(trained, tmp_path, monkeypatch):
    import textgan.corpora.synthetic as synthetic

    monkeypatch.setattr(synthetic, "default_root", lambda: trained["root"] / "corpora")
    run = _bare_run(trained, tmp_path / "run")
    folder = run / "judges"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the LM trains

    monkeypatch.setattr(judge_training, "_fit_lm", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_judges(run, seed=0, settings=QUICK, progress=False)
    assert {p.name for p in folder.iterdir()} == {"classifier.pt"}  # no .tmp, no judges.json
    saved = torch.load(folder / "classifier.pt", map_location="cpu", weights_only=True)
    assert saved["meta"]["report"]["test_accuracy"]["sentiment"] >= 0.9
    with pytest.raises(CheckpointError, match="no judges"):
        load_judges(run)

    def retrained(*args, **kwargs):
        raise AssertionError("the finished classifier was trained again")

    monkeypatch.undo()
    monkeypatch.setattr(synthetic, "default_root", lambda: trained["root"] / "corpora")
    monkeypatch.setattr(judge_training, "_fit_classifier", retrained)
    # another LM setting: the classifier's own settings are the same, so it is reused
    settings = JudgeSettings(**{**QUICK.to_dict(), "lm_hidden_dim": 32})
    judges = ensure_judges(run, seed=0, settings=settings, progress=False)
    assert judges.report["reused"] == ["classifier"]
    assert judges.report["classifier"] == saved["meta"]["report"]
    for name, value in saved["state_dict"].items():
        assert torch.equal(judges.classifier.state_dict()[name], value), name
    assert {p.name for p in folder.iterdir()} == {"classifier.pt", "lm.pt", "judges.json"}
    loaded = load_judges(run)
    assert loaded.settings == settings and loaded.report["reused"] == ["classifier"]
    texts = trained["texts"]
    for a, b in zip(loaded.classify(texts), judges.classify(texts)):
        assert np.array_equal(a, b)

    # a classifier setting changed, or no reuse asked for: trained again
    (folder / "judges.json").unlink()
    with pytest.raises(AssertionError, match="trained again"):
        train_judges(run, seed=0, settings=JudgeSettings(**{**settings.to_dict(),
                                                           "classifier_epochs": 2}),
                     progress=False)
    assert not (folder / "judges.json").exists()  # the old set is no complete set any more
    with pytest.raises(AssertionError, match="trained again"):
        train_judges(run, seed=1, settings=settings, progress=False)
    with pytest.raises(AssertionError, match="trained again"):
        train_judges(run, seed=0, settings=settings, progress=False, reuse=False)


def test_judge_settings_split_by_judge():
    settings = JudgeSettings()
    classifier, lm = settings.of("classifier"), settings.of("lm")
    assert "classifier_time_limit" in classifier and "bigram_buckets" in classifier
    assert "lm_max_sentences" in lm and "lm_time_limit" in lm
    assert not set(classifier) & {"lm_epochs", "lm_check_sentences"}
    assert not set(lm) & {"classifier_epochs", "bigram_buckets"}
    assert set(classifier) | set(lm) == set(settings.to_dict())
    with pytest.raises(ConfigError, match="lm_time_limit must be >= 0"):
        JudgeSettings(lm_time_limit=-1.0)
