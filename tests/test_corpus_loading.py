"""load_corpus on every source kind and format, and a clear CorpusError for every bad input.

All files are tiny and written into tmp_path; the hub path runs offline against local folders.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import types
from pathlib import Path

import datasets
import pytest

from textgan.config import DataConfig
from textgan.corpora import MISSING_LABEL, TEXT, load_corpus
from textgan.errors import CorpusError

# two attributes over eight sentences, the four combinations twice
ROWS = [
    ("the soup was warm .", "positive", "past"),
    ("the soup is cold .", "negative", "present"),
    ("our waiter was kind .", "positive", "past"),
    ("our waiter is rude .", "negative", "present"),
    ("the room was dirty .", "negative", "past"),
    ("the room is clean .", "positive", "present"),
    ("the bed was hard .", "negative", "past"),
    ("the view is lovely .", "positive", "present"),
]


def data(source, **fields) -> DataConfig:
    cfg = DataConfig(source=str(source), **fields)
    cfg.check()
    return cfg


def write_jsonl(path: Path, rows=ROWS) -> Path:
    path.write_text("".join(json.dumps({"text": t, "sentiment": s, "tense": n}) + "\n"
                            for t, s, n in rows))
    return path


def write_csv(path: Path, rows=ROWS, sep=",") -> Path:
    lines = [sep.join(["text", "sentiment", "tense"])]
    lines += [sep.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def all_texts(corpus) -> list[str]:
    return [text for split in corpus.splits.values() for text in split[TEXT]]


# --------------------------------------------------------------------------- formats


def test_txt_is_unlabelled_one_sentence_per_line_and_carved(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("\n".join(f"sentence number {i}" for i in range(40)) + "\n\n")
    corpus = load_corpus(data(path, valid_fraction=0.1, test_fraction=0.05))
    assert corpus.attributes == {}
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 34, "valid": 4, "test": 2}
    assert corpus.splits["train"].column_names == [TEXT]
    assert corpus.report.read == 41 and corpus.report.dropped == {"empty": 1}
    assert sorted(all_texts(corpus)) == sorted(f"sentence number {i}" for i in range(40))


def test_csv_labels_are_strings_so_numbers_agree_and_empty_cells_are_missing(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('sentence,stars,source\n'
                    '"good, really good",1,web\n'
                    'bad food,0,\n'
                    'fine place,1,app\n'
                    'no stars,,web\n')
    corpus = load_corpus(data(path, text_column="sentence", valid_fraction=0.0,
                              test_fraction=0.0))
    train = corpus.splits["train"]
    assert corpus.attributes == {"stars": ["0", "1"], "source": ["app", "web"]}
    assert train[TEXT] == ["good, really good", "bad food", "fine place", "no stars"]
    assert train["stars"] == [1, 0, 1, MISSING_LABEL]
    assert train["source"] == [1, MISSING_LABEL, 0, 1]
    assert train.features["stars"] == datasets.Value("int64")


def test_tsv_has_no_quoting(tmp_path):
    path = tmp_path / "quotes.tsv"
    path.write_text('text\tlabel\n"hi" she said\ta\nhe said "bye\tb\n')
    corpus = load_corpus(data(path, valid_fraction=0.0, test_fraction=0.0))
    assert corpus.splits["train"][TEXT] == ['"hi" she said', 'he said "bye']
    assert corpus.splits["train"]["label"] == [0, 1]


def test_jsonl_ints_and_strings_agree_and_label_columns_select(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a b", "y": 1, "id": 7}\n\n'
                    '{"text": "c d", "y": "0", "id": 8}\n'
                    '{"text": "e f", "y": 1.0, "id": 9}\n')
    cfg = data(path, label_columns=["y"], valid_fraction=0.0, test_fraction=0.0)
    corpus = load_corpus(cfg)
    assert corpus.attributes == {"y": ["0", "1"]}
    assert corpus.splits["train"]["y"] == [1, 0, 1]
    unlabelled = load_corpus(data(path, label_columns=[], valid_fraction=0.0, test_fraction=0.0))
    assert unlabelled.attributes == {}


def test_a_key_missing_from_the_first_json_line_is_still_an_attribute(tmp_path):
    path = tmp_path / "late.jsonl"
    path.write_text('{"text": "no label here"}\n{"text": "a b", "y": "p"}\n'
                    '{"text": "c d", "y": "q"}\n')
    corpus = load_corpus(data(path, valid_fraction=0.0, test_fraction=0.0))
    assert corpus.splits["train"]["y"] == [MISSING_LABEL, 0, 1]


def test_parquet_with_a_nan_label_and_int_labels(tmp_path):
    pandas = pytest.importorskip("pandas")
    path = tmp_path / "data.parquet"
    pandas.DataFrame({"text": ["a b", "c d", "e f"], "y": [1.0, float("nan"), 0.0],
                      "z": [3, 4, 3]}).to_parquet(path)
    corpus = load_corpus(data(path, valid_fraction=0.0, test_fraction=0.0))
    assert corpus.attributes == {"y": ["0", "1"], "z": ["3", "4"]}
    assert corpus.splits["train"]["y"] == [1, MISSING_LABEL, 0]
    assert corpus.splits["train"]["z"] == [0, 1, 0]


def test_bom_and_crlf_line_ends_are_handled(tmp_path):
    path = tmp_path / "windows.csv"
    path.write_bytes("\ufefftext,y\r\nA b,p\r\nc d,q\r\n".encode("utf-8"))
    corpus = load_corpus(data(path, valid_fraction=0.0, test_fraction=0.0))
    assert corpus.splits["train"][TEXT] == ["A b", "c d"]
    assert corpus.attributes == {"y": ["p", "q"]}


# --------------------------------------------------------------------------- folders


def test_folder_with_train_dev_test_files_is_not_carved(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:6])
    write_csv(tmp_path / "dev.csv", ROWS[6:7])
    write_jsonl(tmp_path / "test.jsonl", ROWS[7:])
    (tmp_path / "README.md").write_text("ignored")
    corpus = load_corpus(data(tmp_path))
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 6, "valid": 1, "test": 1}
    assert corpus.attributes == {"sentiment": ["negative", "positive"],
                                 "tense": ["past", "present"]}
    assert corpus.splits["valid"][TEXT] == ["the bed was hard ."]
    assert corpus.splits["valid"]["sentiment"] == [0]


def test_folder_with_only_train_is_carved(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS * 1)
    corpus = load_corpus(data(tmp_path, valid_fraction=0.25, test_fraction=0.25))
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 4, "valid": 2, "test": 2}


def test_dedupe_across_splits_removes_test_copies_of_train(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:6])
    write_jsonl(tmp_path / "valid.jsonl", ROWS[5:7])   # ROWS[5] repeats train
    write_jsonl(tmp_path / "test.jsonl", ROWS[7:] + ROWS[:1])
    corpus = load_corpus(data(tmp_path))
    assert len(corpus.splits["train"]) == 6
    assert corpus.splits["valid"][TEXT] == [ROWS[6][0]]
    assert corpus.splits["test"][TEXT] == [ROWS[7][0]]
    assert corpus.report.dropped == {"duplicate": 2}


def write_class_files(folder: Path) -> None:
    texts = {"0": ["bad soup .", "rude staff .", "dirty room .", "cold tea ."],
             "1": ["good soup .", "kind staff .", "clean room .", "warm tea ."]}
    for split, rows in (("train", slice(0, 2)), ("dev", slice(2, 3)), ("test", slice(3, 4))):
        for label, lines in texts.items():
            (folder / f"sentiment.{split}.{label}").write_text("\n".join(lines[rows]) + "\n")


def test_one_file_per_class_layout_takes_the_class_from_the_suffix(tmp_path):
    write_class_files(tmp_path)
    corpus = load_corpus(data(tmp_path))
    assert corpus.attributes == {"sentiment": ["0", "1"]}
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 4, "valid": 2, "test": 2}
    train = dict(zip(corpus.splits["train"][TEXT], corpus.splits["train"]["sentiment"]))
    assert train == {"bad soup .": 0, "rude staff .": 0, "good soup .": 1, "kind staff .": 1}


def test_one_file_per_class_layout_with_file_labels(tmp_path):
    write_class_files(tmp_path)
    names = {f"sentiment.{split}.{label}": name for split in ("train", "dev", "test")
             for label, name in (("0", "negative"), ("1", "positive"))}
    corpus = load_corpus(data(tmp_path, file_labels=names))
    assert corpus.attributes == {"sentiment": ["negative", "positive"]}
    assert corpus.splits["test"]["sentiment"] == [0, 1]
    assert corpus.splits["test"][TEXT] == ["cold tea .", "warm tea ."]


def test_file_labels_naming_no_file_is_an_error(tmp_path):
    write_class_files(tmp_path)
    with pytest.raises(CorpusError, match="file_labels names 'sentiment.train.2'"):
        load_corpus(data(tmp_path, file_labels={"sentiment.train.2": "neutral"}))


# --------------------------------------------------------------------------- semi-supervised


def test_unlabelled_files_join_train_with_missing_labels(tmp_path):
    write_csv(tmp_path / "train.csv", ROWS[:6])
    write_csv(tmp_path / "valid.csv", ROWS[6:7])
    write_csv(tmp_path / "test.csv", ROWS[7:])
    extra_txt = tmp_path / "extra.txt"
    extra_txt.write_text("an extra sentence .\nanother one .\n" + ROWS[7][0] + "\n")
    extra_jsonl = tmp_path / "more.jsonl"   # has labels, which are ignored
    extra_jsonl.write_text('{"text": "labelled but ignored .", "sentiment": "positive"}\n'
                           '{"text": "a third extra .", "sentiment": "weird"}\n')
    corpus = load_corpus(data(tmp_path, unlabelled=[str(extra_txt), str(extra_jsonl)]))
    train = corpus.splits["train"]
    assert len(train) == 6 + 4        # the extra copy of a test sentence is a duplicate
    assert train[TEXT][6:] == ["an extra sentence .", "another one .",
                               "labelled but ignored .", "a third extra ."]
    assert train["sentiment"][6:] == [MISSING_LABEL] * 4
    assert train["tense"][6:] == [MISSING_LABEL] * 4
    assert MISSING_LABEL not in train["sentiment"][:6]
    for role in ("valid", "test"):
        assert MISSING_LABEL not in list(corpus.splits[role]["sentiment"])
    assert corpus.report.read == 8 + 5
    assert corpus.report.dropped == {"duplicate": 1}
    assert corpus.report.kept == {"train": 10, "valid": 1, "test": 1}


def test_unlabelled_sentences_never_land_in_carved_valid_or_test(tmp_path):
    write_jsonl(tmp_path / "labelled.jsonl", ROWS)
    extra = tmp_path / "extra.txt"
    extra.write_text("".join(f"extra sentence {i}\n" for i in range(30)))
    corpus = load_corpus(data(tmp_path / "labelled.jsonl", unlabelled=[str(extra)],
                              valid_fraction=0.25, test_fraction=0.25))
    assert len(corpus.splits["valid"]) == 2 and len(corpus.splits["test"]) == 2
    for role in ("valid", "test"):
        assert MISSING_LABEL not in corpus.splits[role]["sentiment"]
    assert len(corpus.splits["train"]) == 4 + 30


def test_a_missing_unlabelled_file_is_an_error(tmp_path):
    write_jsonl(tmp_path / "train.jsonl")
    with pytest.raises(CorpusError, match="data.unlabelled: .*nope.txt: no such file"):
        load_corpus(data(tmp_path, unlabelled=[str(tmp_path / "nope.txt")]))


# --------------------------------------------------------------------------- shipped corpora


def test_tiny_corpus_loads_with_its_held_out_splits(caplog):
    caplog.set_level(logging.INFO, logger="textgan.corpora")
    corpus = load_corpus(data("tiny"))
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 16, "valid": 4, "test": 4}
    assert corpus.attributes == {"sentiment": ["negative", "positive"],
                                 "tense": ["past", "present"]}
    assert "attribute sentiment: classes negative, positive; train 16/16 labelled" in caplog.text
    assert "read 24 sentences" in caplog.text


def _fake_synthetic(monkeypatch, folder: Path, attributes: dict) -> list:
    """Stand-ins for textgan.corpora.synthetic/grammar, so the wiring is tested on its own."""
    calls = []

    def ensure_corpus(n, seed, root=None):
        calls.append((n, seed))
        return folder

    monkeypatch.setitem(sys.modules, "textgan.corpora.synthetic",
                        types.SimpleNamespace(ensure_corpus=ensure_corpus))
    monkeypatch.setitem(sys.modules, "textgan.corpora.grammar",
                        types.SimpleNamespace(ATTRIBUTES=attributes))
    return calls


def test_synthetic_source_reads_the_generated_folder_with_the_grammar_classes(tmp_path,
                                                                             monkeypatch):
    # only "positive" appears in train: the classes still come from the grammar, in its order
    rows = [(f"sentence {i} .", "positive", ["past", "present"][i % 2]) for i in range(6)]
    for split in ("train", "valid", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", [(f"{split} {t}", s, n) for t, s, n in rows])
    calls = _fake_synthetic(monkeypatch, tmp_path, {"sentiment": ("negative", "positive"),
                                                    "tense": ("past", "present")})
    corpus = load_corpus(data("synthetic", synthetic_size=18, synthetic_seed=3))
    assert calls == [(18, 3)]
    assert corpus.attributes == {"sentiment": ["negative", "positive"],
                                 "tense": ["past", "present"]}
    assert set(corpus.splits["train"]["sentiment"]) == {1}
    override = load_corpus(data("synthetic", label_values={"sentiment": ["positive", "negative"]}))
    assert override.attributes["sentiment"] == ["positive", "negative"]
    assert set(override.splits["train"]["sentiment"]) == {0}
    # the grammar's classes apply only to the attributes actually read
    assert load_corpus(data("synthetic", label_columns=["tense"])).attributes == {
        "tense": ["past", "present"]}
    assert load_corpus(data("synthetic", label_columns=[])).attributes == {}


def test_synthetic_corpus_end_to_end(tmp_path, monkeypatch):
    synthetic = pytest.importorskip("textgan.corpora.synthetic")
    monkeypatch.setattr(synthetic, "default_root", lambda: tmp_path)  # not the repo's cache
    corpus = load_corpus(data("synthetic", synthetic_size=300))
    assert (tmp_path / "n300-seed0" / "train.jsonl").is_file()
    assert set(corpus.attributes) == {"sentiment", "tense"}
    assert sum(corpus.report.kept.values()) > 0
    assert not set(corpus.splits["train"][TEXT]) & set(corpus.splits["test"][TEXT])


# --------------------------------------------------------------------------- hub datasets


def make_hub_folder(root: Path, splits=("train", "validation", "test")) -> Path:
    """A folder laid out like a hub dataset repository: data files, and a README that declares
    the splits when their names are not ones datasets recognises by itself."""
    root.mkdir()
    for split, rows in zip(splits, (ROWS[:6], ROWS[6:7], ROWS[7:])):
        write_jsonl(root / f"{split}.jsonl", rows)
    if set(splits) != {"train", "validation", "test"}:
        declared = "".join(f"  - split: {split}\n    path: {split}.jsonl\n" for split in splits)
        (root / "README.md").write_text(
            f"---\nconfigs:\n- config_name: default\n  data_files:\n{declared}---\n")
    return root


def test_hub_source_through_a_local_stand_in(tmp_path):
    repo = make_hub_folder(tmp_path / "repo")
    corpus = load_corpus(data(f"hf:{repo}", cache_dir=str(tmp_path / "hf")))
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 6, "valid": 1, "test": 1}
    assert corpus.attributes["tense"] == ["past", "present"]
    assert any((tmp_path / "hf").iterdir())  # data.cache_dir reached load_dataset


def test_hub_split_names_slicing_and_carving(tmp_path):
    repo = make_hub_folder(tmp_path / "repo", splits=("train", "extra", "heldout"))
    cfg = data(f"hf:{repo}", hf_splits={"train": "train[:4]", "test": "heldout"},
               valid_fraction=0.25)
    corpus = load_corpus(cfg)
    assert corpus.splits["test"][TEXT] == [ROWS[7][0]]
    assert len(corpus.splits["valid"]) == 1 and len(corpus.splits["train"]) == 3
    with pytest.raises(CorpusError, match="no split 'nope'.*train, extra, heldout"):
        load_corpus(data(f"hf:{repo}", hf_splits={"valid": "nope"}))


def test_hub_config_name_and_classlabel_names(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    saved = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": ["a b", "c d", "e f", "g h"], "label": [1, 0, 1, -1]}, features=features)})
    repo = tmp_path / "repo"
    saved.save_to_disk(str(repo / "small"))
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: small\n  data_files:\n  - split: train\n"
        "    path: small/train/*.arrow\n---\n")
    corpus = load_corpus(data(f"hf:{repo}:small", valid_fraction=0.0, test_fraction=0.0))
    assert corpus.attributes == {"label": ["neg", "pos"]}
    assert corpus.splits["train"]["label"] == [1, 0, 1, MISSING_LABEL]
    with pytest.raises(CorpusError, match="hf:.*:big"):
        load_corpus(data(f"hf:{repo}:big"))


def test_unreachable_hub_dataset_offline_is_a_clear_error():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(CorpusError) as caught:
        load_corpus(data("hf:someone/never-downloaded-corpus"))
    message = str(caught.value)
    assert "could not reach the Hugging Face hub dataset 'someone/never-downloaded-corpus'" \
        in message
    assert "HF_HUB_OFFLINE" in message and "data.source" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --------------------------------------------------------------------------- caching


def test_a_rewritten_file_is_reread_even_with_the_same_size_and_mtime(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("the old first line\nthe old second line\n")
    stat = path.stat()
    assert all_texts(load_corpus(data(path)))[0].startswith("the old")
    path.write_text("the new first line\nthe new second line\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sorted(all_texts(load_corpus(data(path)))) == [
        "the new first line", "the new second line"]


def test_loading_twice_gives_the_same_corpus(tmp_path):
    path = write_jsonl(tmp_path / "all.jsonl", ROWS * 3 + [(f"more {i} .", "positive", "past")
                                                         for i in range(20)])
    first, second = (load_corpus(data(path, valid_fraction=0.2, test_fraction=0.2))
                     for _ in range(2))
    for role in first.splits:
        assert first.splits[role].to_dict() == second.splits[role].to_dict()
    assert first.report == second.report
    report = first.report
    assert report.read - sum(report.dropped.values()) == sum(report.kept.values())


# --------------------------------------------------------------------------- bad input


def test_missing_source(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        load_corpus(data(tmp_path / "nowhere.csv"))


def test_unsupported_extension(tmp_path):
    (tmp_path / "book.xlsx").write_bytes(b"PK")
    with pytest.raises(CorpusError, match="unsupported file type '.xlsx'"):
        load_corpus(data(tmp_path / "book.xlsx"))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train.xlsx").write_bytes(b"PK")
    with pytest.raises(CorpusError, match="train.xlsx: unsupported file type"):
        load_corpus(data(folder))


def test_folder_without_corpus_files(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(CorpusError, match="no corpus files.*found notes.md"):
        load_corpus(data(tmp_path))


def test_empty_corpus_says_which_filters_removed_what(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("one two three four\n\nfive six seven eight nine\n")
    with pytest.raises(CorpusError) as caught:
        load_corpus(data(path, max_words=3))
    assert "no training sentences left after cleaning: read 3" in str(caught.value)
    assert "1 empty, 2 too_long (max_words=3)" in str(caught.value)


def test_missing_text_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "t.csv")
    with pytest.raises(CorpusError,
                       match="no text column 'sentence'.*'text', 'sentiment', 'tense'"):
        load_corpus(data(path, text_column="sentence"))


def test_missing_label_column(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl")
    with pytest.raises(CorpusError, match="no label column 'mood' .*data.label_columns"):
        load_corpus(data(path, label_columns=["sentiment", "mood"]))


def test_unknown_label_value_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,sentiment\na b,positive\nc d,neutral\ne f,negative\n")
    with pytest.raises(CorpusError) as caught:
        load_corpus(data(path, label_values={"sentiment": ["negative", "positive"]}))
    assert f"{path}, line 3: 'neutral'" in str(caught.value)
    assert "allowed: negative, positive" in str(caught.value)


def test_single_class_attribute(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a b", "y": "only"}\n{"text": "c d", "y": "only"}\n')
    with pytest.raises(CorpusError, match="'y' has a single class 'only'"):
        load_corpus(data(path))


BAD_BYTES = b"good line one\nbad \xff\xfe line\ngood line three\nalso \xc3 bad\ngood five\n"


def test_undecodable_bytes_fail_with_line_numbers(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(BAD_BYTES)
    with pytest.raises(CorpusError,
                       match=r"2 line\(s\) are not valid UTF-8, at line 2, 4\. .*skip"):
        load_corpus(data(path))


def test_undecodable_bytes_skipped_are_counted_and_lines_stay_exact(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,y\n" + b"".join(line.replace(b"\n", b",p\n")
                                             for line in BAD_BYTES.splitlines(keepends=True))
                     + b"last one,q\n" + b"unknown label,r\n")
    cfg = data(path, on_decode_error="skip", valid_fraction=0.0, test_fraction=0.0)
    with pytest.raises(CorpusError, match=r"latin.csv, line 8: 'r'"):
        load_corpus(data(path, on_decode_error="skip", label_values={"y": ["p", "q"]}))
    path.write_bytes(path.read_bytes().replace(b"unknown label,r\n", b""))
    corpus = load_corpus(cfg)
    assert corpus.splits["train"][TEXT] == ["good line one", "good line three", "good five",
                                            "last one"]
    assert corpus.report.dropped == {"undecodable": 2}
    assert corpus.report.skipped_lines == [3, 5]
    assert corpus.report.read == 6


def test_malformed_json_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a b"}\n{"text": "c d"}\n{"text": "e f",}\n')
    with pytest.raises(CorpusError, match=r"t.jsonl, line 3: malformed JSON"):
        load_corpus(data(path))
    array = tmp_path / "array.json"
    array.write_text('[{"text": "a b"},\n {"text": "c d"}]\n')
    with pytest.raises(CorpusError, match="line 1: .*one object per line"):
        load_corpus(data(array))


def test_malformed_csv_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,y\na b,p\nc d,q\nhello, world,p\n")
    with pytest.raises(CorpusError, match=r"t.csv, line 4: expected 2 fields .*found 3.*quotes"):
        load_corpus(data(path))


def test_labels_that_are_not_scalars(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a b", "y": "p", "meta": {"k": 1}}\n{"text": "c d", "y": "q"}\n')
    with pytest.raises(CorpusError, match="line 1: column 'meta'"):
        load_corpus(data(path))
    # not an error when that column is not read
    assert load_corpus(data(path, label_columns=["y"])).attributes == {"y": ["p", "q"]}


# --------------------------------------------------------------------------- split by counts


YELP_SLICE = Path(__file__).resolve().parent / "data" / "yelp_slice"


def numbered(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({TEXT: [f"sentence {i}" for i in range(n)],
                                       "y": [i % 2 for i in range(n)]})


def test_the_yelp_slice_is_a_one_file_per_class_source():
    corpus = load_corpus(data(YELP_SLICE))  # README.md beside the class files is ignored
    assert corpus.attributes == {"sentiment": ["0", "1"]}
    assert corpus.report.read == 400 and corpus.report.dropped == {"duplicate": 1}
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 359, "valid": 20, "test": 20}


def test_valid_and_test_sizes_carve_exactly_that_many_sentences():
    from textgan.corpora.splitting import carve

    ds = numbered(1000)
    parts = carve(ds, 0.05, 0.05, 0, valid_size=37, test_size=11)
    assert {role: len(part) for role, part in parts.items()} == {
        "train": 952, "valid": 37, "test": 11}
    texts = {role: list(part[TEXT]) for role, part in parts.items()}
    assert sorted(sum(texts.values(), []), key=lambda t: int(t.split()[1])) == list(ds[TEXT])
    for role, part in texts.items():  # each split keeps the file order
        assert part == sorted(part, key=lambda t: int(t.split()[1])), role
    again = carve(ds, 0.05, 0.05, 0, valid_size=37, test_size=11)
    assert all(list(again[role][TEXT]) == texts[role] for role in texts)
    other_seed = carve(ds, 0.05, 0.05, 1, valid_size=37, test_size=11)
    assert list(other_seed["valid"][TEXT]) != texts["valid"]


def test_a_size_replaces_only_its_own_fraction_and_only_for_carved_splits():
    from textgan.corpora.splitting import carve

    ds = numbered(1000)
    parts = carve(ds, 0.05, 0.02, 0, valid_size=37)
    assert {role: len(part) for role, part in parts.items()} == {
        "train": 943, "valid": 37, "test": 20}
    # the test split came from a file (fraction None): test_size carves nothing
    parts = carve(ds, 0.05, None, 0, valid_size=37, test_size=11)
    assert {role: len(part) for role, part in parts.items()} == {"train": 963, "valid": 37}


def test_the_fraction_path_is_unchanged_by_the_sizes():
    import numpy as np
    from datasets.fingerprint import Hasher

    from textgan.corpora.splitting import assign_roles, carve, carved_size

    for total, valid, test, seed in ((1000, 0.05, 0.05, 0), (41, 0.1, 0.05, 3), (3, 0.01, 0.01, 7)):
        # the rule before sizes existed: test takes the first picks of the permutation
        order = np.random.default_rng(seed).permutation(total)
        expected = np.zeros(total, dtype=np.int8)
        n_test, n_valid = carved_size(total, test), carved_size(total, valid)
        expected[order[:n_test]] = 2
        expected[order[n_test:n_test + n_valid]] = 1
        assert np.array_equal(assign_roles(total, valid, test, seed), expected)
    ds = numbered(50)
    for role, part in carve(ds, 0.1, 0.2, 5).items():  # cached corpora keep their fingerprints
        assert part._fingerprint == Hasher.hash(["textgan-carve-v1", ds._fingerprint, role, 0.1,
                                                 0.2, 5])


def test_the_sizes_are_part_of_the_fingerprint():
    from textgan.corpora.splitting import carve

    ds = numbered(100)
    fingerprints = {carve(ds, 0.05, 0.05, 0, **sizes)["valid"]._fingerprint
                    for sizes in ({}, {"valid_size": 7}, {"valid_size": 8},
                                  {"valid_size": 7, "test_size": 3})}
    assert len(fingerprints) == 4
    # an unused fraction does not matter once the size is set
    assert (carve(ds, 0.05, 0.05, 0, valid_size=7)["valid"]._fingerprint
            == carve(ds, 0.3, 0.05, 0, valid_size=7)["valid"]._fingerprint)


def test_sizes_that_leave_no_training_sentences_are_an_error():
    from textgan.corpora.splitting import carve

    ds = numbered(100)
    with pytest.raises(CorpusError, match=r"carving 95 valid and 5 test sentences "
                                          r"\(data.valid_size 95, data.test_size 0\) leaves no "
                                          r"training sentences: train has 100 after cleaning"):
        carve(ds, 0.05, 0.05, 0, valid_size=95)
    with pytest.raises(CorpusError, match="leaves no training sentences"):
        carve(ds, 0.05, 0.05, 0, valid_size=60, test_size=500)
    assert len(carve(ds, 0.05, 0.05, 0, valid_size=60, test_size=39)["train"]) == 1


def test_sizes_are_checked_config_keys():
    from textgan.config import load_config
    from textgan.errors import ConfigError

    cfg = load_config("tiny", None, ["data.valid_size=500", "data.test_size=250"])
    assert (cfg.data.valid_size, cfg.data.test_size) == (500, 250)
    assert (DataConfig().valid_size, DataConfig().test_size) == (0, 0)
    with pytest.raises(ConfigError, match="data.test_size must be >= 0"):
        load_config("tiny", None, ["data.test_size=-1"])


def test_load_corpus_carves_the_configured_sizes_from_a_train_only_folder():
    corpus = load_corpus(data(YELP_SLICE, valid_size=50, test_size=30))
    assert {role: len(ds) for role, ds in corpus.splits.items()} == {
        "train": 319, "valid": 50, "test": 30}
