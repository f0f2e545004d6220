"""What `evaluate_run` measures and how (`EvalSettings`), and the inputs it reads, checked before
any slow work: the checkpoint to evaluate, a user's sentences to transfer and their references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textgan.devices import DEFAULT_DEVICE
from textgan.errors import CheckpointError, SamplingError
from textgan.evaluation.judges import JudgeSettings
from textgan.runs import find_checkpoint, named_checkpoint


@dataclass
class EvalSettings:
    """What `evaluate_run` measures and how; saved in the report."""

    run_dir: str
    checkpoint: str | None = None          # default: the run folder's choice (find_checkpoint)
    n: int = 5000                          # samples, spread evenly over the styles
    split: str = "test"                    # the split the report reads: "valid" to choose
                                           # decoding settings without looking at test
    seed: int = 0
    temperature: float = 1.0               # sampling temperature of the main samples
    strategy: str = "sample"               # the main samples: "sample" (at temperature) or
                                           # "greedy" (diversity from z alone)
    no_repeat_ngram: int = 0               # n > 0: no n-gram twice in a sentence (samples,
                                           # curve, transfers; not the VAE's reconstructions)
    transfer_n: int = 1000                 # test sentences per attribute for transfer
    style_strengths: list[float] | None = None  # transfers' style strengths and D's level
    min_confidence: float | None = None    # (None: the run's transfer config; sampling.transfer)
    iw_samples: int = 16                   # K of the importance-weighted NLL
    curve_temperatures: list[float] = field(default_factory=lambda: [0.5, 0.7, 1.0, 1.3])
    curve_n: int = 1000                    # samples per temperature of the curve
    transfer_file: str | None = None       # a user's sentences to transfer to transfer_style
    transfer_style: str | None = None
    references: str | None = None          # human references of transfer_file, line by line
    device: str = DEFAULT_DEVICE
    progress: bool = True
    judges: JudgeSettings | None = None    # how missing judges train (None: the defaults)


def checkpoint_path(run_dir: Path, given: str | None) -> Path:
    """The run folder's choice, or the file given (looked up inside the run folder as well)."""
    if not given:
        return find_checkpoint(run_dir)
    candidate = named_checkpoint(given, run_dir)
    if candidate.is_file():
        return candidate
    raise CheckpointError(f"checkpoint {given} not found (nor in {run_dir})")


def read_transfer_inputs(settings: EvalSettings) -> tuple[list[str] | None, list[str] | None]:
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
