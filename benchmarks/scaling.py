"""Throughput against batch size and hidden size: a grid of `benchmarks/throughput.py` runs.

    python benchmarks/scaling.py                              # default preset, ~5 min on 2 cores
    python benchmarks/scaling.py --batch-sizes 64,256 --hidden-sizes 256 --iterations 10

Each grid point is one `throughput.main` call with `data.batch_size` / `model.hidden_dim`
overridden (everything else from --preset), so each measures its own matmul peak and its "% of
peak" survives a noisy machine. One axis moves at a time from the preset's values: the batch
sizes at the preset's hidden size, then the hidden sizes at the preset's batch size. Prints a
table and writes JSON to --out (default benchmarks/results/scaling_<preset>.json, git-ignored).
Nothing is asserted. Vocabulary size and sentence length are not swept here: the synthetic
language has ~380 words and fixed sentence shapes, so they need another corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (the sibling benchmark script)

from textgan.config import load_config  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch-sizes", type=_ints, default=[32, 64, 128, 256])
    parser.add_argument("--hidden-sizes", type=_ints, default=[128, 256, 512])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cfg = load_config(args.preset)
    points = [("batch", b, [f"data.batch_size={b}"]) for b in args.batch_sizes]
    points += [("hidden", h, [f"model.hidden_dim={h}"]) for h in args.hidden_sizes]
    rows = []
    for axis, value, overrides in points:
        argv_point = ["--preset", args.preset, "--iterations", str(args.iterations),
                      "--samples", "500", "--count-iterations", "0",
                      "--out", str(throughput.RESULTS / "scaling_point.json")]
        for item in overrides:
            argv_point += ["--set", item]
        with contextlib.redirect_stdout(io.StringIO()):  # keep only this script's table
            report = throughput.main(argv_point)
        row = {"axis": axis, "value": value,
               "batch_size": cfg.data.batch_size if axis != "batch" else value,
               "hidden_dim": cfg.model.hidden_dim if axis != "hidden" else value,
               "peak_flops_per_s": report["peak"]["flops_per_s"]}
        for stage in ("pretrain", "adversarial"):
            row[f"{stage}_tokens_per_s"] = report[stage]["tokens_per_s"]
            row[f"{stage}_fraction_of_peak"] = report[stage]["fraction_of_peak"]
        row["sampling_sentences_per_s"] = report["sampling"]["sentences_per_s"]
        rows.append(row)
        print(f"{axis:>6} {value:>4}: pretrain {row['pretrain_tokens_per_s']:8.0f} tok/s "
              f"{100 * row['pretrain_fraction_of_peak']:5.1f}% | adversarial "
              f"{row['adversarial_tokens_per_s']:7.0f} tok/s "
              f"{100 * row['adversarial_fraction_of_peak']:5.1f}% | sampling "
              f"{row['sampling_sentences_per_s']:6.0f} sent/s | peak "
              f"{row['peak_flops_per_s'] / 1e9:5.0f} GFLOP/s", flush=True)
    out = args.out or throughput.RESULTS / f"scaling_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
