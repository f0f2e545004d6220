"""The evaluation of one trained run: every metric of `python -m textgan.evaluate`, as one dict.

    report = evaluate_run(EvalSettings(run_dir="checkpoints/default"))
    write_report(report, Path("checkpoints/default"))   # report.json, report.md, curve PNG

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
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU
from tqdm.auto import tqdm

from textgan.corpora import load_corpus
from textgan.corpora.bars import show_bars
from textgan.corpora.oracle import parse_many
from textgan.data import make_loader, tokenize_corpus
from textgan.errors import CheckpointError, SamplingError
from textgan.evaluation.checkpoints import load_run_model
from textgan.evaluation.diversity import distinct, novelty, self_bleu, set_bleu
from textgan.evaluation.jsonfile import write_json_atomic, write_text_atomic
from textgan.evaluation.judges import Judges, JudgeSettings, LoadedCorpus, ensure_judges
from textgan.evaluation.oracle_scores import score_samples, score_transfers
from textgan.evaluation.vae_health import importance_weighted_nll
from textgan.sampling import (
    LoadedModel,
    SampledSentence,
    all_styles,
    find_checkpoint,
    parse_style,
    sample_by_style,
    transfer,
)
from textgan.validation import create_vae_evaluator

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVE_PNG = "quality_diversity.png"
BLEU_ORDERS = (2, 3, 4)
# what ended a judge's training (judges.json "stopped_by"), in words
STOPPED_BY = {"epochs": "the epoch limit", "patience": "no better validation score",
              "time_limit": "the time limit"}


@dataclass
class EvalSettings:
    """What `evaluate_run` measures and how; saved in the report."""

    run_dir: str
    checkpoint: str | None = None          # default: the run folder's choice (find_checkpoint)
    n: int = 5000                          # samples, spread evenly over the styles
    seed: int = 0
    temperature: float = 1.0               # sampling temperature of the main samples
    strategy: str = "sample"               # the main samples: "sample" (at temperature) or
                                           # "greedy" (diversity from z alone)
    transfer_n: int = 1000                 # test sentences per attribute for transfer
    iw_samples: int = 16                   # K of the importance-weighted NLL
    curve_temperatures: list[float] = field(default_factory=lambda: [0.5, 0.7, 1.0, 1.3])
    curve_n: int = 1000                    # samples per temperature of the curve
    transfer_file: str | None = None       # a user's sentences to transfer to transfer_style
    transfer_style: str | None = None
    references: str | None = None          # human references of transfer_file, line by line
    device: str = "cpu"
    progress: bool = True
    judges: JudgeSettings | None = None    # how missing judges train (None: the defaults)


def evaluate_run(settings: EvalSettings) -> dict[str, Any]:
    """Every metric of the module docstring for the run folder's model, as a JSON-ready dict."""
    run_dir = Path(settings.run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist (train one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    checkpoint = _checkpoint_path(run_dir, settings.checkpoint)
    # checked against the run folder's tokenizer: the judges and the corpus split are that
    # folder's, and a checkpoint of another run must be refused as such, not blamed on them
    model = load_run_model(checkpoint, run_dir, named=bool(settings.checkpoint),
                           device=settings.device)
    user_sentences, references = _read_transfer_inputs(settings)
    cfg = model.config
    corpus = load_corpus(cfg.data)
    splits, _ = tokenize_corpus(corpus, model.tokenizer, cfg.data.max_tokens)
    # judges that must be trained first reuse these instead of loading and logging them again
    loaded = LoadedCorpus(data=cfg.data, tokenizer_sha256=model.tokenizer.sha256, corpus=corpus,
                          splits=splits)
    test = splits["test"]
    if len(test) == 0:
        why = corpus.empty_splits.get("test", f"every test sentence is longer than "
                                               f"data.max_tokens={cfg.data.max_tokens}")
        raise SamplingError(f"the corpus has an empty test split, nothing to evaluate against: "
                            f"{why}")
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
        report["judges"] = _judges_summary(judges)
        advance("generation")
        samples = _samples(model, settings.n, settings.temperature, settings.seed,
                           settings.strategy)
        report["generation"] = _generation_metrics(samples, model, judges, train_texts,
                                                   test, oracle)
        advance("diversity")
        report["diversity"] = _diversity_metrics([s.text for s in samples], test_texts)
        advance("transfer")
        report["transfer"] = _transfer_metrics(model, judges, test, settings, oracle)
        if user_sentences is not None:
            report["transfer_file"] = _transfer_file_metrics(
                model, judges, user_sentences, references, settings)
        advance("vae")
        report["vae"] = _vae_metrics(model, test, settings)
        report["seconds_without_curve"] = round(time.perf_counter() - started, 2)
        advance("curve")
        report["curve"] = [_curve_point(model, judges, test_texts, temperature, settings, oracle)
                           for temperature in settings.curve_temperatures]
    report["seconds_by_step"] = timings
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# --------------------------------------------------------------------------- inputs


def _checkpoint_path(run_dir: Path, given: str | None) -> Path:
    """The run folder's choice, or the file given (looked up inside the run folder as well)."""
    if not given:
        return find_checkpoint(run_dir)
    for candidate in (Path(given), run_dir / given):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"checkpoint {given} not found (nor in {run_dir})")


def _read_transfer_inputs(settings: EvalSettings) -> tuple[list[str] | None, list[str] | None]:
    """The user's transfer file and references, checked before any slow work."""
    if settings.references and not settings.transfer_file:
        raise SamplingError("--references needs --transfer-file: references belong to the "
                            "transfers of that file, line by line")
    if not settings.transfer_file:
        return None, None
    if not settings.transfer_style:
        raise SamplingError("--transfer-file needs --style: the style to transfer to, e.g. "
                            "--style sentiment=positive")
    sentences = _read_lines(settings.transfer_file, "transfer file")
    references = None
    if settings.references:
        references = _read_lines(settings.references, "reference file")
        if len(references) != len(sentences):
            raise SamplingError(
                f"the reference file {settings.references} has {len(references)} sentences but "
                f"the transfer file {settings.transfer_file} has {len(sentences)}: one "
                "reference per sentence, line by line")
    return sentences, references


def _read_lines(path: str, what: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise SamplingError(f"{what} {path} does not exist")
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise SamplingError(f"{what} {path} holds no sentences")
    return lines


# --------------------------------------------------------------------------- sections


def _judges_summary(judges: Judges) -> dict[str, Any]:
    classifier = judges.report.get("classifier") or {}
    lm = judges.report.get("lm") or {}
    # how each judge's training ended (None for judges saved before it was recorded)
    training = ("epoch", "epochs_run", "stopped_by", "seconds", "train_sentences")
    return {"classifier_test_accuracy": classifier.get("test_accuracy", {}),
            "lm_test_ppl": lm.get("test_ppl"),
            "lm_check": lm.get("check"),  # real test sentences against their words shuffled
            "classifier_training": {key: classifier.get(key) for key in training}
            if classifier else None,
            "lm_training": {key: lm.get(key) for key in training},
            "seed": judges.seed, "settings": judges.settings.to_dict()}


def _samples(model: LoadedModel, n: int, temperature: float, seed: int,
             strategy: str = "sample") -> list[SampledSentence]:
    """About n samples spread evenly over the styles (n // styles each, at least one)."""
    per_style = max(1, n // len(all_styles(model.attributes)))
    return sample_by_style(model, per_style, strategy=strategy, temperature=temperature,
                           seed=seed)


def _style_accuracy(samples: Sequence[SampledSentence], model: LoadedModel,
                    judges: Judges) -> dict[str, float]:
    """Judge accuracy of the requested class, per attribute and per attribute=class."""
    if not model.attributes:
        return {}
    predicted = judges.classify([s.text for s in samples])
    scores: dict[str, float] = {}
    for (attribute, classes), guesses in zip(model.attributes.items(), predicted):
        wanted = np.array([classes.index(s.style[attribute]) for s in samples])
        hits = guesses == wanted
        scores[f"acc_{attribute}"] = float(hits.mean())
        for index, name in enumerate(classes):
            chosen = wanted == index
            if chosen.any():
                scores[f"acc_{attribute}={name}"] = float(hits[chosen].mean())
    return scores


def _generation_metrics(samples: Sequence[SampledSentence], model: LoadedModel, judges: Judges,
                        train_texts: Sequence[str], test: Any, oracle: bool) -> dict[str, Any]:
    texts = [s.text for s in samples]
    sample_lengths = [len(t.split()) for t in texts]
    test_lengths = [len(t.split()) for t in test["text"]]
    metrics: dict[str, Any] = {
        "n": len(samples),
        "judge": _style_accuracy(samples, model, judges),
        "judge_lm_ppl": judges.perplexity(texts),
        # the same judge on real test sentences: the samples' perplexity reads against it
        "test_judge_lm_ppl": judges.perplexity(list(test["text"])),
        "novelty": novelty(texts, train_texts),
        "ended": float(np.mean([s.ended for s in samples])),
        "length_mean": statistics.fmean(sample_lengths),
        "length_std": statistics.pstdev(sample_lengths),
        "test_length_mean": statistics.fmean(test_lengths),
        "test_length_std": statistics.pstdev(test_lengths),
    }
    if oracle:
        metrics["oracle"] = score_samples(samples)
    return metrics


def _diversity_metrics(texts: Sequence[str], test_texts: Sequence[str]) -> dict[str, Any]:
    metrics: dict[str, Any] = {"n": len(texts), "references": len(test_texts)}
    signatures = {}
    for order in BLEU_ORDERS:
        against_test = set_bleu(texts, test_texts, order)
        metrics[f"bleu_{order}"] = against_test.score
        signatures[f"bleu_{order}"] = against_test.signature
        if len(texts) >= 2:
            own = self_bleu(texts, order)
            metrics[f"self_bleu_{order}"] = own.score
            signatures[f"self_bleu_{order}"] = own.signature
    metrics.update(distinct(texts))
    # real text repeats itself too (frequent phrases, short sentences): the test split's own
    # self-BLEU-4 over as many sentences is the level the samples' reads against
    real = list(test_texts[: len(texts)])
    if len(real) >= 2:
        own = self_bleu(real, 4)
        metrics["test_self_bleu_4"] = own.score
        metrics["test_self_bleu_n"] = len(real)
        signatures["test_self_bleu_4"] = own.signature
    metrics["signatures"] = signatures
    return metrics


def _transfer_metrics(model: LoadedModel, judges: Judges, test: Any, settings: EvalSettings,
                      oracle: bool) -> dict[str, Any]:
    """Every test sentence (up to transfer_n per attribute) to every other class of each
    attribute; scores pooled per attribute over the target classes."""
    results: dict[str, Any] = {}
    bleu = _source_bleu()
    all_texts = list(test["text"])
    for a, (attribute, classes) in enumerate(model.attributes.items()):
        labels = np.asarray(test[attribute])
        known = np.flatnonzero(labels >= 0)[: settings.transfer_n]
        if known.size == 0:
            continue
        sources, outputs, wanted, source_rows = [], [], [], []
        per_target, judged_by_target = {}, {}
        for index, name in enumerate(classes):
            rows = [int(i) for i in known if labels[i] != index]
            if not rows:
                continue
            texts = [all_texts[i] for i in rows]
            moved = transfer(model, texts, {attribute: name}, seed=settings.seed)
            outs = [m.text for m in moved]
            if oracle:
                per_target[name] = score_transfers(texts, outs, {attribute: name})
            judged_by_target[name] = {
                "n": len(outs),
                "judge_acc": float(np.mean(judges.classify(outs)[a] == index)),
                "bleu_source": bleu.corpus_score(outs, [texts]).score}
            sources += texts
            outputs += outs
            wanted += [index] * len(rows)
            source_rows += rows
        predicted = judges.classify(outputs)
        hits = predicted[a] == np.asarray(wanted)
        kept = _others_kept(model, test, source_rows, predicted, skip=attribute)
        entry: dict[str, Any] = {
            "n": len(outputs), "judge_acc": float(hits.mean()), "judge_other_kept": kept,
            "bleu_source": bleu.corpus_score(outputs, [sources]).score,
            "copied": float(np.mean([s == o for s, o in zip(sources, outputs)])),
            # fluency: a transfer that fools the judge with repeated style words reads badly
            # to the judge LM; the sources' perplexity is the level to read it against
            "judge_lm_ppl": judges.perplexity(outputs),
            "source_judge_lm_ppl": judges.perplexity(sources),
            "by_target": judged_by_target,  # each direction apart: accuracy, BLEU to source
        }
        if per_target:
            entry["oracle"] = _pooled(per_target)
            entry["oracle_by_target"] = per_target
        results[attribute] = entry
    results["bleu_signature"] = str(bleu.get_signature()) if results else None
    return results


def _source_bleu() -> BLEU:
    """Corpus BLEU of transfers against their sources (and references): sacrebleu's 13a
    tokenizer, lowercased, as style-transfer papers report it. force: the sources come from the
    corpus as written, and a corpus distributed tokenized (Yelp's " .") would only trip
    sacrebleu's "forgot to detokenize" warning; force changes neither score nor signature."""
    return BLEU(lowercase=True, force=True)


def _others_kept(model: LoadedModel, test: Any, rows: Sequence[int],
                 predicted: Sequence[np.ndarray], *, skip: str) -> float | None:
    """Judge: share of (sentence, other attribute) pairs whose known source label survived."""
    hits, total = 0, 0
    for b, attribute in enumerate(model.attributes):
        if attribute == skip:
            continue
        source = np.asarray(test[attribute])[list(rows)]
        known = source >= 0
        hits += int((predicted[b][known] == source[known]).sum())
        total += int(known.sum())
    return hits / total if total else None


def _pooled(per_target: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    total = sum(scores["n"] for scores in per_target.values())
    keys = [key for key in next(iter(per_target.values())) if key != "n"]
    pooled = {key: sum(s[key] * s["n"] for s in per_target.values()) / total for key in keys}
    return {"n": float(total), **pooled}


def _transfer_file_metrics(model: LoadedModel, judges: Judges, sentences: list[str],
                           references: list[str] | None, settings: EvalSettings
                           ) -> dict[str, Any]:
    moved = transfer(model, sentences, settings.transfer_style or "", seed=settings.seed,
                     truncate=True)
    outputs = [m.text for m in moved]
    target = moved[0].target_style if moved else {}
    bleu = _source_bleu()
    entry: dict[str, Any] = {"file": settings.transfer_file, "style": settings.transfer_style,
                             "n": len(outputs),
                             "bleu_source": bleu.corpus_score(outputs, [sentences]).score}
    requested = _requested(settings.transfer_style or "", model)
    predicted = judges.classify(outputs) if model.attributes else []
    for b, (attribute, classes) in enumerate(model.attributes.items()):
        if attribute in requested:
            index = classes.index(target[attribute])
            entry[f"judge_acc_{attribute}"] = float((predicted[b] == index).mean())
    if references is not None:
        entry["references"] = settings.references
        entry["bleu_references"] = bleu.corpus_score(outputs, [references]).score
    entry["bleu_signature"] = str(bleu.get_signature())
    entry["examples"] = [{"source": s, "output": o} for s, o in zip(sentences[:5], outputs[:5])]
    return entry


def _requested(style: str, model: LoadedModel) -> set[str]:
    return set(parse_style(style, model.attributes))


def _vae_metrics(model: LoadedModel, test: Any, settings: EvalSettings) -> dict[str, Any]:
    cfg = model.config
    loader = make_loader(test, model.tokenizer, list(model.attributes),
                         batch_size=cfg.data.batch_size, bucket_batches=cfg.data.bucket_batches,
                         shuffle=False, seed=settings.seed)
    iw = importance_weighted_nll(model.encoder, model.generator, loader,
                                 num_classes=model.num_classes, samples=settings.iw_samples,
                                 device=model.device, seed=settings.seed)
    evaluator = create_vae_evaluator(model.encoder, model.generator, tokenizer=model.tokenizer,
                                     num_classes=model.num_classes, max_len=cfg.data.max_tokens,
                                     device=model.device, seed=settings.seed)
    metrics = evaluator.run(loader).metrics
    per_dim = metrics["kl_per_dim"]
    return {
        "iw_samples": iw.samples, "sentences": iw.sentences,
        "iw_nll_per_sentence": iw.nll_per_sentence, "iw_nll_per_token": iw.nll_per_token,
        "iw_ppl": iw.ppl, "kl": float(metrics["kl"]), "mi": float(metrics["mi"]),
        "active_units": int(metrics["active_units"]),
        "kl_per_dim": [round(float(v), 4) for v in per_dim],
        "elbo": float(metrics["elbo"]), "reconstruction_bleu": float(metrics["bleu"]),
    }


def _curve_point(model: LoadedModel, judges: Judges, test_texts: Sequence[str],
                 temperature: float, settings: EvalSettings, oracle: bool) -> dict[str, Any]:
    samples = _samples(model, settings.curve_n, temperature, settings.seed)
    texts = [s.text for s in samples]
    accuracy = _style_accuracy(samples, model, judges)
    per_attribute = [v for k, v in accuracy.items() if "=" not in k]
    point: dict[str, Any] = {
        "temperature": temperature, "n": len(samples),
        "judge_acc": float(np.mean(per_attribute)) if per_attribute else None,
        "judge_lm_ppl": judges.perplexity(texts),
        "bleu_4": set_bleu(texts, test_texts, 4).score,
        "self_bleu_4": self_bleu(texts, 4).score if len(texts) >= 2 else None,
        **distinct(texts),
    }
    if oracle:
        point["oracle_grammatical"] = float(np.mean([p.grammatical for p in parse_many(texts)]))
    return point


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


# --------------------------------------------------------------------------- output


def write_report(report: Mapping[str, Any], run_dir: Path) -> dict[str, Path]:
    """report.json, report.md and the quality-diversity PNG in the run folder; TB scalars."""
    out = {"json": run_dir / REPORT_JSON, "md": run_dir / REPORT_MD}
    write_json_atomic(out["json"], report)
    write_text_atomic(out["md"], render_markdown(report))
    if report.get("curve"):
        out["png"] = run_dir / CURVE_PNG
        plot_curve(report["curve"], out["png"])
    _write_tensorboard(report, run_dir / "tb" / "evaluate")
    return out


def flat_scalars(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of the report (but settings, per-dim lists and the curve) as tag -> value."""
    scalars: dict[str, float] = {}
    for key, value in report.items():
        if key in ("settings", "curve", "signatures", "kl_per_dim", "examples",
                   "oracle_by_target", "seconds_by_step"):
            continue
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            scalars.update(flat_scalars(value, tag + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[tag] = float(value)
    return scalars


def _write_tensorboard(report: Mapping[str, Any], folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    step = _checkpoint_iteration(report["settings"]["checkpoint"])
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for tag, value in flat_scalars(report).items():
            writer.add_scalar(f"evaluate/{tag}", value, step)
        for point in report.get("curve", []):
            for key, value in point.items():
                if key != "temperature" and isinstance(value, (int, float)):
                    writer.add_scalar(f"evaluate_curve/{key}", value,
                                      round(point["temperature"] * 100))
    finally:
        writer.close()


def _checkpoint_iteration(path: str) -> int:
    digits = "".join(ch if ch.isdigit() else " " for ch in Path(path).stem).split()
    return int(digits[0]) if digits else 0


def plot_curve(curve: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Quality against diversity across temperatures: BLEU-4 to the test set vs self-BLEU-4,
    and style accuracy / grammaticality vs temperature."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window (also on machines without a display)
    import matplotlib.pyplot as plt

    temperatures = [p["temperature"] for p in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([p["self_bleu_4"] for p in curve], [p["bleu_4"] for p in curve], marker="o")
    for p in curve:
        left.annotate(f"T={p['temperature']:g}", (p["self_bleu_4"], p["bleu_4"]),
                      textcoords="offset points", xytext=(4, 4))
    left.set_xlabel("self-BLEU-4 (lower = more diverse)")
    left.set_ylabel("BLEU-4 against the test set (quality)")
    left.set_title("quality vs diversity")
    if any(p.get("judge_acc") is not None for p in curve):
        right.plot(temperatures, [p["judge_acc"] for p in curve], marker="o",
                   label="style accuracy (judge)")
    if any("oracle_grammatical" in p for p in curve):
        right.plot(temperatures, [p["oracle_grammatical"] for p in curve], marker="s",
                   label="grammatical (oracle)")
    right.plot(temperatures, [p["distinct_2"] for p in curve], marker="^", label="distinct-2")
    right.set_xlabel("sampling temperature")
    right.set_ylim(0, 1.02)
    right.legend()
    right.set_title("by temperature")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The readable table of report.json."""
    s = report["settings"]
    lines = [f"# Evaluation of {s['checkpoint']}", "",
             f"stage {s['stage']} ({s['weights']} weights), corpus {s['corpus']}, "
             f"{s['test_sentences']} test sentences, seed {s['seed']}, device {s['device']}; "
             f"{report.get('seconds_without_curve')} s without the curve, "
             f"{report.get('seconds')} s in all.", ""]

    def table(title: str, rows: Sequence[tuple[str, Any]]) -> None:
        lines.extend([f"## {title}", "", "| metric | value |", "|---|---|"])
        lines.extend(f"| {name} | {_fmt(value)} |" for name, value in rows)
        lines.append("")

    table("Judges (held-out)", _judge_rows(report["judges"]))
    gen = report["generation"]
    decoding = ("greedy" if s.get("strategy") == "greedy"
                else f"T={s['temperature']}")  # reports from before --strategy sampled
    table(f"Conditional generation (N={gen['n']}, {decoding})",
          [(f"judge {k}", v) for k, v in gen["judge"].items()]
          + [(f"oracle {k}", v) for k, v in gen.get("oracle", {}).items() if k != "n"]
          + [(k, gen[k]) for k in ("judge_lm_ppl", "test_judge_lm_ppl", "novelty", "ended",
                                   "length_mean", "length_std", "test_length_mean",
                                   "test_length_std") if k in gen])
    div = report["diversity"]
    table(f"Quality and diversity (N={div['n']}, {div['references']} test references)",
          [(k, v) for k, v in div.items() if k not in ("n", "references", "signatures")])
    rows: list[tuple[str, Any]] = []
    for attribute, entry in report["transfer"].items():
        if not isinstance(entry, Mapping):
            continue
        rows += [(f"{attribute}: {k}", v) for k, v in entry.items()
                 if k not in ("oracle", "oracle_by_target", "by_target")]
        rows += [(f"{attribute} to {target}: {k}", v)
                 for target, scores in entry.get("by_target", {}).items()
                 for k, v in scores.items()]
        rows += [(f"{attribute}: oracle {k}", v) for k, v in entry.get("oracle", {}).items()
                 if k != "n"]
    table("Style transfer of the test split", rows)
    if "transfer_file" in report:
        entry = report["transfer_file"]
        table(f"Transfer of {entry['file']} to {entry['style']}",
              [(k, v) for k, v in entry.items() if k not in ("file", "style", "examples")])
    vae = report["vae"]
    table(f"VAE (test split, K={vae['iw_samples']})",
          [(k, v) for k, v in vae.items() if k not in ("kl_per_dim", "iw_samples")])
    if report.get("curve"):
        keys = [k for k in report["curve"][0] if k != "n"]
        lines.extend(["## Quality-diversity curve", "", "| " + " | ".join(keys) + " |",
                      "|" + "---|" * len(keys)])
        lines.extend("| " + " | ".join(_fmt(p.get(k)) for k in keys) + " |"
                     for p in report["curve"])
        lines.append("")
    signature = report["diversity"]["signatures"].get("self_bleu_4")
    if signature:
        lines += [f"Self-BLEU signature: `{signature}`", ""]
    if report["transfer"].get("bleu_signature"):
        lines += [f"Transfer BLEU signature: `{report['transfer']['bleu_signature']}`", ""]
    return "\n".join(lines)


def _judge_rows(judges: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The judges' own quality: the classifier's test accuracy (the ceiling of every judged
    style accuracy in the report), the LM's perplexity and its real-vs-shuffled check, and how
    each judge's training ended (a time limit may have cut it short)."""
    rows: list[tuple[str, Any]] = [
        (f"classifier test accuracy {k}", v)
        for k, v in (judges.get("classifier_test_accuracy") or {}).items()]
    rows.append(("LM test perplexity", judges.get("lm_test_ppl")))
    check = judges.get("lm_check")
    if check:
        n = check["sentences"]
        rows += [(f"LM per-token NLL, {n} real test sentences", check["real_nll"]),
                 (f"LM per-token NLL, the same {n} with their words shuffled",
                  check["shuffled_nll"]),
                 ("LM share of sentences scored better in the real order",
                  check["real_better"])]
    for name, key in (("classifier", "classifier_training"), ("LM", "lm_training")):
        training = judges.get(key) or {}
        if training.get("stopped_by"):
            rows.append((f"{name} training", f"epoch {training['epoch']} kept of "
                         f"{training['epochs_run']}, stopped by "
                         f"{STOPPED_BY.get(training['stopped_by'], training['stopped_by'])}, "
                         f"{_fmt(training['seconds'])} s, {training['train_sentences']} "
                         "sentences"))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
