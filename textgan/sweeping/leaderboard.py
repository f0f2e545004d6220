"""Rank a sweep's configurations and write <out>/leaderboard.json and <out>/leaderboard.md.

One row per configuration, its seeds aggregated: the score's mean and sample std (ddof = 1;
null/omitted with one seed), the grid settings, and the mean/std of every metric of the report
(JSON) or of the headline ones (markdown: the score's terms and [sweep] show). Ranked by mean
score; configurations without a finished run come last, with why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgan.evaluation.jsonfile import write_json_atomic, write_text_atomic
from textgan.sweeping.plan import RunPlan
from textgan.sweeping.scores import aggregate, match, mean_std
from textgan.sweeping.spec import SweepSpec


def build_leaderboard(spec: SweepSpec, runs: Sequence[RunPlan], entries: Mapping[str, Any],
                      metrics: Mapping[str, dict[str, float]],
                      scores: Mapping[str, float]) -> dict[str, Any]:
    """entries: sweep.json's run entries by name; metrics/scores: of the finished runs."""
    groups: dict[str, list[RunPlan]] = {}
    for run in runs:
        groups.setdefault(run.config_id, []).append(run)
    rows = [_row(group, entries, metrics, scores) for group in groups.values()]
    ranked = sorted((r for r in rows if r["score"]["n"]), key=lambda r: -r["score"]["mean"])
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    statuses = [entries[run.name]["status"] for run in runs]
    return {
        "grid": str(spec.path),
        "score": spec.score.describe(),
        "score_spec": dataclasses.asdict(spec.score),
        "preset": spec.preset,
        "fixed": spec.fixed,
        "seeds": spec.seeds,
        "mode": spec.mode,
        "budget": spec.budget,
        "sample_seed": spec.sample_seed if spec.mode == "random" else None,
        "evaluate_args": spec.evaluate_args,
        "counts": {status: statuses.count(status) for status in sorted(set(statuses))},
        "runs_planned": len(runs),
        "leaderboard": ranked,
        "unfinished": [r for r in rows if not r["score"]["n"]],
    }


def _row(group: Sequence[RunPlan], entries: Mapping[str, Any],
         metrics: Mapping[str, dict[str, float]], scores: Mapping[str, float]) -> dict[str, Any]:
    first = group[0]
    finished = [run for run in group if run.name in scores]
    return {
        "rank": None,
        "config_id": first.config_id,
        "label": first.label,
        "preset": first.preset,
        "settings": first.settings,
        "overrides": first.overrides,
        "score": mean_std([scores[run.name] for run in finished]),
        "n_seeds": len(finished),
        "seeds": [run.seed for run in group],
        "runs": [_run_entry(run, entries[run.name], scores.get(run.name)) for run in group],
        "metrics": aggregate([metrics[run.name] for run in finished]),
    }


def _run_entry(run: RunPlan, entry: Mapping[str, Any], score: float | None) -> dict[str, Any]:
    out = {"name": run.name, "run_dir": entry["run_dir"], "seed": run.seed,
           "status": entry["status"], "score": score}
    if entry["status"] != "done":
        out.update(step=entry.get("step"), returncode=entry.get("returncode"),
                   error=entry.get("error"))
    return out


# --------------------------------------------------------------------------- markdown


def headline_keys(spec: SweepSpec, board: dict[str, Any]) -> list[str]:
    """The score's metrics, then the [sweep] show ones, as found in the finished runs."""
    known = {key for row in board["leaderboard"] for key in row["metrics"]}
    keys: list[str] = []
    for pattern in [*spec.score.metrics, *spec.show]:
        keys += [key for key in match(pattern, known) if key not in keys]
    return keys


def to_markdown(spec: SweepSpec, board: dict[str, Any]) -> str:
    grid_keys = list(spec.grid)
    metric_keys = headline_keys(spec, board)
    counts = ", ".join(f"{n} {status}" for status, n in board["counts"].items())
    fixed = ", ".join(f"{k}={v}" for k, v in spec.fixed.items()) or "none"
    lines = [
        f"# Sweep leaderboard: {spec.path.name}",
        "",
        f"Score: {board['score']}. Mean ± sample std over seeds (no std with one seed).",
        f"Preset {spec.preset}; fixed: {fixed}; seeds {', '.join(map(str, spec.seeds))}; "
        f"{board['runs_planned']} runs planned ({counts}).",
        f"Evaluation: python -m textgan.evaluate {' '.join(spec.evaluate_args)}".rstrip(),
        "",
    ]
    header = ["rank", "score", *grid_keys, *metric_keys, "seeds", "runs"]
    lines += [_md_row(header), _md_row(["---"] * len(header))]
    for row in board["leaderboard"]:
        cells = [str(row["rank"]), _pm(row["score"])]
        cells += [_value(row["settings"].get(key)) for key in grid_keys]
        cells += [_pm(row["metrics"].get(key)) for key in metric_keys]
        cells += [f"{row['n_seeds']}/{len(row['seeds'])}",
                  " ".join(f"`{run['name']}`" for run in row["runs"])]
        lines.append(_md_row(cells))
    lines += _unfinished(board)
    lines += ["", "Every metric's mean and std, per configuration: leaderboard.json.", ""]
    return "\n".join(lines)


def _unfinished(board: dict[str, Any]) -> list[str]:
    """Runs that did not finish, at the bottom: failed ones with the last line of their log."""
    rows = []
    for row in [*board["leaderboard"], *board["unfinished"]]:
        for run in row["runs"]:
            if run["status"] != "done":
                last = (run.get("error") or "").strip().splitlines()[-1:] or [""]
                where = f" at {run['step']}" if run.get("step") else ""
                rows.append(_md_row([f"`{run['name']}`", f"{run['status']}{where}",
                                     last[0].replace("|", "\\|")]))
    if not rows:
        return []
    return ["", "## Failed or unfinished runs", "", _md_row(["run", "status", "last log line"]),
            _md_row(["---"] * 3), *rows]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _value(value: Any) -> str:
    return "–" if value is None else str(value)


def _pm(stats: Mapping[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    text = f"{stats['mean']:.4g}"
    return text if stats.get("std") is None else f"{text} ± {stats['std']:.2g}"


def write_leaderboard(out: Path, spec: SweepSpec, board: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "leaderboard.json", "md": out / "leaderboard.md"}
    write_json_atomic(paths["json"], board)
    write_text_atomic(paths["md"], to_markdown(spec, board))
    return paths
