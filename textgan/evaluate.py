"""Evaluate a trained run with independent judges and exact metrics; write report.json/md.

On a CPU (the tiny preset in seconds, the default preset in about a minute):

    python -m textgan.evaluate --run-dir checkpoints/default
    python -m textgan.evaluate --run-dir checkpoints/default --n 5000 --seed 0 --no-curve
    python -m textgan.evaluate --run-dir checkpoints/default \\
        --transfer-file mine.txt --style sentiment=positive --references mine.ref.txt
    python -m textgan.evaluate train-judges --run-dir checkpoints/default

The judges -- a bag-of-n-grams style classifier per attribute and a GRU language model, trained
on the run's training split and stored in <run>/judges/ -- are trained first when missing
(`train-judges` retrains them on request). Each judge trains for at most --judge-epochs epochs
and --judge-time seconds (the LM on at most --judge-lm-sentences sentences), logs a line per
epoch, and is saved as soon as it is trained: a run stopped while the LM trains keeps the
classifier, and the next run reuses it. report.md gives the classifier's test accuracy and the
LM's check of real test sentences against the same words shuffled. On the synthetic corpus the
exact oracle also judges grammaticality, attributes and content. Metrics: style accuracy per
attribute and class, perplexity under the judge LM, novelty, termination and lengths of --n
samples; BLEU against the test set, self-BLEU-2/3/4 (leave-one-out, equal to sacrebleu's) and
distinct-1/2/3; style transfer of the test split (accuracy, other attributes kept, BLEU to the
source, oracle content); importance-weighted NLL, KL, MI and active units; and a
quality-diversity curve over --curve-temperatures. --no-repeat-ngram N decodes the samples and
transfers without repeating an N-gram (the VAE metrics measure the model itself). Results go to
<run>/report.json, <run>/report.md, <run>/quality_diversity.png and TensorBoard
(<run>/tb/evaluate).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgan.cli import (
    HelpFormatter,
    add_transfer_arguments,
    non_negative_int,
    positive_int,
    positive_numbers,
    run_main,
    whole_number,
)
from textgan.devices import add_device_argument, denormals_flushed, resolve_device
from textgan.errors import CheckpointError, SamplingError

log = logging.getLogger("textgan.evaluate")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got '{text}'") from None
    if not value >= 0:  # nan too
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: no limit), got {text}")
    return value


def _count(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: all), got {value}")
    return value


# JudgeSettings' defaults of the judge flags, repeated here so that --help (and a bad flag) need
# not import torch; tests/test_evaluate.py keeps them equal to the dataclass's.
JUDGE_EPOCHS = 6
JUDGE_SECONDS = 900.0
JUDGE_LM_SENTENCES = 40_000


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
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="the split the report reads (references, transfers, the VAE's "
                             "metrics): valid to choose decoding settings such as "
                             "--style-strengths without looking at the test split (the judges "
                             "chose their epochs on valid, so its scores lean a little high)")
    parser.add_argument("--n", type=positive_int, default=5000,
                        help="samples, spread evenly over every style combination")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling and of the judges")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature of the --n samples")
    parser.add_argument("--strategy", choices=("sample", "greedy"), default="sample",
                        help="decoding of the --n samples: sample (at --temperature), or greedy "
                             "(each z decoded to its most likely words: diversity from z alone)")
    parser.add_argument("--no-repeat-ngram", metavar="N", type=non_negative_int, default=0,
                        help="decode samples and transfers without writing an N-gram twice in "
                             "a sentence (0 = off; 2 stops greedy loops such as 'great great "
                             "great'); the VAE's reconstruction BLEU stays plain greedy")
    parser.add_argument("--transfer-n", type=positive_int, default=1000,
                        help="test sentences per attribute moved to every other class")
    add_transfer_arguments(parser)
    parser.add_argument("--iw-samples", type=positive_int, default=16,
                        help="K of the importance-weighted NLL")
    parser.add_argument("--curve-temperatures", type=positive_numbers, default=[0.5, 0.7, 1.0, 1.3],
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
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="hide progress bars (the judges' per-epoch log lines stay)")
    parser.add_argument("--retrain-judges", action="store_true",
                        help="train-judges: replace judges that already exist (none reused)")
    judges = parser.add_argument_group(
        "judges", "How the judges train when <run>/judges holds none (or the part a stopped\n"
                  "run left). Judges trained with other values are refused: delete <run>/judges\n"
                  "or run train-judges --retrain-judges.")
    judges.add_argument("--judge-epochs", type=positive_int, metavar="N", default=JUDGE_EPOCHS,
                        help="most epochs of each judge (the best validation epoch is kept)")
    judges.add_argument("--judge-time", type=_seconds, metavar="SECONDS", default=JUDGE_SECONDS,
                        help="training time of each judge, a guard: when it runs out the best "
                             "weights so far are kept, but they then depend on the machine's "
                             "speed (0: no limit)")
    judges.add_argument("--judge-lm-sentences", type=_count, metavar="N",
                        default=JUDGE_LM_SENTENCES,
                        help="training sentences of the judge LM, a seeded sample (0: all)")
    return parser


def judge_settings(args: argparse.Namespace) -> Any:
    """The JudgeSettings the flags ask for: the defaults, with the flags' epochs and limits."""
    from textgan.evaluation.judges import JudgeSettings

    return dataclasses.replace(
        JudgeSettings(), classifier_epochs=args.judge_epochs, lm_epochs=args.judge_epochs,
        classifier_time_limit=args.judge_time, lm_time_limit=args.judge_time,
        lm_max_sentences=args.judge_lm_sentences)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = build_parser().parse_args(argv)
    import datasets

    from textgan.evaluation.judges import REPORT_FILE, judges_dir, train_judges
    from textgan.evaluation.report import EvalSettings, evaluate_run, write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist (train one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    if args.no_progress:
        datasets.disable_progress_bars()  # the judges' tokenising bars too
    # A string, as the report records it ("cuda", "cpu", "cuda:1").
    device = str(resolve_device(args.device))
    judges_wanted = judge_settings(args)
    if args.command == "train-judges":
        # Only a complete set (judges.json) needs asking: a judge file alone is what a stopped
        # call left, and train_judges goes on from it.
        if (judges_dir(run_dir) / REPORT_FILE).is_file() and not args.retrain_judges:
            raise CheckpointError(f"{judges_dir(run_dir)} holds trained judges; pass "
                                  "--retrain-judges to replace them")
        with denormals_flushed():
            judges = train_judges(run_dir, seed=args.seed, settings=judges_wanted,
                                  device=device, progress=not args.no_progress,
                                  reuse=not args.retrain_judges)
        _print_judges(judges.report)
        return judges.report
    if args.style and not args.transfer_file:
        raise SamplingError("--style sets the target of --transfer-file; give that file too")
    settings = EvalSettings(
        run_dir=str(run_dir), checkpoint=args.checkpoint, split=args.split, n=args.n,
        seed=args.seed,
        temperature=args.temperature, strategy=args.strategy,
        no_repeat_ngram=args.no_repeat_ngram, transfer_n=args.transfer_n,
        style_strengths=args.style_strengths, min_confidence=args.min_confidence,
        iw_samples=args.iw_samples,
        curve_temperatures=[] if args.no_curve else args.curve_temperatures,
        curve_n=args.curve_n, transfer_file=args.transfer_file, transfer_style=args.style,
        references=args.references, device=device, progress=not args.no_progress,
        judges=judges_wanted)
    with denormals_flushed():  # the judges train, the VAE's importance-weighted NLL
        report = evaluate_run(settings)
    written = write_report(report, run_dir)
    sys.stdout.write(Path(written["md"]).read_text(encoding="utf-8"))
    log.info("wrote %s", ", ".join(str(path) for path in written.values()))
    return report


def _print_judges(report: dict[str, Any]) -> None:
    from textgan.evaluation.report_markdown import STOPPED_BY

    classifier = report.get("classifier") or {}
    lm = report.get("lm") or {}
    for attribute, accuracy in (classifier.get("test_accuracy") or {}).items():
        shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
        sys.stdout.write(f"judge classifier, test accuracy {attribute}: {shown}\n")
    sys.stdout.write(f"judge LM, test perplexity: {lm.get('test_ppl')}\n")
    check = lm.get("check")
    if check:
        sys.stdout.write(
            f"judge LM, {check['sentences']} test sentences against their words shuffled: "
            f"per-token NLL {check['real_nll']:.3f} vs {check['shuffled_nll']:.3f}, real order "
            f"better in {check['real_better']:.1%}\n")
    for name, section in (("classifier", classifier), ("LM", lm)):
        if section.get("stopped_by"):
            stopped = STOPPED_BY.get(section["stopped_by"], section["stopped_by"])
            sys.stdout.write(f"judge {name}: epoch {section.get('epoch')} kept of "
                             f"{section.get('epochs_run')}, stopped by {stopped}, "
                             f"{section.get('seconds')} s\n")


if __name__ == "__main__":
    run_main(main)
