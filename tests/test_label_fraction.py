"""Semi-supervised data (data.label_fraction, data.labelled_sentences): which training sentences
keep their labels (corpora/label_subset.py), where the stages get them (prepare.py), what stays
fully labelled (valid, test, the judges), the errors, and a 1%-label run of both stages."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from textgan.runs import RunPaths
from textgan.config import load_config
from textgan.corpora import MISSING_LABEL
from textgan.corpora.label_subset import (choose_labelled, label_matrix, stratum_quotas,
                                          subset_size)
from textgan.errors import CorpusError
from textgan.prepare import prepare_data

FAST = ["--preset", "tiny", "--no-progress"]
WORDS = {"negative": ["awful", "bland", "rude", "cold", "dirty"],
         "positive": ["great", "tasty", "kind", "warm", "lovely"]}


def column(*counts: tuple[int, int]) -> np.ndarray:
    """(N, 1) labels: `n` rows of class `c` for each (c, n), in that order."""
    return np.concatenate([np.full(n, c, dtype=np.int64) for c, n in counts])[:, None]


def per_class(labels: np.ndarray, keep: np.ndarray, attribute: int = 0) -> dict[int, int]:
    kept = labels[keep, attribute]
    return {int(c): int(n) for c, n in zip(*np.unique(kept, return_counts=True))}


def prepare(tmp_path: Path, *overrides: str, run: str = "run"):
    cfg = load_config("tiny", overrides=list(overrides))
    return prepare_data(cfg, RunPaths(tmp_path / run), device=torch.device("cpu"))


def train_labels(data) -> np.ndarray:
    return label_matrix(data.splits["train"], data.attribute_names)


# --------------------------------------------------------------------------- sizes and quotas


def test_quotas_are_equal_where_the_strata_allow_and_the_rest_goes_to_the_others():
    assert stratum_quotas(np.array([50, 50]), 20).tolist() == [10, 10]
    # 3 is below its share of 10: it gives all it has, the other two share 37 (19 + 18: the
    # odd one to the largest, ties to the first)
    assert stratum_quotas(np.array([3, 50, 60]), 40).tolist() == [3, 18, 19]
    assert stratum_quotas(np.array([3, 50, 50]), 40).tolist() == [3, 19, 18]
    assert stratum_quotas(np.array([2, 4, 100]), 30).tolist() == [2, 4, 24]
    assert stratum_quotas(np.array([5, 5]), 100).tolist() == [5, 5]  # capped at every row


def test_the_size_is_the_rounded_fraction_at_least_one_per_stratum_or_the_exact_count():
    assert subset_size(110_598, 2, 0.01, 0) == 1106      # 1105.98
    assert subset_size(10, 2, 0.25, 0) == 3              # 2.5 rounds half up
    assert subset_size(1080, 4, 0.001, 0) == 4           # 1.08 -> 1, but one per stratum
    assert subset_size(1080, 4, 1.0, 0) == 1080
    assert subset_size(1080, 4, 0.5, 7) == 7             # the count wins over the fraction


def test_a_balanced_split_keeps_equal_shares_of_each_class():
    labels = column((0, 55_299), (1, 55_299))
    keep = choose_labelled(labels, fraction=0.01, seed=0)
    assert keep.sum() == 1106 and per_class(labels, keep) == {0: 553, 1: 553}


def test_an_imbalanced_split_takes_all_of_a_small_class_and_the_rest_from_the_others():
    # 20% of 100 = 20: a share of 10 each, but class 1 has only 4, so class 0 gives 16
    labels = column((0, 96), (1, 4))
    keep = choose_labelled(labels, fraction=0.2, seed=3)
    assert keep.sum() == 20 and per_class(labels, keep) == {0: 16, 1: 4}
    # enough rows in both: equal shares, although class 0 has 24 times more
    keep = choose_labelled(labels, fraction=0.05, seed=3)
    assert per_class(labels, keep) == {0: 3, 1: 2}  # 5 = 2 + 2, the odd one to the largest


def test_strata_are_the_joint_labels_of_every_attribute():
    sentiment = column((0, 300), (1, 300))[:, 0]
    tense = np.tile([0, 0, 1], 200)  # 200 past, 100 present per sentiment
    labels = np.stack([sentiment, tense], 1)
    keep = choose_labelled(labels, fraction=0.1, seed=0)  # 60 = 15 per (sentiment, tense)
    tuples, counts = np.unique(labels[keep], axis=0, return_counts=True)
    assert tuples.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and counts.tolist() == [15] * 4


def test_rows_without_labels_are_never_chosen_and_do_not_count():
    # 40 labelled (20 + 20), 30 without any label, 10 with only the second attribute's label
    labels = np.concatenate([np.stack([column((0, 20), (1, 20))[:, 0], np.zeros(40, int)], 1),
                             np.full((30, 2), MISSING_LABEL),
                             np.stack([np.full(10, MISSING_LABEL), np.ones(10, int)], 1)])
    keep = choose_labelled(labels, fraction=0.5, seed=1)  # half of the 50 with a label
    assert keep.sum() == 25
    assert not keep[40:70].any()  # the unlabelled rows stay unlabelled
    tuples, counts = np.unique(labels[keep], axis=0, return_counts=True)
    # three strata: (0, 0), (1, 0) and the partly labelled (-1, 1); 25 = 9 + 8 + 8
    assert tuples.tolist() == [[-1, 1], [0, 0], [1, 0]] and counts.tolist() == [8, 9, 8]


def test_labelled_sentences_keeps_exactly_that_many():
    labels = column((0, 70), (1, 30), (MISSING_LABEL, 50))
    for count in (1, 2, 37, 100):
        keep = choose_labelled(labels, fraction=1.0, count=count, seed=0)
        assert keep.sum() == count
    assert per_class(labels, choose_labelled(labels, count=37, seed=0)) == {0: 19, 1: 18}
    assert per_class(labels, choose_labelled(labels, count=80, seed=0)) == {0: 50, 1: 30}


def test_the_subset_depends_on_the_seed_only_and_leaves_the_global_generators_alone():
    labels = column((0, 500), (1, 500))
    np.random.seed(1)
    torch.manual_seed(1)
    first = choose_labelled(labels, fraction=0.05, seed=7)
    np.random.seed(2)
    torch.manual_seed(2)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    again = choose_labelled(labels, fraction=0.05, seed=7)
    assert np.array_equal(first, again)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)
    other = choose_labelled(labels, fraction=0.05, seed=8)
    assert other.sum() == first.sum() and not np.array_equal(first, other)


def test_more_labelled_sentences_than_there_are_is_refused_by_name():
    labels = column((0, 6), (1, 4), (MISSING_LABEL, 5))
    with pytest.raises(CorpusError, match=r"^data\.labelled_sentences=11 is more than the 10 "
                                          r"labelled training sentences .*set it to at most 10, "
                                          r"or to 0 to keep data\.label_fraction of them$"):
        choose_labelled(labels, count=11, seed=0)


# --------------------------------------------------------------------------- the stages' data


def test_prepared_training_labels_are_hidden_outside_the_subset_and_valid_test_keep_all(
        tmp_path, caplog):
    full = prepare(tmp_path, run="full")
    with caplog.at_level(logging.INFO, logger="textgan.prepare"):
        semi = prepare(tmp_path, "data.label_fraction=0.01", run="semi")
    assert [r.getMessage() for r in caplog.records if "labels kept" in r.getMessage()] == [
        "labels kept for 11 of 1,080 training sentences (1.0%, data.label_fraction=0.01): "
        "sentiment negative 5, positive 6; tense past 6, present 5"]
    before, after = train_labels(full), train_labels(semi)
    kept = (after != MISSING_LABEL).all(axis=1)
    assert kept.sum() == 11 and (after[~kept] == MISSING_LABEL).all()
    assert np.array_equal(after[kept], before[kept])  # the kept rows keep their own labels
    for name in ("text", "ids", "length"):  # only labels change, never sentences or order
        assert semi.splits["train"][name] == full.splits["train"][name]
    for split in ("valid", "test"):
        assert semi.splits[split][:] == full.splits[split][:]
    # the corpus itself keeps every label (the markers and losses read `splits`)
    assert (label_matrix(semi.corpus.splits["train"], semi.attribute_names) != MISSING_LABEL).all()
    batch = next(iter(semi.train_loader))
    assert torch.equal(batch.label_mask, batch.labels != MISSING_LABEL)


def test_every_label_kept_leaves_the_training_split_as_it_was(tmp_path, caplog, monkeypatch):
    import textgan.prepare

    data = prepare(tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("no subset is drawn when every label is kept")

    monkeypatch.setattr(textgan.prepare, "choose_labelled", never)
    with caplog.at_level(logging.INFO, logger="textgan.prepare"):
        again = prepare(tmp_path, "data.label_fraction=1.0", "data.labelled_sentences=0")
    assert not [r for r in caplog.records if "labels kept" in r.getMessage()]
    assert again.splits["train"][:] == data.splits["train"][:]
    assert (train_labels(data) != MISSING_LABEL).all()


def test_labelled_sentences_and_a_rerun_give_the_same_rows_every_time(tmp_path):
    first = prepare(tmp_path, "data.labelled_sentences=10")
    again = prepare(tmp_path, "data.labelled_sentences=10")  # tokenizer now from the run folder
    labels = train_labels(first)
    assert ((labels != MISSING_LABEL).all(axis=1)).sum() == 10
    assert np.array_equal(labels, train_labels(again))
    other = prepare(tmp_path, "data.labelled_sentences=10", "data.split_seed=1", run="other")
    assert ((train_labels(other) != MISSING_LABEL).all(axis=1)).sum() == 10


# --------------------------------------------------------------------------- errors


def _hermetic_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}


def _pretrain_error(tmp_path: Path, source: Path, *overrides: str) -> str:
    """The one error line of a pretraining refused on the command line (exit status 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "textgan.pretrain", *FAST, "--run-dir", str(tmp_path / "run"),
         f"--data.source={source}", f"--data.cache_dir={tmp_path / 'cache'}", *overrides],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=_hermetic_env())
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert not (tmp_path / "run").exists()  # a refused start leaves nothing behind
    return errors[0]


def test_a_label_fraction_on_a_corpus_without_labels_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("".join(f"the {word} soup number {i} .\n"
                            for i in range(20) for word in ("hot", "cold")))
    assert _pretrain_error(tmp_path, path, "--data.label_fraction=0.5") == (
        f"error: data.label_fraction=0.5 keeps the labels of some training sentences, but the "
        f"corpus {path} has no labels; set data.label_fraction=1 and "
        "data.labelled_sentences=0, or name its label columns in data.label_columns")


def test_more_labelled_sentences_than_the_corpus_has_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,sentiment\n" + "".join(
        f"the {word} soup number {i} .,{label}\n"
        for i in range(20) for label, words in WORDS.items() for word in words[:1]))
    error = _pretrain_error(tmp_path, path, "--data.labelled_sentences=1000",
                            "--data.valid_size=4", "--data.test_size=4")
    assert error == ("error: data.labelled_sentences=1000 is more than the 32 labelled training "
                     "sentences (after cleaning and data.max_tokens); set it to at most 32, or "
                     "to 0 to keep data.label_fraction of them")


# --------------------------------------------------------------------------- both stages


def test_one_percent_of_the_labels_trains_both_stages_and_the_judges_see_every_label(
        tmp_path, caplog):
    import textgan.pretrain as pretrain
    import textgan.train as train
    from textgan.checkpoint import read_checkpoint
    from textgan.evaluation.judges import JudgeSettings, train_judges

    run = tmp_path / "run"
    semi = ["--data.label_fraction=0.01"]
    with caplog.at_level(logging.INFO, logger="textgan.prepare"):
        pretrain.main([*FAST, "--run-dir", str(run), "--pretrain.epochs=1", *semi])
        # no preset: the adversarial stage reads the setting from the run folder's config.toml
        result = train.main(["--no-progress", "--run-dir", str(run), "--train.epochs=1",
                             "--train.transfer_examples=0", "--train.samples_per_style=0"])
    kept = [r.getMessage() for r in caplog.records if "labels kept" in r.getMessage()]
    assert len(kept) == 2 and kept[0] == kept[1]  # both stages train on the same subset
    assert kept[0].startswith("labels kept for 11 of 1,080 training sentences (1.0%")
    assert result["epoch"] == 1 and not result["stopped_on_nan"]
    assert read_checkpoint(result["last_checkpoint"])["meta"]["stage"] == "train"

    # the judges load the corpus themselves, from the same config: every training label
    judges = train_judges(run, settings=JudgeSettings(classifier_epochs=1, lm_epochs=1,
                                                      lm_max_sentences=64), progress=False)
    classifier = judges.report["classifier"]
    assert classifier["train_sentences"] == 1080
    assert classifier["train_unlabelled"] == {"sentiment": 0, "tense": 0}


# --------------------------------------------------------------------------- a shared pretraining


def test_only_a_pretraining_that_reads_no_label_ignores_the_label_subset():
    from textgan.config import LABEL_SUBSET_KEYS, keys_pretraining_ignores

    prior = load_config("tiny", overrides=["pretrain.code_source=prior"])
    assert keys_pretraining_ignores(prior) == set(LABEL_SUBSET_KEYS)
    assert keys_pretraining_ignores(load_config("hu2017")) == set(LABEL_SUBSET_KEYS)
    # c from the labels, or style markers chosen from labelled sentences: labels are read
    assert keys_pretraining_ignores(load_config("default")) == set()
    markers = load_config("tiny", overrides=["pretrain.code_source=prior",
                                             "model.style_marker_salience=5"])
    assert keys_pretraining_ignores(markers) == set()


def test_one_label_free_pretraining_serves_every_label_fraction(tmp_path, caplog):
    """train --from a pretraining with c from the prior, at another label fraction; refused
    when the pretraining read the labels."""
    import textgan.pretrain as pretrain
    import textgan.train as train
    from textgan.errors import ConfigError

    quick = ["--no-progress", "--train.epochs=1", "--train.transfer_examples=0",
             "--train.samples_per_style=0", "--data.label_fraction=0.1"]
    shared = tmp_path / "pretrained"
    pretrain.main([*FAST, "--run-dir", str(shared), "--pretrain.epochs=1",
                   "--pretrain.code_source=prior"])
    with caplog.at_level(logging.INFO, logger="textgan.prepare"):
        result = train.main([*quick, "--run-dir", str(tmp_path / "ten"), "--from", str(shared)])
    assert result["epoch"] == 1
    assert any(r.getMessage().startswith("labels kept for 108 of 1,080") for r in caplog.records)
    assert "label_fraction = 0.1" in (tmp_path / "ten" / "config.toml").read_text()
    # the seeded folder has no pretraining of its own: it resumes from its own checkpoints
    extended = train.main([*quick, "--run-dir", str(tmp_path / "ten"), "--train.epochs=2"])
    assert extended["epoch"] == 2 and not (tmp_path / "ten" / "pretrain").exists()
    # the same pretraining with c from the labels: its weights depend on them
    labelled = tmp_path / "labelled"
    pretrain.main([*FAST, "--run-dir", str(labelled), "--pretrain.epochs=1",
                   "--pretrain.code_source=label"])
    with pytest.raises(ConfigError, match="data.label_fraction: 1.0 -> 0.1"):
        train.main([*quick, "--run-dir", str(tmp_path / "refused"), "--from", str(labelled)])


def test_a_sweep_over_label_fractions_pretrains_once_where_pretraining_reads_no_label(tmp_path):
    from textgan.sweeping.plan import plan_runs, validate_plan
    from textgan.sweeping.spec import read_spec

    grid = tmp_path / "labels.toml"
    grid.write_text('[sweep]\npreset = "tiny"\n[grid]\npreset = ["hu2017", "default"]\n'
                    '"data.label_fraction" = [1.0, 0.1, 0.01]\n"train.lambda_c" = [0.0, 0.1]\n'
                    '[score]\nmetrics = ["transfer.*.judge_acc"]\n')
    runs = plan_runs(read_spec(grid))
    validate_plan(runs, str(grid))
    pretrainings = {preset: {r.pretraining for r in runs if r.preset == preset}
                    for preset in ("hu2017", "default")}
    assert len(pretrainings["hu2017"]) == 1  # c from the prior: one for all 6 configurations
    assert len(pretrainings["default"]) == 3  # c from the labels: one per label fraction
