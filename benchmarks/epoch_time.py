"""Wall time of one epoch of each stage on a large synthetic corpus, through the real commands.

    python -m benchmarks.epoch_time                        # 100k sentences, default preset
    python -m benchmarks.epoch_time --sentences 20000 --set train.precision=bf16

Runs `textgan.pretrain` and then `textgan.train` for one epoch each in a temporary run folder
(corpus generation and tokenizer training are timed apart, as "prepare"), with validation and
checkpoints as a user's run has them, and prints and writes (benchmarks/results/
epoch_time_<preset>_<sentences>.json) the seconds of each. The synthetic corpus is split 90/5/5,
so --sentences 100000 trains on 90,000 sentences. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import textgan.pretrain as pretrain
import textgan.train as train
from textgan.cli import setup_logging
from textgan.config import load_config
from textgan.corpora import load_corpus
from textgan.devices import add_device_argument

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--sentences", type=int, default=100_000,
                        help="synthetic corpus size (train + valid + test)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="config override (repeatable)")
    add_device_argument(parser)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    setup_logging()

    overrides = [f"--data.synthetic_size={args.sentences}", "--pretrain.epochs=1",
                 "--train.epochs=1", *(f"--{item}" for item in args.overrides)]
    cfg = load_config(args.preset, overrides=[item[2:] for item in overrides])
    report: dict[str, Any] = {"preset": args.preset, "sentences": args.sentences,
                              "overrides": overrides, "device": args.device}
    started = time.perf_counter()
    corpus = load_corpus(cfg.data)  # generated on first use, then cached on disk
    report["train_sentences"] = len(corpus.splits["train"])
    report["prepare_s"] = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="textgan-epoch-") as folder:
        common = ["--preset", args.preset, "--run-dir", folder, "--device", args.device,
                  "--no-progress", *overrides]
        for name, stage in (("pretrain", pretrain), ("train", train)):
            started = time.perf_counter()
            result = stage.main(common)
            report[f"{name}_epoch_s"] = time.perf_counter() - started
            report[f"{name}_iterations"] = result["iteration"]

    out = args.out or RESULTS / f"epoch_time_{args.preset}_{args.sentences}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{args.sentences} sentences ({report['train_sentences']} train), preset "
          f"{args.preset}: corpus {report['prepare_s']:.1f} s, pretrain epoch "
          f"{report['pretrain_epoch_s']:.1f} s ({report['pretrain_iterations']} iterations), "
          f"train epoch {report['train_epoch_s']:.1f} s ({report['train_iterations']} "
          f"iterations); {out}")
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
