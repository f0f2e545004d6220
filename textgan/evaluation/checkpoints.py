"""Loading a checkpoint the user named for a run folder, with the right diagnosis when it
belongs to another run.

    model = load_run_model(checkpoint, run_dir, named=True)

`sampling.load_for_inference` refuses a checkpoint whose tokenizer is not the run folder's
tokenizer.model, and explains it as a run folder changed after training. That is the cause
when the folder picked its own checkpoint; when the user named one (`--checkpoint other.pt`),
the common cause is a checkpoint of another run, whose ids mean other words here. Nothing in
the run folder is wrong then (its judges in particular are valid), so the message says to use
the checkpoint with its own run folder instead.
"""

from __future__ import annotations

from pathlib import Path

import torch

from textgan.checkpoint import read_checkpoint
from textgan.devices import DEFAULT_DEVICE
from textgan.errors import CheckpointError, TokenizerError
from textgan.runs import RunFolder, stage_home
from textgan.trained_model import LoadedModel, load_for_inference


def load_run_model(checkpoint: Path, run_dir: str | Path, *, named: bool,
                   device: str | torch.device = DEFAULT_DEVICE,
                   use_ema: bool = True) -> LoadedModel:
    """`checkpoint` loaded for `run_dir`, whose tokenizer it must have been trained with.

    `named`: the user chose the checkpoint (--checkpoint); a tokenizer mismatch then says the
    checkpoint comes from another run, and which, rather than that the folder was changed.
    """
    run_dir = Path(run_dir)
    try:
        return load_for_inference(checkpoint, device=device, use_ema=use_ema, run_dir=run_dir)
    except TokenizerError:
        if named:
            refuse_foreign_checkpoint(Path(checkpoint), run_dir)
        raise


def refuse_foreign_checkpoint(checkpoint: Path, run_dir: Path) -> None:
    """Raise CheckpointError when `checkpoint` was trained with another tokenizer than the one
    in `run_dir`; return when they agree (or the folder has none to compare with)."""
    folder = RunFolder(run_dir)
    tokenizer_file = folder.paths.tokenizer
    ours = folder.tokenizer_sha256()
    if ours is None:
        return
    # read again, in full: this runs only on the way to an error, where the time does not matter
    theirs = str(read_checkpoint(checkpoint)["meta"]["tokenizer_sha256"])
    if theirs == ours:
        return
    home = stage_home(checkpoint.resolve())
    mismatch = (f"{checkpoint} was trained with another tokenizer (sha256 {theirs[:12]}...) than "
                f"{run_dir}'s {tokenizer_file.name} ({ours[:12]}...)")
    if home == run_dir.resolve():
        raise CheckpointError(
            f"{mismatch}, though it sits in that run folder: it was copied there from another "
            "run (use it with the run folder it was trained in), or the folder's "
            f"{tokenizer_file.name} was replaced after training (restore it)")
    where = (f"its own run folder, --run-dir {home}" if home is not None else
             f"the run folder it was trained in (whose {tokenizer_file.name} has sha256 "
             f"{theirs[:12]}...)")
    raise CheckpointError(
        f"{mismatch}: it comes from another run, and its ids mean other words here. Nothing in "
        f"{run_dir} needs changing or deleting, its judges included; use the checkpoint with "
        f"{where}")
