"""Throughput against batch size, hidden size, vocabulary size and sentence length.

    python -m benchmarks.scaling                              # default preset, ~10 min on 2 cores
    python -m benchmarks.scaling --batch-sizes 64,256 --hidden-sizes 256 --vocab-sizes "" \
        --lengths "" --iterations 10

Each grid point is one `benchmarks/throughput.py` run (`throughput.main`) with one setting
overridden (everything else from --preset), so each measures its own matmul peak and its "% of
peak" survives a noisy machine. One axis moves at a time from the preset's values:

- batch sizes (`data.batch_size`) and hidden sizes (`model.hidden_dim`) on the preset's corpus;
- vocabulary sizes and sentence lengths on a generated random corpus (`random_corpus`), since
  the synthetic language has ~380 words and sentences of 5-15 words. Its words are made-up
  letter strings drawn from a Zipf law over as many words as the vocabulary point asks for, so
  the sentencepiece model trained on it (`tokenizer.vocab_size`) fills that vocabulary mostly
  with whole words; a length point draws sentences of exactly that many words. The point's
  real figures (the tokenizer's vocabulary, the mean tokens per sentence, EOS included) are
  printed beside it: they, not the requested values, are what was measured.

Throughput does not depend on what the sentences mean, so a random corpus measures speed as well
as a real one of the same shapes. Prints a table and writes JSON to --out (default
benchmarks/results/scaling_<preset>.json, git-ignored). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import random
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

from textgan.config import load_config

try:
    from benchmarks import throughput
except ModuleNotFoundError as error:  # run as a file: the repository root is not importable
    if error.name != "benchmarks":
        raise
    raise SystemExit("run it from the repository root as: "
                     "python -m benchmarks.scaling ...") from None


RANDOM_CORPUS_SENTENCES = 20000
RANDOM_CORPUS_LENGTH = 10  # words per sentence at the vocabulary points (synthetic: 5-15)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def made_up_words(count: int, rng: random.Random) -> list[str]:
    """`count` distinct lowercase strings of 3-8 letters."""
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8))))
    return sorted(words)


def random_corpus(path: Path, *, words: int, length: int, sentences: int, seed: int) -> Path:
    """Write a CSV corpus (text, style) of `sentences` sentences of exactly `length` words drawn
    from a Zipf law (exponent 1) over `words` made-up words, with a random binary style."""
    rng = random.Random(seed)
    vocabulary = made_up_words(words, rng)
    zipf = [1.0 / rank for rank in range(1, words + 1)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "style"])
        for _ in range(sentences):
            text = " ".join(rng.choices(vocabulary, weights=zipf, k=length))
            writer.writerow([text, rng.choice(("a", "b"))])
    return path


def corpus_overrides(corpus: Path, *, vocab_size: int, length: int) -> list[str]:
    """Settings that train the preset's model on a random corpus: its vocabulary size, and room
    for sentences of `length` words split into a few pieces each."""
    return [f"data.source={corpus}", 'data.label_columns=["style"]',
            f"tokenizer.vocab_size={vocab_size}", "data.max_words=0",
            f"data.max_tokens={3 * length + 1}"]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch-sizes", type=_ints, default=[32, 64, 128, 256])
    parser.add_argument("--hidden-sizes", type=_ints, default=[128, 256, 512])
    parser.add_argument("--vocab-sizes", type=_ints, default=[1000, 4000, 16000],
                        help="tokenizer vocabularies, on a random corpus of as many words")
    parser.add_argument("--lengths", type=_ints, default=[8, 16, 32],
                        help="words per sentence, on a random corpus (vocabulary 4000)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corpora")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cfg = load_config(args.preset)
    corpora = Path(tempfile.mkdtemp(prefix="textgan-scaling-"))
    try:
        rows = run_points(args, cfg, corpora)
    finally:
        shutil.rmtree(corpora, ignore_errors=True)
    out = args.out or throughput.RESULTS / f"scaling_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return rows


def run_points(args: argparse.Namespace, cfg: Any, corpora: Path) -> list[dict[str, Any]]:
    points = [("batch", b, [f"data.batch_size={b}"]) for b in args.batch_sizes]
    points += [("hidden", h, [f"model.hidden_dim={h}"]) for h in args.hidden_sizes]
    for vocab in args.vocab_sizes:
        corpus = random_corpus(corpora / f"vocab{vocab}.csv", words=vocab,
                               length=RANDOM_CORPUS_LENGTH,
                               sentences=RANDOM_CORPUS_SENTENCES, seed=args.seed)
        points.append(("vocab", vocab, corpus_overrides(corpus, vocab_size=vocab,
                                                         length=RANDOM_CORPUS_LENGTH)))
    for length in args.lengths:
        corpus = random_corpus(corpora / f"length{length}.csv", words=4000, length=length,
                               sentences=RANDOM_CORPUS_SENTENCES, seed=args.seed)
        points.append(("length", length, corpus_overrides(corpus, vocab_size=4000,
                                                           length=length)))
    rows = []
    for axis, value, overrides in points:
        argv_point = ["--preset", args.preset, "--iterations", str(args.iterations),
                      "--samples", "500", "--count-iterations", "0",
                      "--out", str(throughput.RESULTS / "scaling_point.json")]
        for item in overrides:
            argv_point += ["--set", item]
        with contextlib.redirect_stdout(io.StringIO()):  # keep only this script's table
            report = throughput.main(argv_point)
        pretrain = report["pretrain"]
        row = {"axis": axis, "value": value,
               "batch_size": cfg.data.batch_size if axis != "batch" else value,
               "hidden_dim": cfg.model.hidden_dim if axis != "hidden" else value,
               "vocab_size": report["vocab_size"],
               "tokens_per_sentence": pretrain["real_tokens"] / pretrain["sentences"],
               "max_tokens": report["config"]["data"]["max_tokens"],
               "peak_flops_per_s": report["peak"]["flops_per_s"]}
        for stage in ("pretrain", "adversarial"):
            row[f"{stage}_tokens_per_s"] = report[stage]["tokens_per_s"]
            row[f"{stage}_fraction_of_peak"] = report[stage]["fraction_of_peak"]
        row["sampling_sentences_per_s"] = report["sampling"]["sentences_per_s"]
        rows.append(row)
        print(f"{axis:>6} {value:>5} (vocab {row['vocab_size']:>5}, "
              f"{row['tokens_per_sentence']:4.1f} tok/sent): pretrain "
              f"{row['pretrain_tokens_per_s']:8.0f} tok/s "
              f"{100 * row['pretrain_fraction_of_peak']:5.1f}% | adversarial "
              f"{row['adversarial_tokens_per_s']:7.0f} tok/s "
              f"{100 * row['adversarial_fraction_of_peak']:5.1f}% | sampling "
              f"{row['sampling_sentences_per_s']:6.0f} sent/s | peak "
              f"{row['peak_flops_per_s'] / 1e9:5.0f} GFLOP/s", flush=True)
    return rows


if __name__ == "__main__":
    main()
