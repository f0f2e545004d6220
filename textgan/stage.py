"""What every training stage does around its engine: flags, resume, finish, summary.

The stages (`pretrain`, `train`) differ in their networks and steps; how they find, check and
restore a checkpoint, decide that they are finished, what they validate on, save at the end and
report is the same, and lives here.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.utils import manual_seed
from torch import nn
from torch.utils.data import DataLoader

from textgan import parallel

from textgan.checkpoint import (
    RunPaths,
    default_run_dir,
    best_checkpoint,
    check_compatible,
    forget_missing_files,
    latest_checkpoint,
    read_checkpoint,
    restore,
)
from textgan.cli import resolve_run_config
from textgan.config import Config, config_to_dict, save_config
from textgan.data import fixed_sample, make_loader

log = logging.getLogger(__name__)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that are not part of the config: where the run lives and what runs it."""
    parser.add_argument("--run-dir", default=None,
                        help="run folder (default: checkpoints/<preset>); resumed if it holds "
                             "a checkpoint")
    parser.add_argument("--device", default="auto",
                        help="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parallel.add_parallel_arguments(parser)


def run_paths(args: argparse.Namespace) -> RunPaths:
    return RunPaths(Path(args.run_dir) if args.run_dir else default_run_dir(args.preset or
                                                                             "default"))


def open_run(args: argparse.Namespace, overrides: Sequence[str],
             sections: Sequence[str]) -> tuple[RunPaths, Config, torch.device]:
    """What every process of a stage does first: its run folder, config and device.

    Rank 0 resolves the config and saves it into the run folder first; the other processes
    then read the same one. Only rank 0 logs progress.
    """
    if not parallel.is_main_process():
        logging.getLogger("textgan").setLevel(logging.WARNING)
    if args.no_progress or not parallel.is_main_process():
        # the datasets library's own bars (tokenising, filtering) too, not only the stage's
        datasets.disable_progress_bars()
    paths = run_paths(args)

    def resolve() -> Config:
        cfg, _ = resolve_run_config(args, overrides, paths.config, sections)
        if parallel.is_main_process():
            save_config(cfg, paths.config)
        return cfg

    cfg = parallel.main_process_first(resolve)
    log.info("run folder: %s%s", paths.root, f" ({parallel.world_size()} processes)"
             if parallel.world_size() > 1 else "")
    return paths, cfg, parallel.pick_device(args.device)


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
    """Restore the newest checkpoint of the stage, if any, after checking it fits this run."""
    path = latest_checkpoint(stage_dir, stage)
    if path is None:
        return None
    state = read_checkpoint(path)
    check_compatible(state, path, config=cfg, tokenizer_sha256=tokenizer.sha256,
                     stages=(stage,))
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
