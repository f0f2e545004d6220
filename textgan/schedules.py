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

from textgan.config import PretrainConfig, TrainConfig
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


# --------------------------------------------------------------------------- adversarial stage

TEMPERATURE = "tau"                  # engine.state attribute of the relaxation temperature
HARD_RELAXATION = "hard_relaxation"  # engine.state attribute: 1.0 = hard (one-hot) forward


class TemperatureSchedule(StepSchedule):
    """tau(t) from `tau_start` toward the floor `tau_min`, counted from `start_step`.

    With u = max(0, step - start_step) (wake-sleep steps done) and S = tau_steps, a subclass
    defines the decay `anneal(u)` for 0 <= u < S; then

        tau = tau_start                       u = 0
            = max(tau_min, anneal(u))         0 < u < S
            = tau_min                         u >= S      (subclasses may approach it instead)

    `start_step` exists because the train stage spends its first `d_warmup_steps` iterations on
    D alone: the temperature is that of "the first wake-sleep step" (train.tau_start), so the
    decay must not run while nothing is generated. The max() with the floor holds whatever a
    subclass's `anneal` does (the three here stay above it for u < S by construction); a
    temperature below its floor is the one thing the schedule promises never to produce.
    """

    kind = "temperature"

    def __init__(self, tau_start: float, tau_min: float, tau_steps: int, *,
                 start_step: int = 0, param_name: str = TEMPERATURE,
                 save_history: bool = False, create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        if not 0.0 < tau_min <= tau_start:
            raise ValueError(f"need 0 < tau_min <= tau_start, got tau_min={tau_min}, "
                             f"tau_start={tau_start}")
        _check_steps(tau_steps=tau_steps, warmup_steps=start_step)
        self.tau_start, self.tau_min = float(tau_start), float(tau_min)
        self.tau_steps, self.start_step = int(tau_steps), int(start_step)
        self._state_attrs += ["tau_start", "tau_min", "tau_steps", "start_step"]

    @abstractmethod
    def anneal(self, u: int) -> float:
        """The decayed temperature after u wake-sleep steps, 0 < u < tau_steps."""

    def value_at(self, step: int) -> float:
        u = max(0, step - self.start_step)
        if u == 0:
            return self.tau_start
        if u >= self.tau_steps:
            return self.tau_min
        return max(self.tau_min, self.anneal(u))


class ExponentialTemperature(TemperatureSchedule):
    """tau(u) = max(tau_min, tau_start * (tau_min / tau_start) ** (u / S)): geometric decay that
    reaches tau_min at exactly u = S and holds it (tau_start * r**u with r = (min/start)**(1/S))."""

    kind = "tau_exponential"

    def anneal(self, u: int) -> float:
        return self.tau_start * (self.tau_min / self.tau_start) ** (u / self.tau_steps)


class LinearTemperature(TemperatureSchedule):
    """tau(u) = tau_start + (tau_min - tau_start) * u / S for u < S, then tau_min exactly."""

    kind = "tau_linear"

    def anneal(self, u: int) -> float:
        return self.tau_start + (self.tau_min - self.tau_start) * (u / self.tau_steps)


class TanhTemperature(TemperatureSchedule):
    """tau(u) = tau_min + (tau_start - tau_min) * (1 - tanh(3 u / S)), for every u >= 0.

    Steepest at the start (slope -3 (start - min) / S), then flattening: 0.5% of the range
    (start - min) is left at u = S, 0.0025% at 2S, and from about u = 6.4 S on (3u/S > 19.1)
    tanh is exactly 1.0 in double precision, so tau = tau_min exactly. It approaches the floor
    smoothly instead of stopping at it, so `value_at` is overridden: there is no kink at u = S.
    It never goes below tau_min: tau_min plus a non-negative term cannot round below it.
    """

    kind = "tau_tanh"
    SHARPNESS = 3.0  # tanh(3) = 0.995: "about tau_min" after tau_steps, as the config says

    def anneal(self, u: int) -> float:
        return self.tau_min + (self.tau_start - self.tau_min) * (
            1.0 - math.tanh(self.SHARPNESS * u / self.tau_steps))

    def value_at(self, step: int) -> float:
        u = max(0, step - self.start_step)
        # min + (start - min) * 1 can round one ulp away from start; the first wake-sleep step
        # promises tau_start itself.
        return self.tau_start if u == 0 else self.anneal(u)


class HardSwitch(StepSchedule):
    """0.0 (soft relaxation) for the first `hard_after_steps` wake-sleep steps, then 1.0 (hard).

    Counted from `start_step` like the temperature (u = max(0, step - start_step)): value 1.0
    iff u >= hard_after_steps. With hard_after_steps = 0 it is 1.0 from the first iteration,
    warm-up included, which is harmless since nothing is generated during the warm-up.
    """

    kind = "hard_switch"

    def __init__(self, hard_after_steps: int, *, start_step: int = 0,
                 param_name: str = HARD_RELAXATION, save_history: bool = False,
                 create_new: bool = True):
        super().__init__(param_name, save_history=save_history, create_new=create_new)
        _check_steps(warmup_steps=start_step)
        if hard_after_steps < 0:
            raise ValueError(f"hard_after_steps must be >= 0, got {hard_after_steps}")
        self.hard_after_steps, self.start_step = int(hard_after_steps), int(start_step)
        self._state_attrs += ["hard_after_steps", "start_step"]

    def value_at(self, step: int) -> float:
        return 1.0 if max(0, step - self.start_step) >= self.hard_after_steps else 0.0


def make_temperature_schedule(cfg: TrainConfig, *, start_step: int | None = None) -> StepSchedule:
    """tau(t), written to `engine.state.tau`, from cfg.tau_schedule and its fields.

    `start_step` defaults to cfg.d_warmup_steps: the train engine runs the D warm-up as its
    first iterations, and tau_start is the temperature of the first wake-sleep step. Pass 0 if
    the wake-sleep rounds run on an engine of their own.
    """
    offset = cfg.d_warmup_steps if start_step is None else start_step
    if cfg.tau_schedule == "constant":
        return ConstantSchedule(cfg.tau_start, param_name=TEMPERATURE)
    classes: dict[str, type[TemperatureSchedule]] = {
        "exponential": ExponentialTemperature, "linear": LinearTemperature,
        "tanh": TanhTemperature}
    if cfg.tau_schedule not in classes:
        raise ValueError(f"unknown tau_schedule {cfg.tau_schedule!r}")  # validate() catches it
    return classes[cfg.tau_schedule](cfg.tau_start, cfg.tau_min, cfg.tau_steps,
                                     start_step=offset)


def make_hard_schedule(cfg: TrainConfig, *, start_step: int | None = None) -> StepSchedule:
    """The soft -> hard switch, written to `engine.state.hard_relaxation` (0.0 or 1.0).

    st_gumbel: soft for cfg.hard_after_steps wake-sleep steps, then hard. softmax and gumbel:
    always 0.0 (soft). reinmax: always 1.0, which only reports what it does (its forward pass
    is one-hot by construction and `relax` ignores the flag).
    """
    offset = cfg.d_warmup_steps if start_step is None else start_step
    if cfg.relaxation == "st_gumbel":
        return HardSwitch(cfg.hard_after_steps, start_step=offset)
    if cfg.relaxation in ("softmax", "gumbel"):
        return ConstantSchedule(0.0, param_name=HARD_RELAXATION)
    if cfg.relaxation == "reinmax":
        return ConstantSchedule(1.0, param_name=HARD_RELAXATION)
    raise ValueError(f"unknown relaxation {cfg.relaxation!r}")


def make_train_schedules(cfg: TrainConfig, *,
                         start_step: int | None = None) -> dict[str, StepSchedule]:
    """The adversarial stage's schedules keyed by their checkpoint names (merge into to_save).

    In the process function: `tau = engine.state.tau`, `hard = engine.state.hard_relaxation
    == 1.0`. Both count from the end of the D warm-up (see `make_temperature_schedule`).
    """
    if cfg.relaxation == "reinmax" and cfg.tau_min < 1.0:
        # Not an error (one schedule serves every relaxation), but worth knowing.
        logger.warning("reinmax with tau_min=%s: its authors recommend tau >= 1 (their "
                       "reference code refuses tau < 1; tau shapes only its gradient)",
                       cfg.tau_min)
    return {"tau_schedule": make_temperature_schedule(cfg, start_step=start_step),
            "hard_schedule": make_hard_schedule(cfg, start_step=start_step)}
