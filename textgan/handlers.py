"""attach_* functions: everything a training stage does besides its step.

A process function does forward, loss, backward and step and returns floats; progress bars,
checkpoints, the NaN stop, time limits, sampler epochs and TensorBoard are attached here, the
way ignite's own examples do it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ProgressBar, TensorboardLogger
from ignite.metrics import Frequency, RunningAverage

from textgan.parallel import any_process, is_main_process

log = logging.getLogger(__name__)


def attach_sampler_epochs(trainer: Engine, sampler: Any) -> None:
    """Give the batch sampler the epoch (and, after a mid-epoch resume, the batches to skip).

    ignite restarts the data iterator when a run resumes mid-epoch and then runs only the
    remaining iterations of that epoch; skipping the batches already done makes the resumed
    epoch see exactly the batches an uninterrupted run would have seen.
    """

    @trainer.on(Events.EPOCH_STARTED)
    def _set_epoch(engine: Engine) -> None:
        done = engine.state.iteration - (engine.state.epoch - 1) * engine.state.epoch_length
        sampler.set_epoch(engine.state.epoch, skip_batches=done)


def attach_nan_stop(trainer: Engine, key: str = "loss") -> None:
    """Stop with a clear message when the loss stops being a finite number."""

    @trainer.on(Events.ITERATION_COMPLETED)
    def _check(engine: Engine) -> None:
        value = engine.state.output[key]
        if not math.isfinite(value):
            log.error("%s became %s at iteration %d; stopping. The last checkpoint before it is "
                      "intact. Try a lower learning rate, a lower grad_clip, or fp32.",
                      key, value, engine.state.iteration)
            engine.state.stopped_on_nan = True
            engine.terminate()


def attach_interrupt_checkpoint(trainer: Engine, checkpointer: Checkpoint) -> None:
    """On Ctrl-C, save a checkpoint of the last completed iteration, then let it propagate."""

    @trainer.on(Events.EXCEPTION_RAISED)
    def _on_exception(engine: Engine, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt):
            # ignite counts an iteration when it starts and resets state.output when its batch
            # arrives; an output of None means the step was interrupted before it returned, so
            # that iteration did not happen. (ignite has already set last_event_name to
            # EXCEPTION_RAISED here, so it cannot tell us.)
            if engine.state.output is None:
                engine.state.iteration -= 1
            checkpointer(engine)  # written by rank 0 alone in a data-parallel run
            if is_main_process():
                log.warning("interrupted: checkpoint saved at iteration %d in %s; run the same "
                            "command again to resume", engine.state.iteration,
                            checkpointer.save_handler.dirname)
        raise error


def attach_progress(trainer: Engine, names: Sequence[str], *, token_key: str = "tokens",
                    state_attributes: Sequence[str] = (), disable: bool = False) -> None:
    """Progress bar with running averages of the step outputs, tokens/s and scheduled values."""
    for name in names:
        RunningAverage(output_transform=_pick(name)).attach(trainer, name)
    Frequency(output_transform=_pick(token_key)).attach(trainer, "tok/s")
    ProgressBar(persist=True, disable=disable).attach(
        trainer, metric_names=[*names, "tok/s"], state_attributes=list(state_attributes))


def attach_time_limit(trainer: Engine, seconds: float) -> None:
    """Stop (the run's end handlers then save a checkpoint) after `seconds` of this run.

    Our own handler rather than ignite's TimeLimit, which refuses a float limit; in a
    data-parallel run all processes stop at the same iteration, since one stopping alone
    would leave the others waiting in an all-reduce.
    """
    if seconds <= 0:
        return
    started = time.monotonic()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _stop_when_out_of_time(engine: Engine) -> None:
        if any_process(time.monotonic() - started > seconds):
            log.info("time limit of %g s reached at iteration %d; stopping (run the same "
                     "command again to go on)", seconds, engine.state.iteration)
            engine.terminate()


def _pick(key: str) -> Callable[[dict[str, float]], float]:
    return lambda output: output[key]


def attach_tensorboard(trainer: Engine, evaluator: Engine | None, log_dir: Path, *,
                       output_keys: Sequence[str], state_attributes: Sequence[str],
                       optimizers: Mapping[str, Any], every: int,
                       per_dim_key: str | None = None) -> TensorboardLogger:
    """Scalars of the step every `every` iterations, validation metrics after each validation.

    The global step is always the trainer's iteration, so train and validation curves share an
    x axis and a resumed run continues the same curves.
    """
    tb = TensorboardLogger(log_dir=str(log_dir))
    tb.attach_output_handler(
        trainer, Events.ITERATION_COMPLETED(every=every), tag="train",
        output_transform=lambda out: {k: out[k] for k in output_keys},
        metric_names=["tok/s"], state_attributes=list(state_attributes))
    for name, optimizer in optimizers.items():
        tb.attach_opt_params_handler(trainer, Events.ITERATION_COMPLETED(every=every),
                                     optimizer=optimizer, param_name="lr", tag=name)
    if per_dim_key:
        @trainer.on(Events.ITERATION_COMPLETED(every=every))
        def _per_dim(engine: Engine) -> None:
            values = torch.as_tensor(engine.state.output[per_dim_key], dtype=torch.float32)
            for stat in ("min", "mean", "max"):
                tb.writer.add_scalar(f"train/{per_dim_key}_{stat}", getattr(values, stat)().item(),
                                     engine.state.iteration)

    if evaluator is not None:
        @evaluator.on(Events.COMPLETED)
        def _validation(engine: Engine) -> None:
            step = trainer.state.iteration
            for name, value in engine.state.metrics.items():
                if isinstance(value, (int, float)):
                    tb.writer.add_scalar(f"valid/{name}", value, step)
                elif isinstance(value, (list, tuple, torch.Tensor)) and len(value):
                    values = torch.as_tensor(value, dtype=torch.float32)
                    tb.writer.add_histogram(f"valid/{name}", values, step)
                    for stat in ("min", "mean", "max"):
                        tb.writer.add_scalar(f"valid/{name}_{stat}", getattr(values, stat)().item(),
                                             step)
    return tb


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table for TensorBoard's text tab (plain newlines collapse there)."""
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(clean, header)) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(clean, row)) + " |" for row in rows]
    return "\n".join(lines)
