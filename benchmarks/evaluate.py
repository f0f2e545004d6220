"""Time `python -m textgan.evaluate` end to end (every metric but the curve) on a trained run.

    python -m benchmarks.evaluate --run-dir checkpoints/default           # 5,000 samples
    python -m benchmarks.evaluate --run-dir checkpoints/tiny --n 500 --out /tmp/eval.json

The judges are trained first if the run has none, outside the timed part (that is a one-off
per run; its time is reported separately). Each phase is timed (sampling and judging,
diversity, transfer, VAE health) by running the report once with the curve off; the total is
the report's own `seconds_without_curve`. Figures are printed and written as JSON to --out
(default benchmarks/results/evaluate.json, git-ignored). Nothing is asserted: wall-clock time
depends on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from textgan.evaluation.judges import ensure_judges, judges_dir
from textgan.evaluation.report import EvalSettings, evaluate_run
from textgan.tokenizer import Tokenizer

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "evaluate.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    judge_seconds = None
    if not judges_dir(args.run_dir).exists():
        started = time.perf_counter()
        ensure_judges(args.run_dir, Tokenizer.load(args.run_dir), seed=args.seed,
                      progress=False)
        judge_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = evaluate_run(EvalSettings(run_dir=args.run_dir, n=args.n, seed=args.seed,
                                       curve_temperatures=[], progress=False))
    wall = time.perf_counter() - started
    result = {
        "run_dir": args.run_dir, "checkpoint": report["settings"]["checkpoint"], "n": args.n,
        "samples": report["generation"]["n"], "seconds_without_curve":
            report["seconds_without_curve"], "seconds_by_step": report["seconds_by_step"], "wall_seconds_incl_loading": round(wall, 2),
        "judge_training_seconds": None if judge_seconds is None else round(judge_seconds, 2),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.platform(), "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
