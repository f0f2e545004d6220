"""Cleaning, label mapping and splitting, on hand-made cases small enough to count by eye."""

from __future__ import annotations

import datasets
import pytest

from textgan.config import DataConfig
from textgan.corpora.cleaning import (EMPTY, KEEP, TOO_LONG, TOO_SHORT, Cleaner, drop_reason,
                                      normalise, split_sentences)
from textgan.corpora.corpus import MISSING_LABEL, TEXT, CleaningReport
from textgan.corpora.labels import encode_labels, infer_classes, sorted_classes
from textgan.corpora.raw import LINE, SRC, Origins, raw_features
from textgan.corpora.splitting import carve, carved_size
from textgan.errors import CorpusError


def raw(texts, tmp_path=None, **labels) -> datasets.Dataset:
    """A raw dataset (the shape readers produce) from lists; saved to disk when tmp_path is given
    so that datasets caches its transforms, as it does for real files."""
    columns = {TEXT: list(texts), **{name: list(values) for name, values in labels.items()},
               SRC: [0] * len(texts), LINE: list(range(1, len(texts) + 1))}
    ds = datasets.Dataset.from_dict(columns, features=raw_features(list(labels)))
    if tmp_path is None:
        return ds
    ds.save_to_disk(str(tmp_path / "raw"))
    return datasets.load_from_disk(str(tmp_path / "raw"))


# --------------------------------------------------------------------------- single steps


def test_normalise_collapses_every_kind_of_whitespace_and_strips():
    assert normalise("  The\tsoup \n was\u00a0 warm  ", lowercase=False) == "The soup was warm"
    assert normalise("The Soup", lowercase=True) == "the soup"
    assert normalise(None, lowercase=False) == ""
    assert normalise(" \t ", lowercase=False) == ""


def test_split_sentences_on_end_punctuation_followed_by_whitespace():
    assert split_sentences("I came. It rained! Did it? Bye") == [
        "I came.", "It rained!", "Did it?", "Bye"]
    # tokenised corpora: the punctuation is its own token
    assert split_sentences("it was good . i liked it .") == ["it was good .", "i liked it ."]
    # a closing quote or bracket stays with its sentence
    assert split_sentences('He said "stop." Then (twice.) left') == [
        'He said "stop."', "Then (twice.)", "left"]
    # no whitespace after the dot: not a sentence end
    assert split_sentences("it cost 3.50 dollars") == ["it cost 3.50 dollars"]


def test_drop_reason_counts_whitespace_words():
    assert drop_reason("", 1, 0) == EMPTY
    assert drop_reason("one", 2, 0) == TOO_SHORT
    assert drop_reason("a b c", 1, 2) == TOO_LONG
    assert drop_reason("a b c", 3, 3) == KEEP
    assert drop_reason(" ".join("w" * 500), 1, 0) == KEEP  # max_words=0: no limit


# --------------------------------------------------------------------------- the Cleaner


def test_every_cleaning_step_is_counted(tmp_path):
    texts = ["  The soup   was warm ",    # kept, normalised
             "",                          # empty
             "   \t  ",                   # empty after normalisation
             "Bad",                       # too short (min_words=2)
             "one two three four five six seven",  # too long (max_words=6)
             "the SOUP was warm",         # duplicate of the first after lowercasing
             "A fine day"]                # kept
    cfg = DataConfig(lowercase=True, min_words=2, max_words=6, dedupe=True)
    report = CleaningReport()
    cleaned = Cleaner(cfg, report).clean(raw(texts, tmp_path, mood=list("abcdefg")), "train")
    assert cleaned[TEXT] == ["the soup was warm", "a fine day"]
    assert cleaned["mood"] == ["a", "g"]            # labels travel with their sentence
    assert cleaned[LINE] == [1, 7]                  # and so does where it came from
    assert report.dropped == {"empty": 2, "too_short": 1, "too_long": 1, "duplicate": 1}


def test_without_lowercase_or_dedupe_those_steps_do_nothing():
    cfg = DataConfig(lowercase=False, dedupe=False, min_words=1, max_words=0)
    report = CleaningReport()
    cleaned = Cleaner(cfg, report).clean(raw(["Same here", "Same here", "same here"]), "train")
    assert cleaned[TEXT] == ["Same here", "Same here", "same here"]
    assert report.dropped == {}


def test_sentence_splitting_runs_before_the_length_filter_and_keeps_labels():
    cfg = DataConfig(split_sentences=True, min_words=1, max_words=4)
    report = CleaningReport()
    texts = ["The room was small. The bed was hard!", "too many words in this one sentence"]
    cleaned = Cleaner(cfg, report).clean(raw(texts, mood=["bad", "ok"]), "train")
    assert cleaned[TEXT] == ["The room was small.", "The bed was hard!"]
    assert cleaned["mood"] == ["bad", "bad"]
    assert cleaned[LINE] == [1, 1]
    assert report.dropped == {"too_long": 1}


def test_dedupe_spans_calls_in_order_so_test_never_repeats_train():
    cleaner = Cleaner(DataConfig(), report := CleaningReport())
    train = cleaner.clean(raw(["a cat", "a dog", "a cat"]), "train")
    test = cleaner.clean(raw(["a dog", "a cow"]), "test")
    assert train[TEXT] == ["a cat", "a dog"]
    assert test[TEXT] == ["a cow"]
    assert report.dropped == {"duplicate": 2}


def test_counts_and_dedupe_stay_right_when_datasets_answers_from_its_cache(tmp_path):
    cfg = DataConfig(min_words=2)
    ds = raw(["one", "a b", "a b", "c d"], tmp_path)
    for _ in range(2):  # the second pass is served from the datasets cache
        report = CleaningReport()
        assert Cleaner(cfg, report).clean(ds, "train")[TEXT] == ["a b", "c d"]
        assert report.dropped == {"too_short": 1, "duplicate": 1}
    # the same data deduped after other data must not reuse the result of deduping it alone
    cleaner = Cleaner(cfg, CleaningReport())
    cleaner.clean(raw(["c d"]), "train")
    assert cleaner.clean(ds, "valid")[TEXT] == ["a b"]


# --------------------------------------------------------------------------- labels


def test_classes_sort_numerically_when_all_are_integers():
    assert sorted_classes(["10", "2", "-1"]) == ["-1", "2", "10"]
    assert sorted_classes(["pos", "neg", "10"]) == ["10", "neg", "pos"]


def test_label_mapping_uses_configured_order_and_marks_missing():
    train = raw(["a", "b", "c"], mood=["pos", None, "neg"])
    classes = infer_classes({"train": train}, ["mood"], {"mood": ["pos", "neg"]}, Origins(), "x")
    assert classes == {"mood": ["pos", "neg"]}
    assert encode_labels(train, classes, "train")["mood"] == [0, MISSING_LABEL, 1]


def test_inferred_classes_come_from_train_and_valid_may_not_add_one():
    origins = Origins()
    origins.add("train.csv", "line")
    train = raw(["a", "b"], mood=["neg", "pos"])
    assert infer_classes({"train": train}, ["mood"], {}, origins, "x") == {"mood": ["neg", "pos"]}
    valid = raw(["c", "d"], mood=["pos", "meh"])
    with pytest.raises(CorpusError, match=r"train.csv, line 2: 'meh'.*valid split.*neg, pos"):
        infer_classes({"train": train, "valid": valid}, ["mood"], {}, origins, "x")


def test_a_label_outside_label_values_names_file_line_value_and_allowed():
    origins = Origins()
    origins.add("reviews.csv", "line")
    train = raw(["a", "b", "c"], mood=["pos", "neg", "neutral"])
    with pytest.raises(CorpusError) as caught:
        infer_classes({"train": train}, ["mood"], {"mood": ["neg", "pos"]}, origins, "x")
    assert "reviews.csv, line 3: 'neutral'" in str(caught.value)
    assert "allowed: neg, pos" in str(caught.value)


def test_single_class_and_unlabelled_attributes_are_refused():
    origins = Origins()
    origins.add("f.csv", "line")
    with pytest.raises(CorpusError, match="single class 'pos'.*f.csv, line 1"):
        infer_classes({"train": raw(["a", "b"], mood=["pos", "pos"])}, ["mood"], {}, origins, "x")
    with pytest.raises(CorpusError, match="single class"):
        infer_classes({"train": raw(["a"], mood=["pos"])}, ["mood"], {"mood": ["pos"]}, origins,
                      "x")
    with pytest.raises(CorpusError, match="no labels in the training split"):
        infer_classes({"train": raw(["a"], mood=[None])}, ["mood"], {}, origins, "x")


def test_label_values_for_an_attribute_the_corpus_lacks_is_an_error():
    with pytest.raises(CorpusError, match="'mode'.*corpus has 'mood'"):
        infer_classes({"train": raw(["a", "b"], mood=["x", "y"])}, ["mood"],
                      {"mode": ["x", "y"]}, Origins(), "x")


# --------------------------------------------------------------------------- splitting


def test_carving_is_deterministic_disjoint_and_respects_fractions():
    ds = raw([f"sentence {i}" for i in range(200)])
    first = carve(ds, 0.1, 0.05, seed=0)
    again = carve(ds, 0.1, 0.05, seed=0)
    other = carve(ds, 0.1, 0.05, seed=1)
    sizes = {role: len(part) for role, part in first.items()}
    assert sizes == {"train": 170, "valid": 20, "test": 10}
    assert all(first[role][TEXT] == again[role][TEXT] for role in first)
    assert first["test"][TEXT] != other["test"][TEXT]
    sets = {role: set(part[TEXT]) for role, part in first.items()}
    assert not sets["train"] & sets["valid"] and not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    assert sets["train"] | sets["valid"] | sets["test"] == set(ds[TEXT])
    lines = first["train"][LINE]
    assert lines == sorted(lines)  # each split keeps the file order


def test_carving_only_the_missing_split_and_small_corpora():
    ds = raw([f"s {i}" for i in range(10)])
    assert set(carve(ds, None, 0.2, seed=0)) == {"train", "test"}
    assert carved_size(10, 0.05) == 1     # a positive fraction gives every split a sentence
    assert carved_size(2, 0.05) == 0      # ... unless that would leave train nearly empty
    assert carved_size(100, 0.0) == 0
    assert carved_size(30, 0.05) == 2     # 1.5 rounds up


def test_sentence_splitting_is_counted_so_the_report_adds_up(tmp_path):
    cfg = DataConfig(split_sentences=True, min_words=2)
    report = CleaningReport()
    cleaned = Cleaner(cfg, report).clean(
        raw(["it was good . i liked it .", "short", "one more here ."], tmp_path), "train")
    assert cleaned[TEXT] == ["it was good .", "i liked it .", "one more here ."]
    assert report.added == 1
    assert report.dropped == {"too_short": 1}
    assert len(cleaned) == 3 + report.added - sum(report.dropped.values())
