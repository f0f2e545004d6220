"""Evaluate a trained run with independent judges and exact metrics; write report.json/md.

On a CPU (the tiny preset in seconds, the default preset in about a minute):

    python -m textgan.evaluate --run-dir checkpoints/default
    python -m textgan.evaluate --run-dir checkpoints/default --n 5000 --seed 0 --no-curve
    python -m textgan.evaluate --run-dir checkpoints/default \\
        --transfer-file mine.txt --style sentiment=positive --references mine.ref.txt
    python -m textgan.evaluate train-judges --run-dir checkpoints/default

The judges -- a bag-of-n-grams style classifier per attribute and a GRU language model, trained
on the run's training split and stored in <run>/judges/ -- are trained first when missing
(`train-judges` retrains them on request). On the synthetic corpus the exact oracle also judges
grammaticality, attributes and content. Metrics: style accuracy per attribute and class,
perplexity under the judge LM, novelty, termination and lengths of --n samples; BLEU against the
test set, self-BLEU-2/3/4 (leave-one-out, equal to sacrebleu's) and distinct-1/2/3; style
transfer of the test split (accuracy, other attributes kept, BLEU to the source, oracle content);
importance-weighted NLL, KL, MI and active units; and a quality-diversity curve over
--curve-temperatures. Results go to <run>/report.json, <run>/report.md,
<run>/quality_diversity.png and TensorBoard (<run>/tb/evaluate).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgan.cli import HelpFormatter, positive_int, run_main
from textgan.errors import CheckpointError, SamplingError

log = logging.getLogger("textgan.evaluate")


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("temperatures must be positive")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textgan.evaluate", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("command", nargs="?", default="report", choices=("report", "train-judges"),
                        help="report: evaluate and write the report (default); train-judges: "
                             "(re)train the judges only")
    parser.add_argument("--run-dir", required=True, help="run folder of textgan.pretrain/train")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="checkpoint to evaluate (default: the run folder's newest train "
                             "checkpoint, else its newest pretrain one)")
    parser.add_argument("--n", type=positive_int, default=5000,
                        help="samples, spread evenly over every style combination")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling and of the judges")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature of the --n samples")
    parser.add_argument("--transfer-n", type=positive_int, default=1000,
                        help="test sentences per attribute moved to every other class")
    parser.add_argument("--iw-samples", type=positive_int, default=16,
                        help="K of the importance-weighted NLL")
    parser.add_argument("--curve-temperatures", type=_temperatures, default=[0.5, 0.7, 1.0, 1.3],
                        help="temperatures of the quality-diversity curve, comma-separated")
    parser.add_argument("--curve-n", type=positive_int, default=1000,
                        help="samples per temperature of the curve")
    parser.add_argument("--no-curve", action="store_true", help="skip the curve")
    parser.add_argument("--transfer-file", default=None,
                        help="also transfer these sentences (one per line) to --style")
    parser.add_argument("--style", default=None,
                        help="target style of --transfer-file, e.g. sentiment=positive")
    parser.add_argument("--references", default=None,
                        help="human references of --transfer-file, one per line, same order")
    parser.add_argument("--device", default="auto", help="'auto' (cuda when available) or a "
                                                         "torch device")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--retrain-judges", action="store_true",
                        help="train-judges: replace judges that already exist")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = build_parser().parse_args(argv)
    import datasets
    import torch

    from textgan.evaluation.judges import judges_dir, train_judges
    from textgan.evaluation.report import EvalSettings, evaluate_run, write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist (train one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    if args.no_progress:
        datasets.disable_progress_bars()  # the judges' tokenising bars too
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    if args.command == "train-judges":
        if judges_dir(run_dir).exists() and not args.retrain_judges:
            raise CheckpointError(f"{judges_dir(run_dir)} exists; pass --retrain-judges to "
                                  "replace those judges")
        judges = train_judges(run_dir, seed=args.seed, device=device,
                              progress=not args.no_progress)
        _print_judges(judges.report)
        return judges.report
    if args.style and not args.transfer_file:
        raise SamplingError("--style sets the target of --transfer-file; give that file too")
    settings = EvalSettings(
        run_dir=str(run_dir), checkpoint=args.checkpoint, n=args.n, seed=args.seed,
        temperature=args.temperature, transfer_n=args.transfer_n, iw_samples=args.iw_samples,
        curve_temperatures=[] if args.no_curve else args.curve_temperatures,
        curve_n=args.curve_n, transfer_file=args.transfer_file, transfer_style=args.style,
        references=args.references, device=device, progress=not args.no_progress)
    report = evaluate_run(settings)
    written = write_report(report, run_dir)
    sys.stdout.write(Path(written["md"]).read_text(encoding="utf-8"))
    log.info("wrote %s", ", ".join(str(path) for path in written.values()))
    return report


def _print_judges(report: dict[str, Any]) -> None:
    classifier = report.get("classifier") or {}
    lm = report.get("lm") or {}
    for attribute, accuracy in (classifier.get("test_accuracy") or {}).items():
        sys.stdout.write(f"judge classifier, test accuracy {attribute}: {accuracy:.4f}\n")
    sys.stdout.write(f"judge LM, test perplexity: {lm.get('test_ppl')}\n")


if __name__ == "__main__":
    run_main(main)
