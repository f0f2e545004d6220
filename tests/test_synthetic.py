"""The synthetic corpus: sampling (determinism, distinctness, bounds, balance, independence),
the split files (format, disjointness, atomic writes), the cached default corpus and the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from textgan.corpora import synthetic
from textgan.corpora.__main__ import main
from textgan.corpora.grammar import ATTRIBUTES, CONTENT_SLOTS, by_sentiment, by_tense, content
from textgan.corpora.grammar import Grammar
from textgan.corpora.language import compile_grammar, default_language
from textgan.corpora.synthetic import (
    SyntheticSentence, ensure_corpus, generate, split_sizes, write_corpus)
from textgan.errors import CorpusError


@pytest.fixture(scope="module")
def sample() -> list[SyntheticSentence]:
    return generate(20000, seed=0)


@pytest.fixture
def textgan_logs(caplog, monkeypatch):
    """caplog sees textgan's records even after some entry point set propagate=False."""
    monkeypatch.setattr(logging.getLogger("textgan"), "propagate", True)
    caplog.set_level(logging.INFO, logger="textgan")
    return caplog


def read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- sampling


def test_same_seed_same_sentences_and_longer_runs_extend_shorter_ones():
    assert generate(300, seed=7) == generate(300, seed=7)
    assert generate(300, seed=7)[:100] == generate(100, seed=7)
    assert [s.text for s in generate(50, seed=7)] != [s.text for s in generate(50, seed=8)]


def test_sentences_are_distinct(sample):
    assert len({s.text for s in sample}) == len(sample) == 20000


def test_surface_form_and_token_bounds(sample):
    lengths = Counter()
    for s in sample:
        tokens = s.text.split(" ")
        assert all(tokens), f"double or edge space in {s.text!r}"
        assert 4 <= len(tokens) <= 20, s.text
        assert s.text.endswith(" .") and s.text == s.text.lower(), s.text
        lengths[len(tokens)] += 1
    # the sampler reaches both ends of the range the compiler computed
    assert min(lengths) == default_language().min_tokens
    assert max(lengths) == default_language().max_tokens


def test_labels_and_content_have_the_declared_keys(sample):
    for s in sample[:2000]:
        assert list(s.attributes) == list(ATTRIBUTES)
        assert all(s.attributes[a] in values for a, values in ATTRIBUTES.items())
        assert list(s.content) == list(CONTENT_SLOTS)
        assert s.content["item"], s.text  # every pattern names the item
        for value in s.content.values():
            assert value == "" or f" {value} " in f" {s.text} ", (value, s.text)


def test_attributes_are_uniform_and_independent(sample):
    n = len(sample)
    # Binomial standard deviation at n=20000 is 0.0035 for a share of 0.5 and 0.003 for 0.25;
    # the tolerances are about 6 standard deviations.
    for attribute, values in ATTRIBUTES.items():
        counts = Counter(s.attributes[attribute] for s in sample)
        for value in values:
            assert abs(counts[value] / n - 0.5) < 0.02, (attribute, counts)
    combos = Counter(tuple(s.attributes.values()) for s in sample)
    assert len(combos) == 4
    for combo, count in combos.items():
        assert abs(count / n - 0.25) < 0.02, combos


def test_content_is_independent_of_the_style(sample):
    # Per style combination: how often each slot is filled, and the share of the commonest
    # items, must match the whole sample (about 5000 sentences per combination).
    by_combo: dict[tuple[str, ...], list[SyntheticSentence]] = {}
    for s in sample:
        by_combo.setdefault(tuple(s.attributes.values()), []).append(s)
    for slot in CONTENT_SLOTS:
        overall = sum(bool(s.content[slot]) for s in sample) / len(sample)
        for group in by_combo.values():
            share = sum(bool(s.content[slot]) for s in group) / len(group)
            assert abs(share - overall) < 0.04, (slot, share, overall)
    items = Counter(s.content["item"] for s in sample)
    assert len(items) == len(default_language().grammar.categories["item"].phrases[()])
    for group in by_combo.values():
        group_items = Counter(s.content["item"] for s in group)
        for item, count in items.most_common(5):
            assert abs(group_items[item] / len(group) - count / len(sample)) < 0.012, item


def test_sentence_structure_is_independent_of_the_style(sample):
    # Marker words of several patterns: each must be as frequent in every style combination.
    markers = {"reason": " because it ", "consequence": " , so my ", "and-opinion": " , and my ",
               "and-it": " , and it ", "frame": "according to my ", "report": " that the ",
               "relative": " that they ", "opener": "ly , "}
    by_combo: dict[tuple[str, ...], list[str]] = {}
    for s in sample:
        by_combo.setdefault(tuple(s.attributes.values()), []).append(f" {s.text} ")
    for name, marker in markers.items():
        overall = sum(marker in f" {s.text} " for s in sample) / len(sample)
        assert overall > 0.02, name
        for texts in by_combo.values():
            share = sum(marker in t for t in texts) / len(texts)
            assert abs(share - overall) < 0.03, (name, share, overall)


def test_template_weights_are_a_distribution_over_patterns():
    templates = default_language().templates
    assert sum(t.weight for t in templates) == pytest.approx(1.0)
    assert len({t.symbols for t in templates}) == len(templates)


def test_bad_counts_are_user_errors():
    assert generate(0, seed=1) == []
    for bad in (-1, 2.5, True):
        with pytest.raises(CorpusError, match="non-negative integer"):
            generate(bad, seed=1)  # type: ignore[arg-type]


def test_generate_exhausts_a_small_language_exactly():
    tiny = compile_grammar(Grammar(
        attributes=ATTRIBUTES, slots=("item",), required_slots=("item",),
        categories={"item": content("item", ["soup", "tea"]), "be": by_tense([("was", "is")]),
                    "quality": by_sentiment("bad", "good")},
        macros={}, patterns=["the <item> <be> <quality> ."]))
    everything = generate(8, seed=0, language=tiny)
    assert len({s.text for s in everything}) == 8 == tiny.size
    with pytest.raises(CorpusError, match="cannot draw 9 distinct"):
        generate(9, seed=0, language=tiny)


# --------------------------------------------------------------------------- split files


def test_split_sizes():
    assert split_sizes(20000) == {"train": 18000, "valid": 1000, "test": 1000}
    assert split_sizes(1200) == {"train": 1080, "valid": 60, "test": 60}
    assert split_sizes(10, (0.6, 0.2, 0.2)) == {"train": 6, "valid": 2, "test": 2}
    with pytest.raises(CorpusError, match="would be empty"):
        split_sizes(10)
    with pytest.raises(CorpusError, match="sum to 1"):
        split_sizes(100, (0.9, 0.1, 0.1))
    with pytest.raises(CorpusError, match="above 0"):
        split_sizes(100, (1.0, 0.0, 0.0))
    with pytest.raises(CorpusError, match="3 numbers"):
        split_sizes(100, (0.5, 0.5))


def test_write_corpus_files(tmp_path):
    paths = write_corpus(tmp_path / "out", 400, seed=3, fractions=(0.8, 0.1, 0.1))
    assert paths == {split: tmp_path / "out" / f"{split}.jsonl"
                     for split in ("train", "valid", "test")}
    rows = {split: read_jsonl(path) for split, path in paths.items()}
    assert {split: len(r) for split, r in rows.items()} == {"train": 320, "valid": 40, "test": 40}
    for r in rows.values():
        assert all(list(row) == ["text", "sentiment", "tense"] for row in r)
    texts = [row["text"] for split in ("train", "valid", "test") for row in rows[split]]
    assert len(set(texts)) == 400  # disjoint splits
    expected = generate(400, seed=3)
    assert [row["text"] for row in rows["train"]] == [s.text for s in expected[:320]]
    assert all({"text": s.text, **s.attributes} == row
               for s, row in zip(expected, rows["train"] + rows["valid"] + rows["test"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_write_corpus_replaces_a_previous_corpus_but_not_other_files(tmp_path):
    out = tmp_path / "out"
    write_corpus(out, 100, seed=1)
    write_corpus(out, 200, seed=2)
    assert len(read_jsonl(out / "train.jsonl")) == 180
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds files other than a corpus"):
        write_corpus(out, 100, seed=1)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="is not a folder"):
        write_corpus(a_file, 100, seed=1)


def test_an_interrupted_write_leaves_no_half_corpus(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_corpus(out, 100, seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = 0

    def record_then_interrupt(sentence: SyntheticSentence) -> str:
        nonlocal calls
        calls += 1
        if calls == 150:  # in the middle of writing the train file of the new corpus
            raise KeyboardInterrupt
        return json.dumps({"text": sentence.text, **sentence.attributes})

    monkeypatch.setattr(synthetic, "record", record_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_corpus(out, 400, seed=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old corpus intact
    with pytest.raises(KeyboardInterrupt):
        calls = 0
        write_corpus(tmp_path / "fresh", 400, seed=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing half-written


# --------------------------------------------------------------------------- the default corpus


def test_ensure_corpus_generates_once_then_reuses(tmp_path, textgan_logs):
    folder = ensure_corpus(200, 4, root=tmp_path)
    assert folder == tmp_path / "n200-seed4"
    assert any("generating the synthetic corpus" in r.getMessage() for r in textgan_logs.records)
    assert read_jsonl(folder / "train.jsonl")[0]["text"] == generate(1, seed=4)[0].text
    stamp = (folder / "train.jsonl").stat().st_mtime_ns
    textgan_logs.clear()
    assert ensure_corpus(200, 4, root=tmp_path) == folder
    assert not textgan_logs.records
    assert (folder / "train.jsonl").stat().st_mtime_ns == stamp


def test_ensure_corpus_regenerates_an_incomplete_or_stale_corpus(tmp_path, textgan_logs):
    folder = ensure_corpus(200, 4, root=tmp_path)
    good = (folder / "valid.jsonl").read_bytes()
    (folder / "valid.jsonl").write_bytes(good.split(b"\n", 1)[1])  # one line short
    ensure_corpus(200, 4, root=tmp_path)
    assert (folder / "valid.jsonl").read_bytes() == good
    assert any("valid.jsonl has 9 lines" in r.getMessage() for r in textgan_logs.records)
    rows = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows[0] = json.dumps({"text": "the pasta was great .", "sentiment": "positive",
                          "tense": "past"})
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ensure_corpus(200, 4, root=tmp_path)
    assert read_jsonl(folder / "train.jsonl")[0]["text"] == generate(1, seed=4)[0].text
    assert any("another version of the grammar" in r.getMessage() for r in textgan_logs.records)


@pytest.mark.real_synthetic_root
def test_default_root_is_the_git_ignored_folder_in_a_checkout(monkeypatch):
    monkeypatch.delenv(synthetic.SYNTHETIC_ROOT_ENV, raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert synthetic.default_root() == repo / "corpora" / "synthetic" / "generated"
    ignored = (repo / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "corpora/synthetic/generated/" in ignored


@pytest.mark.real_synthetic_root
def test_default_root_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(synthetic.SYNTHETIC_ROOT_ENV, str(tmp_path / "elsewhere"))
    assert synthetic.default_root() == tmp_path / "elsewhere"
    assert synthetic.ensure_corpus(60, 1) == tmp_path / "elsewhere" / "n60-seed1"
    monkeypatch.setenv(synthetic.SYNTHETIC_ROOT_ENV, "")  # empty: as if unset
    assert synthetic.default_root() != tmp_path / "elsewhere"


# --------------------------------------------------------------------------- command line


def test_cli_writes_the_corpus_and_reports_balance(tmp_path, textgan_logs):
    result = main(["synthetic", "--n", "300", "--seed", "5", "--out", str(tmp_path / "c")])
    assert result["files"] == {s: str(tmp_path / "c" / f"{s}.jsonl")
                               for s in ("train", "valid", "test")}
    splits = result["splits"]
    assert {s: splits[s]["sentences"] for s in splits} == {"train": 270, "valid": 15, "test": 15}
    train = read_jsonl(tmp_path / "c" / "train.jsonl")
    assert splits["train"]["labels"]["sentiment"] == dict(sorted(Counter(
        row["sentiment"] for row in train).items()))
    assert sum(splits["train"]["combinations"].values()) == 270
    assert [row["text"] for row in train] == [s.text for s in generate(270, seed=5)]
    assert any("train" in r.getMessage() and "sentiment" in r.getMessage()
               for r in textgan_logs.records)


def test_cli_grammar_reports_the_size_of_the_language():
    result = main(["grammar"])
    assert result["sentences"] == default_language().size > 10**6
    assert result["words"] >= 300


def test_cli_user_errors(tmp_path):
    with pytest.raises(CorpusError, match="--n must be at least 1"):
        main(["synthetic", "--n", "0", "--out", str(tmp_path / "c")])
    a_file = tmp_path / "taken"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="is not a folder"):
        main(["synthetic", "--n", "100", "--out", str(a_file)])
    with pytest.raises(SystemExit):  # argparse's own usage error for a missing flag
        main(["synthetic", "--n", "100"])


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "error: --n must be at least 1, got 0"),
    (["--n", "100", "--out-is-a-file"], "is not a folder"),
])
def test_cli_errors_are_one_clean_line(tmp_path, args, message):
    a_file = tmp_path / "taken"
    a_file.write_text("x", encoding="utf-8")
    out = str(a_file) if "--out-is-a-file" in args else str(tmp_path / "c")
    args = [a for a in args if a != "--out-is-a-file"] + ["--out", out]
    done = subprocess.run([sys.executable, "-m", "textgan.corpora", "synthetic", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
