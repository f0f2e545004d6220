"""Scheduled scalars (KL weight, word dropout; later temperature, lambdas): ignite state schedulers.

Each schedule writes `engine.state.<param_name>` and is saved in checkpoints with the models:

    schedules = make_pretrain_schedules(cfg.pretrain)     # {"kl_schedule": ..., ...}
    attach_schedules(trainer, schedules)                  # at Events.ITERATION_STARTED
    to_save = {..., **schedules}                          # state_dict() holds plain numbers only
    # in the process function: engine.state.kl_weight, engine.state.word_dropout

Every schedule is a pure function of the step `value_at(step)`, step = 0 for the first training
iteration, wrapped in a small `StateParamScheduler` subclass. Why this shape:

- not `LambdaStateScheduler`: its state holds the callable, which fails to pickle (a lambda) or
  to load under `torch.load(weights_only=True)` (an object). Ours hold numbers and a kind string;
- attached at `ITERATION_STARTED`, so the value is set before the process function of the same
  iteration reads it (at the default `ITERATION_COMPLETED` it would be None in iteration 1);
- ignite increments `event_index` *before* calling `get_param`, so the first call sees 1:
  `get_param` evaluates `value_at(event_index - 1)`, and iteration 1 gets the step-0 value (a
  linear ramp without warm-up starts at exactly 0.0).

The adversarial stage adds its schedules (temperature toward a floor, ...) as further
`StepSchedule` subclasses: define `value_at`, list the numeric attributes in `_state_attrs`.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Union

from ignite.engine import Engine, Events
from ignite.handlers import StateParamScheduler

from textgan.config import PretrainConfig
from textgan.errors import CheckpointError

logger = logging.getLogger(__name__)

KL_WEIGHT = "kl_weight"        # engine.state attribute of beta(t)
WORD_DROPOUT = "word_dropout"  # engine.state attribute of the word dropout rate


class StepSchedule(StateParamScheduler):
    """A checkpointable schedule: `value_at(step)` for step = 0, 1, 2, ... (iterations done).

    `kind` names the subclass in the state dict, so a checkpoint of one schedule cannot be loaded
    into another (it would silently take the other's numbers).
    """

    kind = "step"

    def __init__(self, param_name: str, save_history: bool = False, create_new: bool = True):
        # create_new=True: attaching two schedules that write the same state attribute is an
        # error instead of a silent overwrite.
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        self._state_attrs += ["kind"]

    @abstractmethod
    def value_at(self, step: int) -> float:
        """The scheduled value during the iteration that follows `step` completed iterations."""

    def get_param(self) -> float:
        # ignite has already incremented event_index: 1 during the first iteration.
        return float(self.value_at(self.event_index - 1))

    def load_state_dict(self, state_dict: Mapping) -> None:
        saved_kind = state_dict.get("kind") if isinstance(state_dict, Mapping) else None
        if saved_kind != self.kind:
            raise CheckpointError(f"schedule '{self.param_name}': the checkpoint holds a "
                                  f"'{saved_kind}' schedule, this run builds a '{self.kind}' one")
        super().load_state_dict(state_dict)


class ConstantSchedule(StepSchedule):
    """value(t) = value."""

    kind = "constant"

    def __init__(self, value: float, param_name: str, save_history: bool = False,
                 create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        self.value = float(value)
        self._state_attrs += ["value"]

    def value_at(self, step: int) -> float:
        return self.value


class LinearRamp(StepSchedule):
    """Hold `start_value` for `warmup_steps`, go linearly to `end_value` over `ramp_steps`, hold.

        value(t) = start                                  t < W
                 = start + (end - start) * (t - W) / R    W <= t < W + R
                 = end                                    t >= W + R

    start > end gives a linear decay (e.g. a temperature toward its floor).
    """

    kind = "linear"

    def __init__(self, start_value: float, end_value: float, ramp_steps: int,
                 param_name: str, warmup_steps: int = 0, save_history: bool = False,
                 create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        _check_steps(ramp_steps=ramp_steps, warmup_steps=warmup_steps)
        self.start_value, self.end_value = float(start_value), float(end_value)
        self.warmup_steps, self.ramp_steps = int(warmup_steps), int(ramp_steps)
        self._state_attrs += ["start_value", "end_value", "warmup_steps", "ramp_steps"]

    def value_at(self, step: int) -> float:
        progress = min(1.0, max(0.0, (step - self.warmup_steps) / self.ramp_steps))
        return self.start_value + (self.end_value - self.start_value) * progress


class SigmoidRamp(StepSchedule):
    """Bowman et al. (2016) logistic KL annealing, rescaled to hit 0 and `max_value` exactly.

    With W = warmup_steps, R = ramp_steps, centre c = W + R/2 and slope k = 2 ln(99) / R (so the
    plain logistic sigma(k (t - c)) goes from 0.01 at t = W to 0.99 at t = W + R):

        value(t) = 0                                                       t < W
                 = max * (sigma(k (t - c)) - 0.01) / 0.98                  W <= t < W + R
                 = max                                                     t >= W + R

    The affine rescaling keeps the logistic shape (and max/2 at the centre) while making the
    schedule continuous with the warm-up at 0 and reach exactly `max_value` at the end of the
    ramp, instead of jumping from 0 to 1% at t = W and creeping toward max forever after.
    """

    kind = "sigmoid"
    EDGE = 0.01  # the plain logistic's value at the start of the ramp

    def __init__(self, max_value: float, ramp_steps: int, param_name: str,
                 warmup_steps: int = 0, save_history: bool = False, create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        _check_steps(ramp_steps=ramp_steps, warmup_steps=warmup_steps)
        self.max_value = float(max_value)
        self.warmup_steps, self.ramp_steps = int(warmup_steps), int(ramp_steps)
        self._state_attrs += ["max_value", "warmup_steps", "ramp_steps"]

    def value_at(self, step: int) -> float:
        if step <= self.warmup_steps:  # the formula gives 0 at t = W, up to rounding
            return 0.0
        if step >= self.warmup_steps + self.ramp_steps:
            return self.max_value
        slope = 2.0 * math.log((1.0 - self.EDGE) / self.EDGE) / self.ramp_steps
        centre = self.warmup_steps + self.ramp_steps / 2.0
        logistic = 1.0 / (1.0 + math.exp(-slope * (step - centre)))
        return self.max_value * (logistic - self.EDGE) / (1.0 - 2.0 * self.EDGE)


class CyclicalRamp(StepSchedule):
    """Cyclical annealing (Fu et al. 2019): in every cycle a linear ramp 0 -> max, then a hold.

    With W = warmup_steps, L = cycle_steps and ratio r:

        value(t) = 0                                t < W
                 = max * min(1, u / (r * L))        u = (t - W) mod L, t >= W

    so each cycle starts at exactly 0, reaches max after r*L iterations and holds it until the
    cycle ends. Cycles repeat until training stops (Fu et al. fix the number of cycles M over T
    iterations instead; L = T / M is the same schedule).
    """

    kind = "cyclical"

    def __init__(self, max_value: float, cycle_steps: int, ratio: float, param_name: str,
                 warmup_steps: int = 0, save_history: bool = False, create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        _check_steps(cycle_steps=cycle_steps, warmup_steps=warmup_steps)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.max_value, self.ratio = float(max_value), float(ratio)
        self.warmup_steps, self.cycle_steps = int(warmup_steps), int(cycle_steps)
        self._state_attrs += ["max_value", "ratio", "warmup_steps", "cycle_steps"]

    def value_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return 0.0
        position = (step - self.warmup_steps) % self.cycle_steps
        return self.max_value * min(1.0, position / (self.ratio * self.cycle_steps))


def _check_steps(**steps: int) -> None:
    for name, value in steps.items():
        minimum = 0 if name == "warmup_steps" else 1
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


# --------------------------------------------------------------------------- construction


def make_kl_schedule(cfg: PretrainConfig) -> StepSchedule:
    """beta(t), written to `engine.state.kl_weight`, from `cfg.kl_schedule` and its fields."""
    if cfg.kl_schedule == "constant":
        return ConstantSchedule(cfg.kl_max, param_name=KL_WEIGHT)
    if cfg.kl_schedule == "linear":
        return LinearRamp(0.0, cfg.kl_max, ramp_steps=cfg.kl_ramp_steps,
                          warmup_steps=cfg.kl_warmup_steps, param_name=KL_WEIGHT)
    if cfg.kl_schedule == "sigmoid":
        return SigmoidRamp(cfg.kl_max, ramp_steps=cfg.kl_ramp_steps,
                           warmup_steps=cfg.kl_warmup_steps, param_name=KL_WEIGHT)
    if cfg.kl_schedule == "cyclical":
        return CyclicalRamp(cfg.kl_max, cycle_steps=cfg.kl_cycle_steps, ratio=cfg.kl_cycle_ratio,
                            warmup_steps=cfg.kl_warmup_steps, param_name=KL_WEIGHT)
    raise ValueError(f"unknown kl_schedule {cfg.kl_schedule!r}")  # validate() should catch it


def make_word_dropout_schedule(cfg: PretrainConfig) -> StepSchedule:
    """Word dropout rate, written to `engine.state.word_dropout`."""
    if cfg.word_dropout_schedule == "constant":
        return ConstantSchedule(cfg.word_dropout, param_name=WORD_DROPOUT)
    if cfg.word_dropout_schedule == "linear":
        return LinearRamp(0.0, cfg.word_dropout, ramp_steps=cfg.word_dropout_ramp_steps,
                          param_name=WORD_DROPOUT)
    raise ValueError(f"unknown word_dropout_schedule {cfg.word_dropout_schedule!r}")


def make_pretrain_schedules(cfg: PretrainConfig) -> dict[str, StepSchedule]:
    """The pretraining schedules keyed by their checkpoint names (merge into `to_save`)."""
    return {"kl_schedule": make_kl_schedule(cfg),
            "word_dropout_schedule": make_word_dropout_schedule(cfg)}


Schedules = Union[Mapping[str, StateParamScheduler], Iterable[StateParamScheduler]]


def attach_schedules(engine: Engine, schedules: Schedules) -> None:
    """Attach each schedule at ITERATION_STARTED, so its value is set before the step reads it.

    Attach before loading a checkpoint or after, either works: loading replaces only the
    schedulers' counters and numbers. The attribute stays None until the first iteration starts.
    """
    items: Iterable[Any] = schedules.values() if isinstance(schedules, Mapping) else schedules
    for schedule in items:
        schedule.attach(engine, Events.ITERATION_STARTED)
        logger.debug("schedule %s attached (%s)", schedule.param_name, type(schedule).__name__)
