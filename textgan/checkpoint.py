"""Run folders and checkpoints: what a checkpoint holds, where it goes, and whether it fits.

A run folder (`checkpoints/<name>/` by default) holds

    config.toml          the resolved config of the run
    tokenizer.model      the sentencepiece model, with tokenizer.sha256 beside it
    pretrain/ train/     checkpoints of each stage: <stage>_checkpoint_<iteration>.pt (the last k)
                         and best_checkpoint_<iteration>_<score>.pt
    tb/<stage>/          TensorBoard events

Every checkpoint holds the full state needed for an exact resume: the stage's models,
optimizers, schedulers and engine (passed in `to_save`), plus `meta` (format version, stage,
resolved config, tokenizer bytes and sha256, attribute classes) and `rng` (python, numpy, torch,
cuda generator states). It holds only tensors and plain containers, so it loads with
`torch.load(weights_only=True)`; ignite's DiskSaver writes it atomically.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine
from ignite.handlers import Checkpoint, DiskSaver

from textgan.config import (
    STAGE_SECTIONS,
    Config,
    config_differences,
    config_from_dict,
    config_to_dict,
    runtime_keys,
)
from textgan import parallel
from textgan.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_RUNS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
_STEP = re.compile(r"_checkpoint_(\d+)(?:_|\.pt$)")


class RunPaths:
    """The files of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.toml"
        self.tokenizer = self.root / "tokenizer.model"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def tensorboard_dir(self, stage: str) -> Path:
        return self.root / "tb" / stage


def default_run_dir(preset: str) -> Path:
    """`checkpoints/<preset>`: running the same command twice resumes the same run."""
    return DEFAULT_RUNS_DIR / preset


class RunMeta:
    """What a checkpoint says about itself; saved under the key 'meta' of every checkpoint."""

    def __init__(self, *, stage: str, config: Config, tokenizer: Any,
                 attributes: Mapping[str, list[str]]) -> None:
        self.stage, self.config, self.tokenizer = stage, config, tokenizer
        self.attributes = {name: list(values) for name, values in attributes.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "stage": self.stage,
            "config": config_to_dict(self.config),
            "tokenizer_model": self.tokenizer.model_bytes,
            "tokenizer_sha256": self.tokenizer.sha256,
            "attributes": self.attributes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: compatibility is checked by `check_compatible` before loading."""


class RNGStates:
    """The global random generators, so a resumed run draws the same dropout masks and noise.

    Data-parallel runs draw different noise in each process: the checkpoint (written by rank 0)
    also holds every process's torch generators, gathered when it is saved. A resume with the
    same number of processes gives each its own back; with another number, rank 0 takes rank
    0's and each other process a generator seeded from rank 0's state and its rank, so the
    streams still differ and a second resume repeats the first.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "python": random.getstate(),
            # numpy's legacy state holds an ndarray, which weights_only loading refuses: store
            # the key as a tensor and rebuild the tuple on load.
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        # While Ctrl-C is being handled the peers may be gone: no collective then (the resume
        # re-seeds the other processes as after a change of world size).
        if parallel.world_size() > 1 and sys.exc_info()[0] is not KeyboardInterrupt:
            state["torch_by_rank"] = _gather_rows(torch.get_rng_state())
            if torch.cuda.is_available():
                state["cuda_by_rank"] = _gather_rows(torch.cuda.get_rng_state())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        random.setstate(state["python"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        rank, size = parallel.rank(), parallel.world_size()
        saved = state.get("torch_by_rank")
        if saved is not None and len(saved) == size:
            # a row of the stacked states is a view at an offset, which set_rng_state reads
            # from its storage's start (a segfault in torch 2.13): hand it a copy
            torch.set_rng_state(saved[rank].clone())
            if torch.cuda.is_available() and "cuda_by_rank" in state:
                torch.cuda.set_rng_state(state["cuda_by_rank"][rank].clone())
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if rank > 0:
            digest = hashlib.sha256(state["torch"].numpy().tobytes() + bytes([rank % 256]))
            torch.manual_seed(int.from_bytes(digest.digest()[:8], "little") + rank)


def _gather_rows(state: torch.Tensor) -> torch.Tensor:
    """(world_size, n) uint8: one row per process, in rank order."""
    return idist.all_gather(state.unsqueeze(0))


class _DiskSaver(DiskSaver):
    """ignite's DiskSaver, except that removing a file that is not there is not an error.

    A checkpointer's list of its files is saved in every checkpoint. ignite puts a new file on
    that list before writing it, so a save cut short by Ctrl-C leaves a name with no file: the
    interrupt's own checkpoint of the same iteration then replaces that name, and ignite's
    remove would fail on it, turning a clean stop into a traceback.
    """

    def remove(self, filename: str) -> None:
        if idist.get_rank() == self.save_on_rank:
            (self.dirname / filename).unlink(missing_ok=True)


def forget_missing_files(checkpointer: Checkpoint) -> None:
    """After a resume: drop from the checkpointer's list the files that are not on disk.

    Such a name is a save that Ctrl-C cut short (or a file deleted by hand). Left on the list,
    a best-score checkpointer would keep comparing against a score it has no file for. Every
    process reads the same run folder (a resume needs that anyway), so all of them drop the
    same names and agree on when to save next.
    """
    state = checkpointer.state_dict()
    folder = checkpointer.save_handler.dirname
    missing = [name for _, name in state["_saved"] if not (folder / name).is_file()]
    for name in missing:
        log.warning("%s is listed in the checkpoint but missing from %s (a save cut short by "
                    "Ctrl-C?); forgetting it", name, folder)
    kept = [(priority, name) for priority, name in state["_saved"] if name not in missing]
    checkpointer.load_state_dict({**state, "_saved": kept})


def make_checkpointer(to_save: Mapping[str, Any], folder: Path, stage: str,
                      keep_last: int) -> Checkpoint:
    """Rotating checkpoints named by iteration; `include_self` keeps rotation across resumes."""
    return Checkpoint(
        dict(to_save), _DiskSaver(folder, require_empty=False, atomic=True),
        filename_prefix=stage, n_saved=keep_last, include_self=True,
        global_step_transform=lambda engine, _: engine.state.iteration)


def make_best_checkpointer(to_save: Mapping[str, Any], folder: Path, trainer: Engine,
                           score_name: str, sign: float) -> Checkpoint:
    """Keeps the one checkpoint with the best validation score (sign -1 to minimise)."""
    return Checkpoint(
        dict(to_save), _DiskSaver(folder, require_empty=False, atomic=True),
        filename_prefix="best", n_saved=1,
        score_function=Checkpoint.get_default_score_fn(score_name, sign),
        score_name=score_name, global_step_transform=lambda *_: trainer.state.iteration)


def checkpoint_step(path: Path) -> int:
    match = _STEP.search(path.name)
    return int(match.group(1)) if match else -1


def latest_checkpoint(folder: Path, stage: str) -> Path | None:
    """The newest `<stage>_checkpoint_<iteration>.pt` in folder, by iteration."""
    candidates = sorted(Path(folder).glob(f"{stage}_checkpoint_*.pt"), key=checkpoint_step)
    return candidates[-1] if candidates else None


def best_checkpoint(folder: Path) -> Path | None:
    candidates = sorted(Path(folder).glob("best_checkpoint_*.pt"), key=checkpoint_step)
    return candidates[-1] if candidates else None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True on the CPU; a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"{path} is not a readable textgan checkpoint: "
                              f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict) or "meta" not in state:
        raise CheckpointError(f"{path} is not a textgan checkpoint (no 'meta' entry)")
    version = state["meta"].get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}; this textgan reads "
                              f"format {FORMAT_VERSION}")
    return state


def check_compatible(state: Mapping[str, Any], path: Path, *, config: Config | None = None,
                     tokenizer_sha256: str | None = None,
                     stages: tuple[str, ...] = ()) -> None:
    """Refuse a checkpoint from another stage, tokenizer or config, naming the difference.

    The config is compared on the sections the checkpoint's stage is built from
    (STAGE_SECTIONS), runtime keys aside.
    """
    meta = state["meta"]
    if stages and meta["stage"] not in stages:
        raise CheckpointError(f"{path} is a '{meta['stage']}' checkpoint; expected "
                              f"{' or '.join(repr(s) for s in stages)}")
    if tokenizer_sha256 is not None and meta["tokenizer_sha256"] != tokenizer_sha256:
        raise CheckpointError(
            f"{path} was trained with another tokenizer (sha256 {meta['tokenizer_sha256'][:12]}"
            f"... vs {tokenizer_sha256[:12]}... here); use the run folder it came from")
    if config is not None:
        # through config_from_dict: a key added after the checkpoint was written takes its
        # default, which is what the code that wrote it did (new settings default to off)
        saved = config_to_dict(config_from_dict(meta["config"], origin=str(path)))
        differences = config_differences(saved, config_to_dict(config),
                                         ignore=runtime_keys(),
                                         sections=STAGE_SECTIONS.get(meta["stage"]))
        if differences:
            raise CheckpointError(
                f"{path} was trained with a different config:\n  " + "\n  ".join(differences)
                + "\n(only runtime keys such as pretrain.epochs may change on resume; start a "
                  "new run folder with --run-dir for other changes)")


def restore(to_load: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Load every object of to_load from a checkpoint dict (after `check_compatible`)."""
    missing = [key for key in to_load if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}")
    Checkpoint.load_objects(dict(to_load), dict(state))
