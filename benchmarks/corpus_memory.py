"""Peak memory of the data path against corpus size: are large corpora read without being loaded?

    python -m benchmarks.corpus_memory                          # 20k, 200k, 1M sentences
    python -m benchmarks.corpus_memory --sizes 10000,100000 --keep /tmp/corpora

For each size, a random CSV corpus (benchmarks/scaling.py's `random_corpus`: made-up words from
a Zipf law, 10 words per sentence, a binary style) is written, then a fresh Python process runs
what a training stage does before its first step and then one pass over the training batches,
with nothing else:

    corpus = load_corpus(cfg.data)          # read, clean, split -> memory-mapped arrow
    data = prepare_data(cfg, paths, ...)    # tokenizer trained on a reservoir sample, ids mapped
    for batch in data.train_loader: ...     # one epoch of padded batches

The child reports, after importing torch and textgan and after each phase, its peak anonymous
memory (RssAnon: the heap, sampled every 10 ms) and its peak resident memory (ru_maxrss, which
also counts the pages of memory-mapped arrow files that were read), and the bytes written to the
datasets cache. A corpus streamed through arrow files
gives a heap peak that barely grows with the corpus; a whole-corpus Python list would add
hundreds of bytes per sentence. What does grow, by design: the dedupe digests (8 bytes a
sentence), the tokenizer's reservoir sample (capped by tokenizer.input_sentence_size), the
per-sentence lengths the batch sampler keeps and the shuffled batch order. Prints a table and writes JSON to --out (default
benchmarks/results/corpus_memory.json, git-ignored). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks import scaling
except ModuleNotFoundError as error:  # run as a file: the repository root is not importable
    if error.name != "benchmarks":
        raise
    raise SystemExit("run it from the repository root as: "
                     "python -m benchmarks.corpus_memory ...") from None

ROOT = Path(__file__).resolve().parent.parent  # the repository root: the child runs from there
RESULTS = Path(__file__).resolve().parent / "results"
VOCABULARY = 4000
WORDS_PER_SENTENCE = 10


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class AnonymousPeak:
    """Peak of the process's anonymous resident memory (RssAnon), sampled every 10 ms by a thread.

    ru_maxrss also counts the pages of memory-mapped arrow files that were read, which the
    kernel drops under pressure and which are not "loaded" in the sense that matters; RssAnon
    is the heap alone: Python objects, numpy and torch buffers. The kernel keeps no peak of it,
    hence the sampling (a spike shorter than 10 ms can be missed)."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now_kib() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_kib = max(self.peak_kib, self.now_kib())

    def take_mib(self) -> float:
        """The peak since the last call (and now), in MiB; starts a new window."""
        peak = max(self.peak_kib, self.now_kib())
        self.peak_kib = 0
        return peak / 1024


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def child(corpus: Path, work: Path, preset: str) -> dict[str, Any]:
    """Runs in a fresh process (its ru_maxrss is its own): the data path of one stage."""
    report: dict[str, Any] = {}
    anonymous = AnonymousPeak()
    import torch

    from textgan.runs import RunPaths
    from textgan.config import load_config
    from textgan.corpora import load_corpus
    from textgan.prepare import prepare_data

    report["imports_mib"] = _peak_mib()
    report["imports_anon_mib"] = anonymous.take_mib()
    overrides = scaling.corpus_overrides(corpus, vocab_size=VOCABULARY,
                                         length=WORDS_PER_SENTENCE)
    cfg = load_config(preset, overrides=[*overrides, f"data.cache_dir={work / 'cache'}"])
    started = time.perf_counter()
    corpus_splits = load_corpus(cfg.data)
    report["load_s"] = time.perf_counter() - started
    report["load_mib"] = _peak_mib()
    report["load_anon_mib"] = anonymous.take_mib()
    report["train_sentences"] = len(corpus_splits.splits["train"])
    del corpus_splits

    started = time.perf_counter()
    data = prepare_data(cfg, RunPaths(work / "run"), device=torch.device("cpu"))
    report["prepare_s"] = time.perf_counter() - started
    report["prepare_mib"] = _peak_mib()
    report["prepare_anon_mib"] = anonymous.take_mib()

    started = time.perf_counter()
    tokens = batches = 0
    for batch in data.train_loader:
        tokens += int(batch.lengths.sum())
        batches += 1
    report["epoch_s"] = time.perf_counter() - started
    report["epoch_mib"] = _peak_mib()
    report["epoch_anon_mib"] = anonymous.take_mib()
    report["epoch_batches"], report["epoch_tokens"] = batches, tokens
    report["cache_mib"] = _folder_bytes(work / "cache") / 2**20
    return report


def measure(size: int, folder: Path, preset: str, seed: int) -> dict[str, Any]:
    corpus = scaling.random_corpus(folder / f"corpus{size}.csv", words=VOCABULARY,
                                   length=WORDS_PER_SENTENCE, sentences=size, seed=seed)
    work = folder / f"work{size}"
    # the child runs as `python -m benchmarks.corpus_memory` from the repository root, so its
    # paths are made absolute first
    command = [sys.executable, "-m", "benchmarks.corpus_memory", "--child",
               str(corpus.resolve()), "--work", str(work.resolve()), "--preset", preset]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if finished.returncode != 0:
        raise SystemExit(f"the child for {size} sentences failed:\n{finished.stderr[-3000:]}")
    row = json.loads(finished.stdout.strip().splitlines()[-1])
    return {"sentences": size, "csv_mib": corpus.stat().st_size / 2**20, **row}


def print_table(rows: list[dict[str, Any]]) -> None:
    phases = ("imports", "load", "prepare", "epoch")
    print("peak memory in MiB per phase, as anonymous (heap) / total resident; times in s")
    print(f"{'sentences':>10} {'csv MiB':>8} {'cache MiB':>9} "
          + " ".join(f"{phase:>11}" for phase in phases)
          + " " + " ".join(f"{phase + ' s':>9}" for phase in phases[1:]))
    for row in rows:
        memory = " ".join(f"{row[phase + '_anon_mib']:>5.0f}/{row[phase + '_mib']:<5.0f}"
                          for phase in phases)
        seconds = " ".join(f"{row[phase + '_s']:>9.1f}" for phase in phases[1:])
        print(f"{row['sentences']:>10,} {row['csv_mib']:>8.1f} {row['cache_mib']:>9.1f} "
              f"{memory} {seconds}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=scaling._ints, default=[20_000, 200_000, 1_000_000],
                        help="corpus sizes in sentences (train + valid + test)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corpora")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the corpora and caches here and keep them (default: a "
                             "temporary folder, removed at the end)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.work, args.preset)))
        return []

    folder = args.keep or Path(tempfile.mkdtemp(prefix="textgan-corpus-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        rows = []
        for size in args.sizes:
            rows.append(measure(size, folder, args.preset, args.seed))
            print(f"{size:,} sentences done", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print_table(rows)
    out = args.out or RESULTS / "corpus_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
