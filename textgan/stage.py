"""What every training stage does around its engine: flags, resume, finish, summary.

The stages (`pretrain`, `train`) differ in their networks and steps; how they find, check and
restore a checkpoint, decide that they are finished, what they validate on, save at the end and
report is the same, and lives here: a stage's build function gives its `StageParts`, and
`run_stage` runs them (the lifecycle: resume, the finished checks, the handler order, rank 0's
TensorBoard and text, the summary).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import errno
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, EarlyStopping, EMAHandler
from ignite.utils import manual_seed
from torch import nn
from torch.utils.data import DataLoader

from textgan import parallel

from textgan.checkpoint import (
    RunLock,
    best_checkpoint,
    check_compatible,
    forget_missing_files,
    latest_checkpoint,
    make_best_checkpointer,
    make_checkpointer,
    read_latest_checkpoint,
    restore,
)
from textgan.config import Config, StageConfig, config_to_dict, read_config, save_config
from textgan.devices import add_device_argument, denormals_flushed
from textgan.errors import RunFolderError
from textgan.data import fixed_sample, make_loader
from textgan.handlers import (
    attach_interrupt_checkpoint,
    attach_nan_stop,
    attach_progress,
    attach_sampler_epochs,
    attach_tensorboard,
    attach_time_limit,
)
from textgan.runs import RunPaths, default_run_dir, resolve_config
from textgan.schedules import attach_schedules

log = logging.getLogger(__name__)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that are not part of the config: where the run lives and what runs it."""
    parser.add_argument("--run-dir", default=None,
                        help="run folder (default: checkpoints/<preset>); resumed if it holds "
                             "a checkpoint")
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parallel.add_parallel_arguments(parser)


def run_paths(args: argparse.Namespace) -> RunPaths:
    """The run folder of a command. The first call for a command also notes what the folder
    held before the command touched it (`FolderBefore`, kept on args, so the processes a
    launcher spawns get it too): a start that fails removes only what it added."""
    paths = RunPaths(Path(args.run_dir) if args.run_dir else default_run_dir(args.preset or
                                                                              "default"))
    if getattr(args, "run_folder_before", None) is None:
        args.run_folder_before = FolderBefore.of(paths.root)
    return paths


# What a stage writes into its run folder before its inputs are known good (config.toml only
# with train --from, which seeds a new folder from the checkpoint). A start that fails before
# then removes those of them it added, and the folders it created if they are left empty.
_START_FILES = ("config.toml", "tokenizer.model", "tokenizer.sha256", "tokenizer.model.tmp",
                "tokenizer.sha256.tmp")
_START_FOLDERS = ("pretrain", "train", "tb")


@dataclasses.dataclass(frozen=True)
class FolderBefore:
    """A run folder as a command found it: whether it existed, its entries, and the folders
    above it that did not exist yet (created with it)."""

    existed: bool
    entries: frozenset[str]
    missing_parents: tuple[Path, ...]

    @classmethod
    def of(cls, root: Path) -> FolderBefore:
        try:
            entries = frozenset(os.listdir(root)) if root.is_dir() else frozenset()
        except OSError:  # unreadable: as if it held them all, so that none is ever removed
            return cls(True, frozenset(_START_FILES + _START_FOLDERS), ())
        missing, parent = [], root.parent
        while parent != parent.parent and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        return cls(root.is_dir(), entries, tuple(missing))


# Errors of a folder that may be read but not written: a finished stage can still say so.
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class RunStart:
    """The main process's stage in its run folder, from `open_run` to the end of the stage.

    It holds the folder's lock, and knows whether the start is committed: `resume` commits it
    once the corpus, tokenizer, networks and checkpoint have all been found good, and only then
    writes config.toml (only when it changed, so a read-only finished run still reports). A
    start that fails before its commit removes what it added (`FolderBefore`), so fixing the
    mistake and running the same command again starts afresh, as if the first never happened.
    """

    def __init__(self, paths: RunPaths, before: FolderBefore) -> None:
        self.paths, self.before = paths, before
        self.lock = RunLock(paths.lock)
        self.committed = False
        self.read_only: OSError | None = None

    def open(self) -> None:
        root = self.paths.root
        if root.exists() and not root.is_dir():
            raise RunFolderError(f"--run-dir {root} is a file, not a folder; give a folder "
                                 "path (it is created if missing)")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(_cannot_create(root, error)) from None
        try:
            self.lock.acquire()
        except OSError as error:
            if error.errno not in _READ_ONLY or not self.before.existed:
                raise RunFolderError(f"cannot write in the run folder {root}: "
                                     f"{error.strerror or error}; choose a writable --run-dir") \
                    from None
            # nobody can write here, so nobody needs locking out; a finished stage can still
            # report, and one with work left stops in `is_finished`
            self.read_only = error
            log.info("run folder %s is read-only (%s): only a finished stage can run here",
                     root, error.strerror)

    def commit(self, cfg: Config) -> None:
        """The inputs are good: save the config (when it differs from the folder's)."""
        path = self.paths.config
        unchanged = path.is_file() and config_to_dict(read_config(path)) == config_to_dict(cfg)
        # read-only: `is_finished` refuses the stage unless it has nothing left to do
        if not unchanged and not self.read_only:
            temporary = path.with_name(path.name + f".tmp-{os.getpid()}")
            try:  # whole or not at all: an interrupted write must not leave half a config
                save_config(cfg, temporary)
                os.replace(temporary, path)
            except OSError as error:
                temporary.unlink(missing_ok=True)
                raise RunFolderError(f"cannot write {path}: {error.strerror or error}") from None
        self.committed = True

    def close(self, failed: bool) -> None:
        """Release the lock; a failed start first removes what it added."""
        try:
            if failed and not self.committed and self.lock.held:
                self._undo()
        finally:
            self.lock.release()
        if failed and not self.committed:
            self.remove_created_folders()

    def _undo(self) -> None:
        root, before = self.paths.root, self.before
        for name in _START_FILES:
            if name not in before.entries:
                (root / name).unlink(missing_ok=True)
        for name in _START_FOLDERS:
            if name not in before.entries:
                _remove_empty_tree(root / name)

    def remove_created_folders(self) -> None:
        """The run folder and those above it, if this start created them and they are empty."""
        if self.before.existed:
            return
        for folder in (self.paths.root, *self.before.missing_parents):
            try:
                folder.rmdir()  # only an empty folder: anything else in it stays
            except OSError:
                return


def _remove_empty_tree(folder: Path) -> None:
    """Remove folder and its subfolders if no file is anywhere inside."""
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_empty_tree(child)
    try:
        folder.rmdir()
    except OSError:
        pass


def _cannot_create(root: Path, error: OSError) -> str:
    """Why a run folder cannot be made, naming the path at fault."""
    existing = root.parent
    while existing != existing.parent and not existing.exists():
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return (f"cannot create the run folder {root}: {existing} is a file, not a folder; "
                "choose another --run-dir")
    reason = error.strerror or str(error)
    if error.errno == errno.ENOENT:  # e.g. under /proc: the folder above exists but takes none
        reason = f"{existing} does not take new folders ({reason})"
    elif error.filename:
        reason = f"{reason}: {error.filename}"
    return f"cannot create the run folder {root}: {reason}; choose a --run-dir on a writable disk"


# The stage this process runs (main process only): set by open_run, ended with the worker.
_current: RunStart | None = None


def _end_current(failed: bool) -> None:
    global _current
    start, _current = _current, None
    if start is not None:
        start.close(failed)


# Normally the worker's end closes the start (parallel.at_worker_exit); this is for a stage
# run outside parallel.launch.
atexit.register(_end_current, True)


def open_run(args: argparse.Namespace, overrides: Sequence[str],
             sections: Sequence[str]) -> tuple[RunPaths, Config, torch.device]:
    """What every process of a stage does first: its run folder, config and device.

    The main process (rank 0) takes the run folder's lock and resolves the config; the others
    then resolve the same one. Nothing is written to the folder until `resume` finds the
    inputs good. Only rank 0 logs progress.
    """
    if not parallel.is_main_process():
        logging.getLogger("textgan").setLevel(logging.WARNING)
    if args.no_progress or not parallel.is_main_process():
        # the datasets library's own bars (tokenising, filtering) too, not only the stage's
        datasets.disable_progress_bars()
    paths = run_paths(args)

    def resolve() -> Config:
        if parallel.is_main_process():
            _start(paths, args.run_folder_before)
        seeded = getattr(args, "from_checkpoint", None) \
            if "config.toml" not in args.run_folder_before.entries else None
        cfg, _ = resolve_config(args, overrides, paths.config, sections, seeded_from=seeded)
        return cfg

    cfg = parallel.main_process_first(resolve)
    log.info("run folder: %s%s", paths.root, f" ({parallel.world_size()} processes)"
             if parallel.world_size() > 1 else "")
    return paths, cfg, parallel.pick_device(args.device)


def _start(paths: RunPaths, before: FolderBefore) -> None:
    """Open the main process's RunStart; it ends with the worker (or at exit)."""
    global _current
    _end_current(False)  # a stage opened outside parallel.launch that was never ended
    start = RunStart(paths, before)
    try:
        start.open()
    except BaseException:
        start.remove_created_folders()  # those left empty: the lock was not taken
        raise
    _current = start
    parallel.at_worker_exit(_end_current)


def _commit(cfg: Config) -> None:
    if _current is not None:
        _current.commit(cfg)


def seed_processes(seed: int, *modules: nn.Module) -> None:
    """After building the networks from `seed` in every process: make sure they are equal, then
    give each process its own random stream (seed + rank) for noise and prior samples.

    A single process keeps the stream it has, so its numbers do not depend on this function.
    """
    if parallel.world_size() > 1:
        parallel.broadcast_modules(*modules)
        manual_seed(seed + parallel.rank())


# Objects added to checkpoints after their format was fixed: a checkpoint written before
# lacks them, and they start afresh on its resume.
OPTIONAL_STATE = ("early_stopping",)


def resume(stage: str, cfg: Config, tokenizer: Any, stage_dir: Path,
           to_load: Mapping[str, Any]) -> Path | None:
    """Restore the newest checkpoint of the stage, if any, after checking it fits this run.

    A damaged newest checkpoint is set aside for the newest intact one (with a warning). This
    is where a start is known good: the run folder's config is saved here (`RunStart.commit`).
    """
    # rank 0 sets damaged files aside before the others look
    found = parallel.main_process_first(lambda: read_latest_checkpoint(stage_dir, stage))
    if found is None:
        _commit(cfg)
        return None
    path, state = found
    check_compatible(state, path, config=cfg, tokenizer_sha256=tokenizer.sha256,
                     stages=(stage,))
    _commit(cfg)
    restore({key: value for key, value in to_load.items()
             if key != "meta" and (key in state or key not in OPTIONAL_STATE)}, state)
    for value in to_load.values():
        if isinstance(value, Checkpoint):
            forget_missing_files(value)
    log.info("resumed from %s (iteration %d)", path, to_load["trainer"].state.iteration)
    return path


def is_finished(stage: str, trainer: Engine, epochs: int) -> bool:
    """A stage that has run all its epochs is not run again (ignite would restart it)."""
    state = trainer.state
    if state.epoch_length and state.iteration >= epochs * state.epoch_length:
        log.info("%s already finished: %d of %d epochs done; raise --%s.epochs to train "
                 "longer", stage, state.epoch, epochs, stage)
        return True
    if _current is not None and _current.read_only:
        raise RunFolderError(
            f"the run folder {_current.paths.root} is read-only "
            f"({_current.read_only.strerror}) and the {stage} stage has epochs left "
            f"({state.epoch} of {epochs} done); make the folder writable, or copy it and "
            "pass the copy as --run-dir")
    return False


def validation_loader(data: Any, cfg: Config) -> DataLoader:
    """What both stages validate on every epoch: `data.valid_loader` (a `PreparedData`'s: the
    whole valid split), or, with data.valid_sample, a loader over a fixed sample of it.

    The sample is drawn with data.split_seed (`textgan.data.fixed_sample`), not with the run's
    seed: every epoch, every resume, every process and every seed of a sweep validates on the
    same sentences, so their metrics compare. Batched as the full split is (corpus order, no
    shuffle: the evaluators' seeded noise must meet the same batches every time).
    """
    split, size = data.splits["valid"], cfg.data.valid_sample
    if not size or size >= len(split):
        return data.valid_loader
    full = data.valid_loader
    sampler = full.batch_sampler
    loader = make_loader(fixed_sample(split, size, cfg.data.split_seed), data.tokenizer,
                         data.attribute_names, batch_size=sampler.batch_size,
                         bucket_batches=sampler.bucket_batches, shuffle=False, seed=cfg.seed,
                         pin_memory=full.pin_memory)
    loader.batch_sampler.shard(sampler.rank, sampler.world_size)
    log.info("validating on a fixed sample of %d of the %d validation sentences "
             "(data.valid_sample)", size, len(split))
    return loader


def log_validation(evaluator: Engine, trainer: Engine, *earlier: Engine) -> None:
    """The epoch's line: how long training and validation took, and the validation metrics.

    Attach it to the COMPLETED event of the stage's last evaluator; `earlier` are the
    evaluators that ran before it on the same sentences (their time and metrics count too).
    Training time is ignite's own measure of the epoch's loop (`state.times`, set before the
    epoch-end handlers run; after a mid-epoch resume, the part this run did); validation time
    is the evaluators' runs, without their end handlers (checkpoints, TensorBoard text).
    """
    evaluators = (*earlier, evaluator)
    metrics = {name: value for engine in evaluators for name, value in engine.state.metrics.items()}
    shown = ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()
                      if isinstance(value, (int, float)))
    train_s = trainer.state.times.get(Events.EPOCH_COMPLETED.name) or 0.0
    valid_s = sum(engine.state.times.get(Events.COMPLETED.name) or 0.0 for engine in evaluators)
    dataset = getattr(evaluator.state.dataloader, "dataset", None)
    counted = f" ({len(dataset):,} sentences)" if dataset is not None else ""
    log.info("epoch %d: train %s, validation %s%s: %s", trainer.state.epoch, _seconds(train_s),
             _seconds(valid_s), counted, shown)


def _seconds(value: float) -> str:
    # whole seconds read best in a log line; a tiny run's sub-second epochs still show
    return f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"


def save_unless_nan(trainer: Engine, checkpointer: Any) -> None:
    """Final checkpoint at the end of the run (time limit, early stop), never of NaN weights."""
    if not getattr(trainer.state, "stopped_on_nan", False):
        checkpointer(trainer)


def write_hparams(tb: Any, cfg: Config, metrics: Mapping[str, Any]) -> None:
    """The run's config and final validation scalars in TensorBoard's HPARAMS tab."""
    hparams: dict[str, Any] = {
        f"{section}.{key}": value if isinstance(value, (int, float, str, bool)) else str(value)
        for section, values in config_to_dict(cfg).items() if isinstance(values, dict)
        for key, value in values.items()}
    hparams["seed"] = cfg.seed
    scalars = {f"hparam/{name}": value for name, value in metrics.items()
               if isinstance(value, (int, float))}
    tb.writer.add_hparams(hparams, scalars, run_name=".")


def summary(stage: str, paths: RunPaths, trainer: Engine, metrics: Mapping[str, Any], *,
            finished: bool, resumed_from: Path | None = None) -> dict[str, Any]:
    stage_dir = paths.stage_dir(stage)
    result = {
        "run_dir": str(paths.root),
        "epoch": trainer.state.epoch,
        "iteration": trainer.state.iteration,
        "already_finished": finished,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "stopped_on_nan": bool(getattr(trainer.state, "stopped_on_nan", False)),
        "metrics": dict(metrics),
        "last_checkpoint": str(latest_checkpoint(stage_dir, stage) or ""),
        "best_checkpoint": str(best_checkpoint(stage_dir) or ""),
    }
    log.info("%s: epoch %d, iteration %d; run folder %s", stage, result["epoch"],
             result["iteration"], paths.root)
    return result


# --------------------------------------------------------------------------- the lifecycle


@dataclasses.dataclass
class StageParts:
    """One stage as its build function makes it (`pretrain.build_pretrain`,
    `train.build_train`); `run_stage` runs it. What differs between the stages is here; what
    they share (resume, the finished checks, the handler order, rank 0's work, the summary)
    is in `run_stage`, so the two cannot drift apart."""

    stage: str  # "pretrain" or "train": the checkpoint names and the config section
    title: str  # how the log names the stage ("pretraining")
    data: Any  # the `PreparedData` the networks were built for
    trainer: Engine
    schedules: dict[str, Any]
    # a checkpoint's objects (networks, optimizers, trainer, schedules, early stopping, rng,
    # meta) in the order it holds them; the checkpointers are added by `run_stage`
    to_save: dict[str, Any]
    # run on the validation split in this order every epoch; the last one's end logs the epoch
    evaluators: tuple[Engine, ...]
    early_stopping: EarlyStopping
    score_name: str  # what early stopping waits to improve, for the log ("validation ELBO")
    progress_keys: list[str]
    progress_attributes: list[str]  # schedule values beside the progress bar
    tb_keys: list[str]
    tb_attributes: list[str]
    optimizers: dict[str, Any]  # by their TensorBoard names
    nan_keys: tuple[str, ...] = ("loss",)
    best_metric: str | None = None  # keep the best checkpoint by this (higher is better)
    ema: EMAHandler | None = None
    per_dim_key: str | None = None
    # the merged metrics of the last validation (`early_stopping` may read them)
    validation: dict[str, Any] = dataclasses.field(default_factory=dict)
    # what a stage without a checkpoint of its own starts from (train: the pretrained VAE)
    fresh_start: Callable[[], None] | None = None
    # rank 0: TensorBoard text (samples, reconstructions, transfers), given the logger
    show_text: Callable[[Any], None] | None = None

    def settings(self, cfg: Config) -> StageConfig:
        """The stage's own config section (cfg.pretrain or cfg.train): its loop settings."""
        return getattr(cfg, self.stage)

    def metrics(self) -> dict[str, Any]:
        """Every evaluator's latest metrics, in the evaluators' order."""
        return {name: value for engine in self.evaluators
                for name, value in (engine.state.metrics or {}).items()}


def attach_step_handlers(parts: StageParts) -> None:
    """What the step needs every iteration, first: the schedules it reads, the epoch's batch
    order and the EMA of the weights. The benchmarks time a trainer with exactly these."""
    attach_schedules(parts.trainer, parts.schedules)
    attach_sampler_epochs(parts.trainer, parts.data.train_loader.batch_sampler)
    if parts.ema:
        parts.ema.attach(parts.trainer)


def run_stage(args: argparse.Namespace, overrides: Sequence[str], sections: Sequence[str],
              prepare: Callable[..., Any],
              build: Callable[[Config, Any, torch.device], StageParts]) -> dict[str, Any]:
    """A stage in one process (of one or several: see textgan.parallel), from its run folder
    to its summary. `prepare(cfg, paths, device=)` gives the data (`prepare.prepare_data`,
    passed in because it sits beside this module), `build(cfg, data, device)` the stage.
    Runs with denormals flushed (`devices.denormals_flushed`: the soft sentences are slow
    without)."""
    with denormals_flushed():
        return _run_stage(args, overrides, sections, prepare, build)


def _run_stage(args: argparse.Namespace, overrides: Sequence[str], sections: Sequence[str],
               prepare: Callable[..., Any],
               build: Callable[[Config, Any, torch.device], StageParts]) -> dict[str, Any]:
    paths, cfg, device = open_run(args, overrides, sections)
    manual_seed(cfg.seed)
    parts = build(cfg, prepare(cfg, paths, device=device), device)
    settings = parts.settings(cfg)
    best, checkpointer, resumed_from = _checkpoint_and_resume(parts, cfg, paths)
    if _already_finished(parts, settings):
        return summary(parts.stage, paths, parts.trainer, {}, finished=True)
    _attach_handlers(parts, cfg, best, checkpointer, no_progress=args.no_progress)
    if not parallel.is_main_process():  # rank 0 alone writes TensorBoard and sample text
        parts.trainer.run(parts.data.train_loader, max_epochs=settings.epochs)
    else:
        _run_with_tensorboard(parts, cfg, paths)
    return summary(parts.stage, paths, parts.trainer, parts.metrics(), finished=False,
                   resumed_from=resumed_from)


def _checkpoint_and_resume(parts: StageParts, cfg: Config,
                           paths: RunPaths) -> tuple[Checkpoint | None, Checkpoint, Path | None]:
    """The stage's checkpointers, and the newest checkpoint restored (else the fresh start)."""
    stage, stage_dir = parts.stage, paths.stage_dir(parts.stage)
    best = make_best_checkpointer(parts.to_save, stage_dir, parts.trainer, parts.best_metric,
                                  1.0) if parts.best_metric else None
    # the best checkpointer's list is saved (and restored) with every checkpoint
    extra = {"best_checkpointer": best} if best else {}
    checkpointer = make_checkpointer({**parts.to_save, **extra}, stage_dir, stage,
                                     keep_last=parts.settings(cfg).keep_last)
    resumed_from = resume(stage, cfg, parts.data.tokenizer, stage_dir,
                          {**parts.to_save, **extra, "checkpointer": checkpointer})
    if resumed_from is None and parts.fresh_start:
        parts.fresh_start()
    return best, checkpointer, resumed_from


def _already_finished(parts: StageParts, settings: Any) -> bool:
    """Stopped early, or all epochs done: nothing to do (ignite would restart the stage)."""
    if settings.patience and parts.early_stopping.counter >= settings.patience:
        # the stage's own logger, as the log has always named it
        logging.getLogger(f"textgan.{parts.stage}").info(
            "%s stopped early at epoch %d (no better %s for %d validations); nothing to do",
            parts.title, parts.trainer.state.epoch, parts.score_name, settings.patience)
        return True
    return is_finished(parts.stage, parts.trainer, settings.epochs)


def _attach_handlers(parts: StageParts, cfg: Config, best: Checkpoint | None,
                     checkpointer: Checkpoint, *, no_progress: bool) -> None:
    """Every process's handlers. Order matters: schedules before the step reads them;
    validation (and with it the best checkpoint and early stopping) before the epoch-end
    checkpoint, so that the checkpoint holds the updated best score and early-stopping counter
    and a resumed run repeats nothing."""
    trainer, settings = parts.trainer, parts.settings(cfg)
    attach_step_handlers(parts)
    for key in parts.nan_keys:
        attach_nan_stop(trainer, key)
    _attach_validation(parts, validation_loader(parts.data, cfg), best, settings.patience)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    if settings.checkpoint_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=settings.checkpoint_every),
                                  checkpointer)
    trainer.add_event_handler(Events.COMPLETED, save_unless_nan, checkpointer)
    # after the epoch-end and run-end handlers: see attach_agreed_stop
    attach_time_limit(trainer, settings.time_limit)
    attach_interrupt_checkpoint(trainer, checkpointer)
    attach_progress(trainer, parts.progress_keys, state_attributes=parts.progress_attributes,
                    disable=no_progress or not parallel.is_main_process())


def _attach_validation(parts: StageParts, loader: DataLoader, best: Checkpoint | None,
                       patience: int) -> None:
    """Each epoch's end runs the evaluators in order; the last one's end collects their
    metrics, keeps the best checkpoint, steps early stopping and logs the epoch's line."""
    *earlier, last = parts.evaluators

    @parts.trainer.on(Events.EPOCH_COMPLETED)
    def _validate() -> None:
        for evaluator in parts.evaluators:
            evaluator.run(loader)

    @last.on(Events.COMPLETED)
    def _collect() -> None:
        # the evaluators' metrics were attached when they were made, so they are complete here
        parts.validation.clear()
        parts.validation.update(parts.metrics())

    if best is not None:
        last.add_event_handler(Events.COMPLETED, best)
    if patience:
        last.add_event_handler(Events.COMPLETED, parts.early_stopping)
    last.add_event_handler(Events.COMPLETED, log_validation, parts.trainer, *earlier)


def _run_with_tensorboard(parts: StageParts, cfg: Config, paths: RunPaths) -> None:
    """Rank 0's run: TensorBoard scalars and text beside it, the config and final scores in
    its HPARAMS tab."""
    settings = parts.settings(cfg)
    tb = attach_tensorboard(parts.trainer, parts.evaluators[-1],
                            paths.tensorboard_dir(parts.stage), output_keys=parts.tb_keys,
                            state_attributes=parts.tb_attributes, optimizers=parts.optimizers,
                            every=settings.log_every, per_dim_key=parts.per_dim_key)
    if parts.show_text:
        parts.show_text(tb)
    try:
        parts.trainer.run(parts.data.train_loader, max_epochs=settings.epochs)
        write_hparams(tb, cfg, parts.metrics())
    finally:
        tb.close()
