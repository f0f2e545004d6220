"""Schedules: values seen inside each iteration of a real ignite Engine, hand-computed, and an
exact continuation after a Checkpoint save / weights-only load."""

import dataclasses
import math

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from textgan.config import PretrainConfig
from textgan.errors import CheckpointError
from textgan.schedules import (
    KL_WEIGHT,
    WORD_DROPOUT,
    CyclicalRamp,
    LinearRamp,
    SigmoidRamp,
    attach_schedules,
    make_kl_schedule,
    make_pretrain_schedules,
    make_word_dropout_schedule,
)


def recording_engine(names=(KL_WEIGHT, WORD_DROPOUT)):
    """An Engine whose step records the scheduled values it sees, one dict per iteration."""
    seen = []

    def step(engine, batch):
        seen.append({name: getattr(engine.state, name) for name in names
                     if hasattr(engine.state, name)})

    return Engine(step), seen


def run_values(schedule, iterations):
    engine, seen = recording_engine((schedule.param_name,))
    attach_schedules(engine, [schedule])
    engine.run(range(iterations), max_epochs=1)
    return [row[schedule.param_name] for row in seen]


def pretrain(**fields):
    return dataclasses.replace(PretrainConfig(), **fields)


# --------------------------------------------------------------------------- KL weight


def test_constant_kl():
    values = run_values(make_kl_schedule(pretrain(kl_schedule="constant", kl_max=0.3)), 4)
    assert values == [0.3] * 4
    assert all(type(v) is float for v in values)


def test_linear_kl_without_warmup_starts_at_exactly_zero():
    values = run_values(make_kl_schedule(pretrain(kl_schedule="linear", kl_max=1.0,
                                                  kl_warmup_steps=0, kl_ramp_steps=4)), 7)
    assert values == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_linear_kl_with_warmup():
    values = run_values(make_kl_schedule(pretrain(kl_schedule="linear", kl_max=2.0,
                                                  kl_warmup_steps=2, kl_ramp_steps=4)), 9)
    assert values == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]


def test_sigmoid_kl():
    # warm-up 2, ramp 4 -> centre 4, slope k = 2 ln 99 / 4, so k * (3 - 4) = -ln(99)/2 and the
    # plain logistic there is 1 / (1 + sqrt(99)); rescaled: (s - 0.01) / 0.98, times kl_max = 2.
    values = run_values(make_kl_schedule(pretrain(kl_schedule="sigmoid", kl_max=2.0,
                                                  kl_warmup_steps=2, kl_ramp_steps=4)), 8)
    s3 = 1.0 / (1.0 + math.sqrt(99.0))
    expected = [0.0, 0.0, 0.0, 2 * (s3 - 0.01) / 0.98, 1.0, 2 * (1 - s3 - 0.01) / 0.98, 2.0, 2.0]
    assert values == pytest.approx(expected, abs=1e-12)
    assert values[2] == 0.0  # continuous with the warm-up: the ramp starts at exactly 0
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_cyclical_kl():
    values = run_values(make_kl_schedule(pretrain(kl_schedule="cyclical", kl_max=1.0,
                                                  kl_cycle_steps=4, kl_cycle_ratio=0.5)), 10)
    assert values == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5]


def test_cyclical_kl_with_warmup_and_full_ramp():
    values = run_values(make_kl_schedule(pretrain(kl_schedule="cyclical", kl_max=2.0,
                                                  kl_warmup_steps=3, kl_cycle_steps=4,
                                                  kl_cycle_ratio=1.0)), 12)
    assert values == [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0, 1.5, 0.0]


def test_value_at_is_the_engine_value_one_step_behind_event_index():
    schedule = LinearRamp(1.0, 0.0, ramp_steps=5, param_name="tau")  # a decay works too
    values = run_values(schedule, 6)
    assert values == pytest.approx([schedule.value_at(t) for t in range(6)])
    assert values == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    assert schedule.event_index == 6


# --------------------------------------------------------------------------- word dropout


def test_word_dropout_constant_and_linear():
    constant = make_word_dropout_schedule(pretrain(word_dropout=0.25))
    assert constant.param_name == WORD_DROPOUT
    assert run_values(constant, 3) == [0.25] * 3
    linear = make_word_dropout_schedule(pretrain(word_dropout=0.4,
                                                 word_dropout_schedule="linear",
                                                 word_dropout_ramp_steps=4))
    assert run_values(linear, 6) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4], abs=1e-15)


def test_both_pretrain_schedules_are_set_during_iteration_one():
    engine, seen = recording_engine()
    attach_schedules(engine, make_pretrain_schedules(pretrain(word_dropout=0.2)))
    assert engine.state.kl_weight is None  # set only once the first iteration starts
    engine.run([0, 1], max_epochs=1)
    assert seen[0] == {KL_WEIGHT: 0.0, WORD_DROPOUT: 0.2}


def test_attaching_two_schedules_to_one_attribute_is_an_error():
    engine, _ = recording_engine()
    attach_schedules(engine, [make_kl_schedule(PretrainConfig())])
    with pytest.raises(ValueError, match="already exists"):
        attach_schedules(engine, [make_kl_schedule(PretrainConfig())])


@pytest.mark.parametrize("kwargs", [dict(ramp_steps=0), dict(ramp_steps=3, warmup_steps=-1)])
def test_bad_ramp_arguments(kwargs):
    with pytest.raises(ValueError):
        SigmoidRamp(1.0, param_name="x", **kwargs)
    with pytest.raises(ValueError, match="ratio"):
        CyclicalRamp(1.0, cycle_steps=4, ratio=0.0, param_name="x")


# --------------------------------------------------------------------------- checkpoints


CHECKPOINT_CASES = [
    pretrain(kl_schedule="linear", kl_warmup_steps=3, kl_ramp_steps=10, word_dropout=0.3,
             word_dropout_schedule="linear", word_dropout_ramp_steps=12),
    pretrain(kl_schedule="sigmoid", kl_warmup_steps=2, kl_ramp_steps=9, kl_max=0.5),
    pretrain(kl_schedule="cyclical", kl_cycle_steps=7, kl_cycle_ratio=0.4, kl_warmup_steps=1),
    pretrain(kl_schedule="constant", kl_max=0.7, word_dropout=0.1),
]


@pytest.mark.parametrize("cfg", CHECKPOINT_CASES, ids=lambda c: c.kl_schedule)
def test_checkpoint_round_trip_continues_exactly(cfg, tmp_path):
    data, epochs, stop_after = range(5), 4, 2  # 20 iterations; interrupted after 10

    reference, reference_seen = recording_engine()
    attach_schedules(reference, make_pretrain_schedules(cfg))
    reference.run(data, max_epochs=epochs)

    first, first_seen = recording_engine()
    schedules = make_pretrain_schedules(cfg)
    attach_schedules(first, schedules)
    checkpointer = Checkpoint({"trainer": first, **schedules},
                              DiskSaver(tmp_path, require_empty=False), n_saved=1)
    first.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    first.run(data, max_epochs=stop_after)
    assert first_seen == reference_seen[:10]

    resumed, resumed_seen = recording_engine()
    fresh = make_pretrain_schedules(cfg)
    attach_schedules(resumed, fresh)
    state = torch.load(checkpointer.last_checkpoint, weights_only=True, map_location="cpu")
    Checkpoint.load_objects({"trainer": resumed, **fresh}, state)
    resumed.run(data, max_epochs=epochs)

    assert resumed_seen == reference_seen[10:]
    assert fresh["kl_schedule"].event_index == 20


def test_loading_another_kind_of_schedule_is_refused():
    saved = make_kl_schedule(pretrain(kl_schedule="linear")).state_dict()
    with pytest.raises(CheckpointError, match="'linear' schedule.*'cyclical'"):
        make_kl_schedule(pretrain(kl_schedule="cyclical")).load_state_dict(saved)
