"""The benchmarks' own helpers (the benchmarks themselves time things and are run by hand)."""

from __future__ import annotations

import csv

import torch

# benchmarks/ is a package at the repository root, which `python -m pytest` puts on sys.path
from benchmarks import scaling
from textgan.config import load_config
from textgan.corpora import load_corpus


def test_the_random_corpus_has_the_asked_shapes_and_loads_with_its_overrides(tmp_path):
    corpus = scaling.random_corpus(tmp_path / "random.csv", words=300, length=7,
                                   sentences=400, seed=0)
    with corpus.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 400
    assert {len(row["text"].split()) for row in rows} == {7}
    assert len({word for row in rows for word in row["text"].split()}) <= 300
    assert {row["style"] for row in rows} == {"a", "b"}

    overrides = scaling.corpus_overrides(corpus, vocab_size=300, length=7)
    cfg = load_config("tiny", overrides=[*overrides, f"data.cache_dir={tmp_path / 'hf'}"])
    assert cfg.tokenizer.vocab_size == 300 and cfg.data.max_tokens == 22
    loaded = load_corpus(cfg.data)
    assert loaded.attributes == {"style": ["a", "b"]}
    assert sum(len(loaded.splits[role]) for role in ("train", "valid", "test")) == 400


def test_the_corpus_memory_benchmark_measures_every_phase_in_a_child_process(tmp_path,
                                                                             monkeypatch):
    from benchmarks import corpus_memory

    # the child is a fresh process: its datasets cache must stay in tmp_path too
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    out = tmp_path / "memory.json"
    rows = corpus_memory.main(["--sizes", "500", "--preset", "tiny", "--keep",
                               str(tmp_path / "corpora"), "--out", str(out)])

    assert [row["sentences"] for row in rows] == [500]
    (row,) = rows
    # 5% valid and 5% test are held out (minus duplicates), and one epoch reads every training sentence in batches
    assert 350 <= row["train_sentences"] < 500
    assert row["epoch_batches"] >= row["train_sentences"] // 32  # tiny: batch_size 32
    assert row["epoch_tokens"] >= row["train_sentences"] * 10  # 10 words, at least 1 piece each
    for phase in ("imports", "load", "prepare", "epoch"):
        assert 0 < row[f"{phase}_anon_mib"] <= row[f"{phase}_mib"]
    assert row["cache_mib"] > 0
    assert (tmp_path / "corpora" / "corpus500.csv").is_file()
    assert out.is_file()


def test_the_host_sync_benchmark_counts_the_real_engines_by_call_site(tmp_path):
    from benchmarks import host_syncs

    import textgan.checks as checks

    out = tmp_path / "syncs.json"
    report = host_syncs.main(["--preset", "tiny", "--device", "cpu", "--warmup", "1",
                              "--iterations", "2", "--as-on-cuda", "--out", str(out)])
    assert out.is_file() and checks.reading_waits(torch.zeros(1)) is False  # restored
    # with the CUDA path's choices pretraining reads nothing that would wait on a GPU, and the
    # checks are device-side assertions
    assert report["pretrain"]["per_iteration"]["wait"] == 0
    assert report["pretrain"]["per_iteration"]["check"] == 0
    # the adversarial round waits only for its decoding's exit check, every 8 of max_len steps
    max_len = load_config("tiny").data.max_tokens
    assert report["adversarial"]["per_iteration"]["wait"] == max_len // 8
    waits = [site for site in report["adversarial"]["sites_per_iteration"]
             if not any(part in site for part in ("encoder.py", "data.py", "torch/"))]
    assert waits and all(site.startswith("textgan/models/generator.py") for site in waits)
