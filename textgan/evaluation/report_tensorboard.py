"""The report's numbers as TensorBoard scalars (`tb/evaluate/` of the run folder).

`flat_scalars` decides which of the report's numbers are metrics; the sweeps rank runs by the
same list (`sweeping.scores.flatten_report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


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


def write_tensorboard(report: Mapping[str, Any], folder: Path) -> None:
    """`flat_scalars` at the checkpoint's iteration, and the curve's points by temperature x 100."""
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
