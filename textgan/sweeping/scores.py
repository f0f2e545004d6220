"""A run's report as flat dotted metrics, the sweep's trade-off score, and mean/std over seeds.

The score combines a few metrics of one run's report.json into one number to rank by:

    [score]
    metrics = ["transfer.*.judge_acc", "transfer.*.bleu_source"]   # names or fnmatch patterns
    combine = "geomean"                  # or "mean"
    scale = { "vae.iw_ppl" = 0.1 }       # optional; default 0.01 for BLEU metrics, else 1
    lower_is_better = ["diversity.self_bleu_4"]   # optional: enters as 1 - scaled value

Each pattern must match at least one metric of the report (else a ConfigError names the close
ones); every match is one term. A term is `value * scale`, then `1 - that` for lower-is-better
metrics, so with the default scales accuracies and BLEU/100 all live in [0, 1] and a geometric
mean punishes a configuration that buys style accuracy with content (or the reverse).
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from textgan.errors import ConfigError
from textgan.evaluation.report_tensorboard import flat_scalars

COMBINES = ("geomean", "mean")
BLEU_SCALE = 0.01  # sacrebleu reports BLEU in 0-100; accuracies are 0-1


def flatten_report(report: Mapping[str, Any]) -> dict[str, float]:
    """Every number of an evaluation report as dotted key -> float.

    Reuses the report's own list of what counts as a metric (it skips settings, the
    curve, per-dimension lists, examples), so the sweep sees exactly what TensorBoard sees;
    that function joins keys with '/', the sweep with '.', like config keys.
    """
    return {tag.replace("/", "."): value for tag, value in flat_scalars(report).items()}


def match(pattern: str, keys: Iterable[str]) -> list[str]:
    return sorted(key for key in keys if fnmatch.fnmatchcase(key, pattern))


def check_patterns(patterns: Sequence[str], metrics: Mapping[str, float], what: str,
                   origin: str) -> None:
    """Every pattern must name at least one metric: a typo would otherwise rank silently."""
    for pattern in patterns:
        if match(pattern, metrics):
            continue
        close = difflib.get_close_matches(pattern, list(metrics), n=3, cutoff=0.5)
        hint = f"; close: {', '.join(close)}" if close else ""
        raise ConfigError(f"{what} '{pattern}' matches no metric of {origin}{hint} (metrics are "
                          "report.json keys joined by dots, e.g. transfer.sentiment.judge_acc; "
                          "* matches any part)")


@dataclass
class ScoreSpec:
    """How one run's metrics combine into its score (higher is better)."""

    metrics: list[str]
    combine: str = "geomean"
    scale: dict[str, float] = field(default_factory=dict)
    lower_is_better: list[str] = field(default_factory=list)

    def check(self) -> None:
        """What can be checked before any report exists."""
        if not self.metrics:
            raise ConfigError("[score] metrics is empty: name at least one report metric")
        if self.combine not in COMBINES:
            raise ConfigError(f"[score] combine must be one of {', '.join(COMBINES)}; "
                              f"got {self.combine!r}")
        for pattern, factor in self.scale.items():
            if not factor > 0:
                raise ConfigError(f"[score] scale of '{pattern}' must be > 0, got {factor}")

    def check_against(self, metrics: Mapping[str, float], origin: str) -> None:
        """Every pattern of the spec matches this report; scale/lower_is_better match a term."""
        check_patterns(self.metrics, metrics, "[score] metric", origin)
        terms = {key for pattern in self.metrics for key in match(pattern, metrics)}
        check_patterns(list(self.scale), dict.fromkeys(terms, 0.0), "[score] scale key",
                       "the score's metrics")
        check_patterns(self.lower_is_better, dict.fromkeys(terms, 0.0),
                       "[score] lower_is_better entry", "the score's metrics")

    def scale_of(self, key: str) -> float:
        for pattern, factor in self.scale.items():
            if fnmatch.fnmatchcase(key, pattern):
                return factor
        return BLEU_SCALE if "bleu" in key.rsplit(".", 1)[-1] else 1.0

    def terms(self, metrics: Mapping[str, float], origin: str) -> dict[str, float]:
        """metric -> its normalised term, for every metric the patterns match."""
        self.check_against(metrics, origin)
        terms = {}
        for key in sorted({k for pattern in self.metrics for k in match(pattern, metrics)}):
            value = metrics[key] * self.scale_of(key)
            if any(fnmatch.fnmatchcase(key, p) for p in self.lower_is_better):
                value = 1.0 - value
            terms[key] = value
        return terms

    def score(self, metrics: Mapping[str, float], origin: str) -> float:
        terms = self.terms(metrics, origin)
        if self.combine == "mean":
            return sum(terms.values()) / len(terms)
        negative = {key: value for key, value in terms.items() if value < 0}
        if negative:
            key, value = next(iter(negative.items()))
            raise ConfigError(
                f"the geometric mean needs terms >= 0, but {key} gives {value:.4g} in {origin} "
                "after its scale (and 1 - x for lower_is_better); give it a [score] scale that "
                "maps it into [0, 1], or use combine = \"mean\"")
        return math.prod(terms.values()) ** (1.0 / len(terms))

    def describe(self) -> str:
        parts = []
        for pattern in self.metrics:
            scale = self.scale_of(pattern)
            text = pattern if scale == 1.0 else f"{pattern} x {scale:g}"
            if pattern in self.lower_is_better:
                text = f"1 - {text}"
            parts.append(text)
        return f"{self.combine} of {', '.join(parts)} (higher is better)"


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof = 1; None for one value) and count."""
    values = [float(v) for v in values]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def aggregate(reports: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and std over runs (seeds) of every metric any of them has, each over those that do."""
    keys = sorted({key for report in reports for key in report})
    return {key: mean_std([r[key] for r in reports if key in r]) for key in keys}
