"""Time leave-one-out self-BLEU-2/3/4 (textgan.evaluation.self_bleu) on synthetic sentences.

On a CPU (a few seconds):

    python -m benchmarks.self_bleu                          # 5,000 sentences, seed 0
    python -m benchmarks.self_bleu --n 20000 --repeats 1 --out /tmp/self_bleu.json

Prints one line per (n-gram order, averaging mode) and writes the figures as JSON to --out
(default benchmarks/results/self_bleu.json, git-ignored). Wall-clock times depend on the machine
and on whatever else runs on it; each setting is run --repeats times and the fastest run is the
headline figure (the least disturbed one), with all runs kept in the JSON. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import sacrebleu

from textgan.corpora.synthetic import generate
from textgan.evaluation import self_bleu

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "self_bleu.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of sentences (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic corpus seed (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (default 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    sentences = [s.text for s in generate(args.n, seed=args.seed)]
    generate_s = time.perf_counter() - start
    words = sum(len(s.split()) for s in sentences)
    print(f"{args.n} synthetic sentences (seed {args.seed}, {words / args.n:.1f} words on "
          f"average) generated in {generate_s:.2f} s; {args.repeats} run(s) per setting")

    results = []
    for order in (2, 3, 4):
        for sentence_avg in (True, False):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = self_bleu(sentences, order, sentence_avg=sentence_avg)
                times.append(time.perf_counter() - start)
            mode = "sentence-mean" if sentence_avg else "corpus"
            print(f"self-BLEU-{order} {mode:>13}: {result.score:7.3f}   best {min(times):.3f} s"
                  f"   median {statistics.median(times):.3f} s")
            results.append({"max_ngram_order": order, "sentence_avg": sentence_avg,
                            "score": result.score, "signature": result.signature,
                            "best_s": min(times), "median_s": statistics.median(times),
                            "runs_s": times})

    report = {
        "benchmark": "self_bleu", "n": args.n, "seed": args.seed, "repeats": args.repeats,
        "mean_words": words / args.n, "generate_s": generate_s, "results": results,
        "sacrebleu": sacrebleu.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
