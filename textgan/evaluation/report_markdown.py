"""report.md: the readable tables of a report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# what ended a judge's training (judges.json "stopped_by"), in words
STOPPED_BY = {"epochs": "the epoch limit", "patience": "no better validation score",
              "time_limit": "the time limit"}


def render_markdown(report: Mapping[str, Any]) -> str:
    """The readable table of report.json."""
    s = report["settings"]
    lines = [f"# Evaluation of {s['checkpoint']}", "",
             f"stage {s['stage']} ({s['weights']} weights), corpus {s['corpus']}, "
             f"{s['test_sentences']} {s.get('split', 'test')} sentences, seed {s['seed']}, "
             f"device {s['device']}; "
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
    if s.get("no_repeat_ngram"):
        decoding += f", no {s['no_repeat_ngram']}-gram repeated"
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
    table(f"Style transfer of the {s.get('split', 'test')} split"
          + (f" (no {s['no_repeat_ngram']}-gram repeated)" if s.get("no_repeat_ngram") else "")
          + _strengths_note(report["transfer"]), rows)
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


def _strengths_note(transfer: Mapping[str, Any]) -> str:
    """How the transfers were decoded when more than one style strength was tried (reports
    from before transfer.style_strengths have none)."""
    strengths = transfer.get("style_strengths") or [1.0]
    if len(strengths) < 2:
        return ""
    listed = ", ".join(f"{value:g}" for value in strengths)
    return (f", style strengths {listed} until D reads the requested style at "
            f"{transfer['min_confidence']:g}")


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
