"""Checkpoints: what a checkpoint holds, where a stage writes it, which one is whole, and whether
it fits a run; the run lock. The run folder's layout and the rules for which checkpoint stands
for a run are `textgan.runs`.

Every checkpoint holds the full state needed for an exact resume: the stage's models,
optimizers, schedulers and engine (passed in `to_save`), plus `meta` (format version, stage,
resolved config, tokenizer bytes and sha256, attribute classes) and `rng` (python, numpy, torch,
cuda generator states). It holds only tensors and plain containers, so it loads with
`torch.load(weights_only=True)`; ignite's DiskSaver writes it atomically.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
import socket
import sys
import time
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
    keys_pretraining_ignores,
    runtime_keys,
)
from textgan import parallel
from textgan.errors import CheckpointError, DamagedCheckpointError, RunFolderError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_STEP = re.compile(r"_checkpoint_(\d+)(?:_|\.pt$)")
DAMAGED_SUFFIX = ".damaged"


# --------------------------------------------------------------------------- the run lock


class RunLock:
    """`<run>/run.lock`: one process at a time runs a stage in a run folder.

    Two stages writing one folder would both train, interleave their TensorBoard logs and race
    on the tokenizer and checkpoint files. The lock file is created with O_CREAT | O_EXCL (the
    file system decides atomically who gets it) and holds the owner's pid, host and process
    start time. A lock whose process no longer runs on this host (killed, machine rebooted) is
    stale and taken over with a warning; one held from another host cannot be checked from
    here, so it is refused like a live one, and the message says which file to delete if that
    run is gone. The same process may take a lock it holds again (a Python session running one
    stage after another).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise RunFolderError naming its holder. OSErrors of the file
        system itself (read-only, permission) propagate for the caller to judge."""
        for _ in range(5):  # a takeover races with others only; a few rounds settle it
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_holder()
                if holder is None:
                    continue  # released or taken over meanwhile: try again
                if _is_this_process(holder):
                    self.held = True  # ours already (an earlier stage of this process)
                    return
                if not _is_stale(holder):
                    raise RunFolderError(self._held_message(holder)) from None
                self._take_over(holder)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(_this_process(), file)
            self.held = True
            return
        raise RunFolderError(f"could not take the lock {self.path}: other processes keep "
                             "taking it; is another textgan running on this run folder?")

    def release(self) -> None:
        """Remove the lock file if this process holds it (never another's)."""
        if not self.held:
            return
        self.held = False
        holder = self._read_holder()
        if holder is not None and _is_this_process(holder):
            self.path.unlink(missing_ok=True)

    def _read_holder(self) -> dict[str, Any] | None:
        """The lock's content; None when the file is gone. A file too new to be written yet
        reads as a live holder of unknown pid; an old unreadable one as a stale holder."""
        try:
            text = self.path.read_text(encoding="utf-8")
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            if isinstance(holder, dict) and isinstance(holder.get("pid"), int):
                return {**holder, "text": text}
        except ValueError:
            pass
        # between another process's O_EXCL create and its write, or left by a crash there
        return {"pid": None, "host": _HOST, "text": text, "fresh": age < 10}

    def _take_over(self, holder: dict[str, Any]) -> None:
        """Replace a stale lock, without removing a live one another process just took.

        Moving the file aside is atomic: of two processes taking over the same stale lock,
        one moves it; the other finds nothing to move and starts again. What was moved is
        checked to be the stale lock that was read; if it is not (a third process took the
        lock in between) it goes back where it was.
        """
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        if aside.read_text(encoding="utf-8") != holder["text"]:
            try:
                os.link(aside, self.path)  # put it back, unless another lock is there now
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        log.warning("%s was left by process %s on %s, which no longer runs; taking the lock "
                    "over", self.path, holder.get("pid") or "(unknown)", holder.get("host"))

    def _held_message(self, holder: dict[str, Any]) -> str:
        if holder.get("pid") is None:
            who = "another process (its lock file is being written)"
        else:
            who = f"process {holder['pid']} on host {holder.get('host')}"
        since = holder.get("since")
        since_text = f" since {since}" if since else ""
        what_to_do = ("wait for it to finish, or use another --run-dir; if that run is gone "
                      "(this host cannot check another's processes), delete the lock file"
                      if holder.get("host") != _HOST else
                      "wait for it to finish, or use another --run-dir (the lock of a process "
                      "that has ended is taken over by the next run)")
        return (f"the run folder {self.path.parent} is in use by {who}{since_text} (lock file "
                f"{self.path}); {what_to_do}")


_HOST = socket.gethostname()


def _process_started(pid: int) -> str | None:
    """When a process started (clock ticks since boot, with the boot id), to tell a reused pid
    from the lock's owner; None where /proc does not say (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": _HOST, "started": _process_started(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _is_this_process(holder: dict[str, Any]) -> bool:
    started = holder.get("started")
    return (holder.get("pid") == os.getpid() and holder.get("host") == _HOST
            and (started is None or started == _process_started(os.getpid())))


def _is_stale(holder: dict[str, Any]) -> bool:
    """Whether a lock's process has ended. Only a process on this host can be checked."""
    if holder.get("host") != _HOST:
        return False
    pid = holder.get("pid")
    if pid is None:  # unreadable content: stale once it is old enough to have been written
        return not holder.get("fresh")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    started = holder.get("started")
    # the pid runs, but if it started at another time it is another process that reuses it
    return started is not None and _process_started(pid) not in (None, started)


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
    """ignite's DiskSaver, with three differences.

    - Removing a file that is not there is not an error. A checkpointer's list of its files is
      saved in every checkpoint. ignite puts a new file on that list before writing it, so a
      save cut short by Ctrl-C leaves a name with no file: the interrupt's own checkpoint of the
      same iteration then replaces that name, and ignite's remove would fail on it, turning a
      clean stop into a traceback.
    - Old files are removed only after the next save succeeded. ignite drops the oldest file
      before writing the new one, so with keep_last=1 (and always for the best checkpoint) a
      save that fails, e.g. on a full disk, would leave no checkpoint at all.
    - A full disk is one clear line (`RunFolderError`) naming the file and the space needed,
      not torch's "unexpected pos" with the cause buried in a chained traceback. The atomic
      write has already removed its partial temporary file by then.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unlink_after_save: list[str] = []

    def remove(self, filename: str) -> None:
        if idist.get_rank() == self.save_on_rank:
            self._unlink_after_save.append(filename)

    def __call__(self, checkpoint: Mapping, filename: str,
                 metadata: Mapping | None = None) -> None:
        if idist.get_rank() != self.save_on_rank:
            return
        before = set(os.listdir(self.dirname))
        try:
            super().__call__(checkpoint, filename, metadata)
        except (OSError, RuntimeError) as error:
            if not _out_of_space(error):
                raise
            # ignite removes its temporary file, unless closing it failed too (a full disk
            # fails the flush of the last buffered bytes): remove what this save left
            for name in set(os.listdir(self.dirname)) - before:
                if name.startswith("tmp"):
                    (self.dirname / name).unlink(missing_ok=True)
            raise disk_full_error(self.dirname / filename, _state_bytes(checkpoint)) from None
        pending, self._unlink_after_save = self._unlink_after_save, []
        for name in pending:
            if name != filename:  # a save under the same name has just replaced that file
                (self.dirname / name).unlink(missing_ok=True)


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _out_of_space(error: BaseException | None) -> bool:
    """Whether an error, or one it was raised while handling, is a full disk or quota.

    torch reports a failed write of its zip writer as RuntimeError("... unexpected pos ...");
    the OSError of the file's write is its __context__.
    """
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def disk_full_error(path: Path, needed: int) -> RunFolderError:
    """'no space left on device: <path>, need ~N MB' plus what is free and what to do."""
    try:
        free = f", {_megabytes(shutil.disk_usage(path.parent).free)} MB free"
    except OSError:
        free = ""
    return RunFolderError(
        f"no space left on device: {path}, need ~{_megabytes(needed)} MB{free}; "
        "the previous checkpoints are intact: free some space and run the same command again "
        "to resume from the newest")


def _megabytes(size: int) -> str:
    megabytes = size / 2**20
    return f"{megabytes:.1f}" if megabytes < 10 else f"{megabytes:,.0f}"


def _state_bytes(value: Any) -> int:
    """The bytes of the tensors (and the tokenizer's bytes) in a checkpoint's state: what its
    file mostly holds."""
    if isinstance(value, torch.Tensor):
        return value.nelement() * value.element_size()
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_state_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_state_bytes(item) for item in value)
    if hasattr(value, "state_dict") and callable(value.state_dict):
        return _state_bytes(value.state_dict())
    return 0


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
                    "Ctrl-C, or removed by a later save before a resume from an older "
                    "checkpoint); forgetting it", name, folder)
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


# A damaged checkpoint set aside: (its path, what is wrong, its new name or None).
Damaged = tuple[Path, str, Path | None]


def latest_checkpoint(folder: Path, stage: str, *,
                      damaged: list[Damaged] | None = None) -> Path | None:
    """The newest `<stage>_checkpoint_<iteration>.pt` in folder, by iteration, that is whole.

    A file cut short (a crash or a full disk while it was copied, a zero-byte file) is set
    aside (`set_aside_damaged`) with a warning that names the file used instead; a caller that
    looks further (another stage) passes `damaged` to collect them and warns itself.
    """
    return _newest_whole(folder, f"{stage}_checkpoint_*.pt", f"{stage} checkpoint", damaged)


def best_checkpoint(folder: Path, *, damaged: list[Damaged] | None = None) -> Path | None:
    return _newest_whole(folder, "best_checkpoint_*.pt", "best checkpoint", damaged)


def _newest_whole(folder: Path, pattern: str, kind: str,
                  collect: list[Damaged] | None) -> Path | None:
    candidates = sorted((path for path in Path(folder).glob(pattern) if path not in _DAMAGED),
                        key=checkpoint_step, reverse=True)
    damaged: list[Damaged] = []
    chosen = None
    for path in candidates:
        problem = _truncation(path)
        if problem is None:
            chosen = path
            break
        damaged.append(set_aside_damaged(path, problem))
    if collect is not None:
        collect.extend(damaged)
    elif damaged:
        warn_damaged(damaged, f"using {chosen}, the newest intact {kind}" if chosen else
                     f"no intact {kind} is left in {folder}")
    return chosen


# Damaged files this process could not rename (a read-only folder): skipped all the same.
_DAMAGED: set[Path] = set()
_ZIP_END = b"PK\x05\x06"  # the end-of-central-directory record that closes every zip file


def _truncation(path: Path) -> str | None:
    """Why a checkpoint file is visibly incomplete, or None; reads only its last 22 bytes.

    torch writes a zip file without a comment, so a whole one ends with the 22-byte end record;
    a file cut short anywhere has lost it. (Damage inside the file shows when it is read:
    `read_checkpoint` raises DamagedCheckpointError.)
    """
    try:
        size = path.stat().st_size
        if size == 0:
            return "an empty (0-byte) file"
        with path.open("rb") as file:
            file.seek(max(0, size - 22))
            tail = file.read(22)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if len(tail) < 22 or not tail.startswith(_ZIP_END):
        return f"truncated ({size:,} bytes, without the end record of a torch zip file)"
    return None


def set_aside_damaged(path: Path, problem: str) -> Damaged:
    """Rename a damaged checkpoint to `<name>.damaged` (never delete it: it may still hold
    something worth recovering) so that no later run trips on it; (path, problem, new path,
    None where the folder cannot be written, e.g. a read-only run)."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    count = 1
    while target.exists():
        count += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}.{count}")
    try:
        os.replace(path, target)
    except OSError:
        _DAMAGED.add(path)
        return path, problem, None
    return path, problem, target


def warn_damaged(damaged: list[Damaged], outcome: str) -> None:
    """One warning per damaged file: what is wrong, where it went, and what is used instead."""
    for path, problem, target in damaged:
        kept = f"renamed to {target.name}" if target else "left in place (read-only folder)"
        log.warning("damaged checkpoint %s: %s; %s; %s", path, problem, kept, outcome)


def damaged_checkpoints(folder: Path, pattern: str) -> list[Path]:
    """The files `set_aside_damaged` renamed in folder, for `pattern` (e.g. 'train_checkpoint_*')."""
    return sorted({*Path(folder).glob(f"{pattern}.pt{DAMAGED_SUFFIX}*"),
                   *(path for path in _DAMAGED if path.parent == Path(folder)
                     and path.match(f"{pattern}.pt"))})


def read_latest_checkpoint(folder: Path, stage: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest intact checkpoint of a stage and its state, for a resume; None when the
    stage has none yet.

    A file that fails to load is set aside like a truncated one and the next newest is tried.
    When checkpoints existed but none is intact, that is an error, not a fresh start: starting
    the stage over is the user's decision.
    """
    path = latest_checkpoint(folder, stage)
    while path is not None:
        try:
            return path, read_checkpoint(path)
        except DamagedCheckpointError as error:
            damaged = set_aside_damaged(path, error.problem)
        path = latest_checkpoint(folder, stage)
        warn_damaged([damaged], f"using {path}, the newest intact {stage} checkpoint"
                      if path else f"no intact {stage} checkpoint is left in {folder}")
    damaged_files = damaged_checkpoints(folder, f"{stage}_checkpoint_*")
    if damaged_files:
        raise CheckpointError(
            f"no intact {stage} checkpoint in {folder}: {', '.join(p.name for p in damaged_files)}"
            f" cannot be read; to start the {stage} stage over, move the damaged files away")
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True on the CPU; a clear error for a missing or bad file.

    A file that cannot be loaded at all (empty, truncated, corrupt) raises
    DamagedCheckpointError, a CheckpointError that callers searching a run folder skip.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    problem = _truncation(path)
    if problem is not None:
        raise DamagedCheckpointError(path, problem)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which, not a pickle traceback
        raise DamagedCheckpointError(
            path, f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
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
        saved_config = config_from_dict(meta["config"], origin=str(path))
        ignore = runtime_keys()
        if meta["stage"] == "pretrain":
            ignore |= keys_pretraining_ignores(saved_config)
        differences = config_differences(config_to_dict(saved_config), config_to_dict(config),
                                         ignore=ignore,
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
