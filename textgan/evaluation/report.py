"""The evaluation of one trained run: every metric of `python -m textgan.evaluate`, as one dict.

    report = evaluate_run(EvalSettings(run_dir="checkpoints/default"))
    write_report(report, Path("checkpoints/default"))   # report.json, report.md, curve PNG, TB

Sections (each records its N, seed and settings; see README "Evaluation" for their meaning):

- `judges`: the independent judges' own held-out accuracy and perplexity (their ceiling).
- `generation`: n samples from z ~ N(0, I), spread evenly over every style; style accuracy per
  attribute and per class by the judge classifier (and by the exact oracle on the synthetic
  corpus, with grammaticality), perplexity under the judge LM, novelty, termination (share that
  ended with EOS before the length limit) and length statistics against the test split.
- `diversity`: BLEU-2/3/4 of the samples against the test sentences (every test sentence a
  reference of every sample), leave-one-out self-BLEU-2/3/4, distinct-1/2/3.
- `transfer`: test sentences moved to every other class of each attribute: judge accuracy of
  the requested class, the other attributes kept (judge), BLEU to the source, and the oracle's
  content preservation on the synthetic corpus; `transfer_file` for a user's file, with BLEU to
  human references when given.
- `vae`: importance-weighted NLL (K samples), KL, per-dimension KL, mutual information, active
  units on the test split.
- `curve`: the generation and diversity metrics across sampling temperatures.

This module runs the sections in order and writes the files; the parts live beside it:
`report_inputs` (EvalSettings, the checkpoint and transfer files, checked first),
`report_sections` (the metrics of each section), `report_markdown` (report.md),
`report_plot` (the curve's PNG) and `report_tensorboard` (TensorBoard scalars, `flat_scalars`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from textgan.corpora.bars import show_bars
from textgan.errors import CheckpointError, SamplingError
from textgan.evaluation.checkpoints import load_run_model
from textgan.evaluation.jsonfile import write_json_atomic, write_text_atomic
from textgan.evaluation.judges import ensure_judges
from textgan.evaluation.report_inputs import EvalSettings, checkpoint_path, read_transfer_inputs
from textgan.evaluation.report_markdown import render_markdown
from textgan.evaluation.report_plot import plot_curve
from textgan.evaluation.report_sections import (
    curve_point,
    diversity_metrics,
    draw_samples,
    generation_metrics,
    judges_summary,
    transfer_file_metrics,
    transfer_metrics,
    vae_metrics,
)
from textgan.evaluation.report_tensorboard import write_tensorboard
from textgan.runs import RunPaths, load_tokenised_corpus

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVE_PNG = "quality_diversity.png"

__all__ = ["CURVE_PNG", "REPORT_JSON", "REPORT_MD", "EvalSettings", "evaluate_run",
           "write_report"]


def evaluate_run(settings: EvalSettings) -> dict[str, Any]:
    """Every metric of the module docstring for the run folder's model, as a JSON-ready dict."""
    run_dir = Path(settings.run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist (train one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    checkpoint = checkpoint_path(run_dir, settings.checkpoint)
    # checked against the run folder's tokenizer: the judges and the corpus split are that
    # folder's, and a checkpoint of another run must be refused as such, not blamed on them
    model = load_run_model(checkpoint, run_dir, named=bool(settings.checkpoint),
                           device=settings.device)
    user_sentences, references = read_transfer_inputs(settings)
    cfg = model.config
    # judges that must be trained first reuse it instead of loading and logging it again
    loaded = load_tokenised_corpus(cfg.data, model.tokenizer)
    corpus, splits = loaded.corpus, loaded.splits
    # "test" below is the split evaluated: the test split unless settings.split says "valid"
    test = splits[settings.split]
    if len(test) == 0:
        why = corpus.empty_splits.get(
            settings.split, f"every {settings.split} sentence is longer than "
                            f"data.max_tokens={cfg.data.max_tokens}")
        raise SamplingError(f"the corpus has an empty {settings.split} split, nothing to "
                            f"evaluate against: {why}")
    train_texts = corpus.splits["train"]["text"]
    test_texts = list(test["text"])
    oracle = cfg.data.source == "synthetic"
    started = time.perf_counter()

    report: dict[str, Any] = {
        "settings": {**asdict(settings), "checkpoint": str(checkpoint), "stage": model.stage,
                     "weights": model.weights, "oracle": oracle,
                     "corpus": cfg.data.source, "test_sentences": len(test)},
    }
    steps = ["judges", "generation", "diversity", "transfer", "vae", "curve"]
    timings: dict[str, float] = {}
    with _progress(steps, settings.progress, timings) as advance:
        judges = ensure_judges(run_dir, model.tokenizer, seed=settings.seed,
                               settings=settings.judges, device=settings.device,
                               progress=settings.progress, loaded=loaded)
        report["judges"] = judges_summary(judges)
        advance("generation")
        samples = draw_samples(model, settings.n, settings.temperature, settings.seed,
                               settings.strategy, settings.no_repeat_ngram)
        report["generation"] = generation_metrics(samples, model, judges, train_texts,
                                                  test, oracle)
        advance("diversity")
        report["diversity"] = diversity_metrics([s.text for s in samples], test_texts)
        advance("transfer")
        report["transfer"] = transfer_metrics(model, judges, test, settings, oracle)
        if user_sentences is not None:
            report["transfer_file"] = transfer_file_metrics(
                model, judges, user_sentences, references, settings)
        advance("vae")
        report["vae"] = vae_metrics(model, test, settings)
        report["seconds_without_curve"] = round(time.perf_counter() - started, 2)
        advance("curve")
        report["curve"] = [curve_point(model, judges, test_texts, temperature, settings, oracle)
                           for temperature in settings.curve_temperatures]
    report["seconds_by_step"] = timings
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


@contextmanager
def _progress(steps: Sequence[str], enabled: bool, timings: dict[str, float]
              ) -> Iterator[Callable[[str], None]]:
    """A bar over the report's steps; `advance(next_step)` also records the seconds each took."""
    bar = tqdm(total=len(steps), desc="evaluate", unit="step", disable=not show_bars(enabled),
               leave=False)
    current = {"step": steps[0], "since": time.perf_counter()}
    bar.set_postfix_str(steps[0])

    def finish_current() -> None:
        now = time.perf_counter()
        timings[current["step"]] = round(now - current["since"], 2)
        current["since"] = now

    def advance(step: str) -> None:
        finish_current()
        current["step"] = step
        bar.update(1)
        bar.set_postfix_str(step)

    try:
        yield advance
        finish_current()
        bar.update(bar.total - bar.n)
    finally:
        bar.close()


def write_report(report: Mapping[str, Any], run_dir: Path) -> dict[str, Path]:
    """report.json, report.md and the quality-diversity PNG in the run folder; TB scalars."""
    out = {"json": run_dir / REPORT_JSON, "md": run_dir / REPORT_MD}
    write_json_atomic(out["json"], report)
    write_text_atomic(out["md"], render_markdown(report))
    if report.get("curve"):
        out["png"] = run_dir / CURVE_PNG
        plot_curve(report["curve"], out["png"])
    write_tensorboard(report, RunPaths(run_dir).tensorboard_dir("evaluate"))
    return out
