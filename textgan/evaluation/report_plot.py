"""The quality-diversity curve of a report as a PNG (quality_diversity.png)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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
