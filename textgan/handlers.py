"""attach_* functions: everything a training stage does besides its step.

A process function does forward, loss, backward and step and returns floats; progress bars,
checkpoints, the NaN stop, time limits, sampler epochs and TensorBoard are attached here, the
way ignite's own examples do it.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ProgressBar, TensorboardLogger
from ignite.metrics import Frequency, RunningAverage

from textgan import parallel
from textgan.corpora.bars import can_draw_bars
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


def attach_interrupt_checkpoint(trainer: Engine, checkpointer: Checkpoint, *,
                                agreed: bool | None = None) -> None:
    """On Ctrl-C, save a checkpoint and stop with KeyboardInterrupt (the shell then says 130).

    One process: the KeyboardInterrupt lands wherever the process is, and the checkpoint holds
    the last completed iteration.

    Several processes (`agreed`, the default there): Ctrl-C reaches every process at once, but
    each would be interrupted at a different point, some of them while waiting in a collective
    for a peer that has just left it; those fail ("Connection closed by peer") without saving.
    So Ctrl-C only asks to stop: the processes agree on it after each iteration, stop together
    (an epoch's last iteration first runs its validation and checkpoint), and save a full
    checkpoint, every process's random state included, so the resume is exact. A second
    Ctrl-C stops at once, as in one process.
    """
    agreed = parallel.world_size() > 1 if agreed is None else agreed
    if agreed:
        _attach_ctrl_c_request(trainer, checkpointer)

    @trainer.on(Events.EXCEPTION_RAISED)
    def _on_exception(engine: Engine, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt) and not getattr(engine.state, "stopped_by_ctrl_c",
                                                                False):
            # ignite counts an iteration when it starts and resets state.output when its batch
            # arrives; an output of None means the step was interrupted before it returned, so
            # that iteration did not happen. (ignite has already set last_event_name to
            # EXCEPTION_RAISED here, so it cannot tell us.)
            if engine.state.output is None:
                engine.state.iteration -= 1
            checkpointer(engine)  # written by rank 0 alone in a data-parallel run
            _say_interrupted(engine, checkpointer)
        raise error


def _attach_ctrl_c_request(trainer: Engine, checkpointer: Checkpoint) -> None:
    """SIGINT sets a flag while the trainer runs; the processes stop together on it."""
    requested = {"stop": False}
    previous: dict[str, Any] = {}

    def _request(signum: int, frame: Any) -> None:
        requested["stop"] = True
        signal.signal(signal.SIGINT, previous["handler"])  # a second Ctrl-C stops at once
        if is_main_process():
            log.warning("Ctrl-C: stopping all processes after this iteration (press it again "
                        "to stop at once)")

    @trainer.on(Events.STARTED)
    def _install(engine: Engine) -> None:
        if threading.current_thread() is threading.main_thread():  # signal's own condition
            previous["handler"] = signal.signal(signal.SIGINT, _request)

    @trainer.on(Events.COMPLETED)
    @trainer.on(Events.EXCEPTION_RAISED)
    def _restore(engine: Engine, *_: Any) -> None:
        if "handler" in previous:
            signal.signal(signal.SIGINT, previous.pop("handler"))

    def _stop(engine: Engine) -> None:
        engine.state.stopped_by_ctrl_c = True

    attach_agreed_stop(trainer, lambda: requested["stop"], _stop)

    @trainer.on(Events.COMPLETED)
    def _raise(engine: Engine) -> None:
        # after the end-of-run checkpoint (the stages attach this handler after theirs)
        if getattr(engine.state, "stopped_by_ctrl_c", False):
            _say_interrupted(engine, checkpointer)
            raise KeyboardInterrupt


def _say_interrupted(engine: Engine, checkpointer: Checkpoint) -> None:
    if is_main_process():
        log.warning("interrupted: checkpoint saved at iteration %d in %s; run the same command "
                    "again to resume", engine.state.iteration, checkpointer.save_handler.dirname)


def attach_agreed_stop(trainer: Engine, wanted: Callable[[], bool],
                       on_stop: Callable[[Engine], None]) -> None:
    """Stop the run between iterations once `wanted()` is true in any process.

    All processes ask each other after every iteration (one all-reduce of a flag) and stop at
    the same one: one stopping alone would leave the others waiting in an all-reduce. After an
    epoch's last iteration they ask at the epoch's end instead, so that epoch's validation and
    checkpoint still run (stopping before them would skip them for good: the resumed run
    starts the next epoch). Attach it after the epoch-end handlers. The run's end handlers then
    save a checkpoint.
    """
    def _check(engine: Engine) -> None:
        if any_process(wanted()):
            on_stop(engine)
            engine.terminate()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _between_iterations(engine: Engine) -> None:
        if engine.state.iteration % engine.state.epoch_length:
            _check(engine)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _check)


PROGRESS_LINES_PER_EPOCH = 20


def attach_progress(trainer: Engine, names: Sequence[str], *, token_key: str = "tokens",
                    state_attributes: Sequence[str] = (), disable: bool = False) -> None:
    """Progress with running averages of the step outputs, tokens/s and scheduled values: a bar
    on a terminal; where a bar cannot redraw in place (output to a file or a pipe, where it is a
    wall of carriage returns) a log line every 5% of an epoch instead. `disable` (--no-progress)
    turns both off."""
    for name in names:
        RunningAverage(output_transform=_pick(name)).attach(trainer, name)
    Frequency(output_transform=_pick(token_key)).attach(trainer, "tok/s")
    if disable:
        return
    if can_draw_bars():
        ProgressBar(persist=True).attach(
            trainer, metric_names=[*names, "tok/s"], state_attributes=list(state_attributes))
        return
    keys = [*names, "tok/s"]

    @trainer.on(Events.ITERATION_COMPLETED)
    def _progress_line(engine: Engine) -> None:
        length = engine.state.epoch_length or 0
        step = max(1, length // PROGRESS_LINES_PER_EPOCH)
        within = (engine.state.iteration - 1) % length + 1 if length else engine.state.iteration
        if within % step and within != length:
            return
        values = [f"{key} {engine.state.metrics[key]:.4g}" for key in keys
                  if key in engine.state.metrics]
        values += [f"{key} {getattr(engine.state, key):.4g}" for key in state_attributes
                   if isinstance(getattr(engine.state, key, None), (int, float))]
        log.info("epoch %d, iteration %d/%d (%d%%): %s", engine.state.epoch, within, length,
                 100 * within // length if length else 0, ", ".join(values))


def attach_time_limit(trainer: Engine, seconds: float) -> None:
    """Stop (the run's end handlers then save a checkpoint) after `seconds` of this run.

    Our own handler rather than ignite's TimeLimit, which refuses a float limit and stops one
    process alone in a data-parallel run. Attach it after the epoch-end handlers.
    """
    if seconds <= 0:
        return
    started = time.monotonic()

    def _say(engine: Engine) -> None:
        log.info("time limit of %g s reached at iteration %d; stopping (run the same "
                 "command again to go on)", seconds, engine.state.iteration)

    attach_agreed_stop(trainer, lambda: time.monotonic() - started > seconds, _say)


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
