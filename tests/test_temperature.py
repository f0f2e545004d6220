"""Temperature and soft->hard schedules of the adversarial stage: values seen inside a real
ignite Engine (D warm-up offset, floor), the annealed value reaching soft generation, and an
exact continuation after a Checkpoint save / weights-only load."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from textgan.config import ModelConfig, TrainConfig
from textgan.errors import CheckpointError
from textgan.models import Generator, soft_generate
from textgan.schedules import (
    HARD_RELAXATION,
    TEMPERATURE,
    ConstantSchedule,
    ExponentialTemperature,
    HardSwitch,
    LinearTemperature,
    TanhTemperature,
    TemperatureSchedule,
    attach_schedules,
    make_hard_schedule,
    make_temperature_schedule,
    make_train_schedules,
)

PAD, BOS, EOS = 5, 2, 7
VOCAB = 20


def train(**fields) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **fields)


def recording_engine(names=(TEMPERATURE, HARD_RELAXATION)):
    """An Engine whose step records the scheduled values it sees, one dict per iteration."""
    seen = []

    def step(engine, batch):
        seen.append({name: getattr(engine.state, name) for name in names})

    return Engine(step), seen


def run_values(schedule, iterations):
    engine, seen = recording_engine((schedule.param_name,))
    attach_schedules(engine, [schedule])
    engine.run(range(iterations), max_epochs=1)
    return [row[schedule.param_name] for row in seen]


# --------------------------------------------------------------------------- temperature


def test_exponential_holds_through_the_warmup_then_decays_to_the_floor_exactly():
    cfg = train(tau_schedule="exponential", tau_start=0.8, tau_min=0.2, tau_steps=2,
                d_warmup_steps=3)
    values = run_values(make_temperature_schedule(cfg), 8)
    # Iterations 1-3 train D only; iteration 4 is the first wake-sleep step (u = 0), and
    # u = 1 gives 0.8 * (0.2 / 0.8) ** (1/2) = 0.8 * 0.5.
    assert values == [0.8, 0.8, 0.8, 0.8, 0.4, 0.2, 0.2, 0.2]


def test_exponential_without_warmup_counts_from_the_first_iteration():
    cfg = train(tau_schedule="exponential", tau_start=1.0, tau_min=0.1, tau_steps=4,
                d_warmup_steps=0)
    values = run_values(make_temperature_schedule(cfg), 6)
    expected = [1.0, 0.1 ** 0.25, 0.1 ** 0.5, 0.1 ** 0.75, 0.1, 0.1]
    assert values == pytest.approx(expected, rel=1e-12)
    assert values[4] == 0.1  # the floor itself, not a rounding of it


def test_linear_temperature():
    cfg = train(tau_schedule="linear", tau_start=1.0, tau_min=0.2, tau_steps=4,
                d_warmup_steps=2)
    values = run_values(make_temperature_schedule(cfg), 9)
    assert values == pytest.approx([1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2], abs=1e-12)
    assert values[6:] == [0.2, 0.2, 0.2]


def test_tanh_temperature():
    cfg = train(tau_schedule="tanh", tau_start=1.0, tau_min=0.1, tau_steps=4,
                d_warmup_steps=1)
    values = run_values(make_temperature_schedule(cfg), 10)
    expected = [1.0] + [0.1 + 0.9 * (1.0 - math.tanh(3.0 * u / 4)) for u in range(9)]
    assert values == pytest.approx(expected, abs=1e-12)
    assert values[1] == 1.0  # the first wake-sleep step sees tau_start
    assert values[5] == pytest.approx(0.1 + 0.9 * (1 - math.tanh(3.0)))  # "about" tau_min at S
    assert all(a > b for a, b in itertools.pairwise(values[1:]))  # strictly decreasing, no kink


def test_constant_temperature():
    values = run_values(make_temperature_schedule(train(tau_schedule="constant",
                                                        tau_start=0.7, d_warmup_steps=2)), 5)
    assert values == [0.7] * 5


@pytest.mark.parametrize("cls", [ExponentialTemperature, LinearTemperature, TanhTemperature])
def test_temperature_never_drops_below_its_floor(cls):
    # Numbers that are not exact in binary, and a schedule that starts at its floor.
    for start, floor, steps in [(1.0, 0.1, 7), (0.9, 0.3, 3), (2.0, 0.07, 11), (0.5, 0.5, 5)]:
        schedule = cls(start, floor, steps, start_step=2)
        values = [schedule.value_at(t) for t in range(200)]
        assert min(values) >= floor
        assert values[0] == values[2] == start
        assert all(a >= b for a, b in itertools.pairwise(values))
        if cls is not TanhTemperature:  # the tanh shape approaches the floor instead
            assert values[2 + steps:] == [floor] * (198 - steps)
    assert TanhTemperature(1.0, 0.1, 4).value_at(10_000) == 0.1  # tanh rounds to 1 far out


def test_the_floor_holds_whatever_the_decay_computes():
    class Overshooting(TemperatureSchedule):
        kind = "tau_overshooting"

        def anneal(self, u: int) -> float:
            return self.tau_start - u  # far below the floor after one step

    schedule = Overshooting(2.0, 0.5, 10, start_step=1)
    assert [schedule.value_at(t) for t in range(4)] == [2.0, 2.0, 1.0, 0.5]
    assert schedule.value_at(11) == 0.5


def test_start_step_can_be_overridden_for_a_separate_wake_sleep_engine():
    cfg = train(tau_schedule="linear", tau_start=1.0, tau_min=0.5, tau_steps=2,
                d_warmup_steps=100)
    assert run_values(make_temperature_schedule(cfg, start_step=0), 3) == [1.0, 0.75, 0.5]


def test_bad_temperature_arguments():
    with pytest.raises(ValueError, match="tau_min"):
        ExponentialTemperature(0.1, 0.5, 10)
    with pytest.raises(ValueError, match="tau_min"):
        LinearTemperature(1.0, 0.0, 10)
    with pytest.raises(ValueError, match="tau_steps"):
        TanhTemperature(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="warmup_steps"):
        ExponentialTemperature(1.0, 0.1, 10, start_step=-1)


# --------------------------------------------------------------------------- soft -> hard


def test_st_gumbel_switches_to_hard_after_its_wake_sleep_steps():
    cfg = train(relaxation="st_gumbel", hard_after_steps=3, d_warmup_steps=2)
    values = run_values(make_hard_schedule(cfg), 8)
    # 2 warm-up iterations, 3 soft wake-sleep steps, then hard.
    assert values == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert run_values(make_hard_schedule(train(relaxation="st_gumbel", hard_after_steps=0,
                                               d_warmup_steps=2)), 3) == [1.0] * 3


@pytest.mark.parametrize("relaxation,value", [("softmax", 0.0), ("gumbel", 0.0),
                                              ("reinmax", 1.0)])
def test_other_relaxations_never_switch(relaxation, value):
    cfg = train(relaxation=relaxation, hard_after_steps=2, d_warmup_steps=1)
    assert run_values(make_hard_schedule(cfg), 6) == [value] * 6


def test_train_schedules_are_set_during_iteration_one():
    engine, seen = recording_engine()
    schedules = make_train_schedules(train(relaxation="st_gumbel", hard_after_steps=1,
                                           tau_start=2.0, d_warmup_steps=0))
    assert set(schedules) == {"tau_schedule", "hard_schedule"}
    assert schedules["tau_schedule"].param_name == TEMPERATURE
    assert schedules["hard_schedule"].param_name == HARD_RELAXATION
    attach_schedules(engine, schedules)
    engine.run([0, 1], max_epochs=1)
    assert seen == [{TEMPERATURE: 2.0, HARD_RELAXATION: 0.0},
                    {TEMPERATURE: pytest.approx(2.0 * (0.1 / 2.0) ** (1 / 2000)),
                     HARD_RELAXATION: 1.0}]


def test_reinmax_with_a_temperature_below_one_is_flagged(caplog):
    with caplog.at_level(logging.WARNING, logger="textgan.schedules"):
        make_train_schedules(train(relaxation="reinmax", tau_min=0.5))
    assert "reinmax" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textgan.schedules"):
        make_train_schedules(train(relaxation="reinmax", tau_start=2.0, tau_min=1.0))
        make_train_schedules(train(relaxation="gumbel", tau_min=0.1))
    assert caplog.text == ""


# --------------------------------------------------------------------------- into the soft path


def test_the_annealed_temperature_reaches_soft_generation():
    """A process function that reads engine.state.tau: step 0 of its soft sentence must be the
    softmax of the generator's first logits at exactly the scheduled temperature."""
    torch.manual_seed(0)
    cfg_model = ModelConfig(embedding_dim=8, hidden_dim=12, z_dim=4, encoder_layers=1,
                            generator_layers=1, dropout=0.0)
    generator = Generator(cfg_model, vocab_size=VOCAB, code_dim=3, pad_id=PAD, bos_id=BOS,
                          eos_id=EOS).eval()
    z = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    c = torch.eye(3)[:2]
    with torch.no_grad():
        first = generator.step(generator.embed(generator.start_tokens(2)),
                               generator.initial_state(z, c), generator.conditioning(z, c))
        logits0 = generator.forbid_special(first.logits)

    cfg = train(tau_schedule="exponential", tau_start=1.0, tau_min=0.25, tau_steps=2,
                d_warmup_steps=1)
    schedules = make_train_schedules(cfg)
    seen = []

    def step(engine, batch):
        with torch.no_grad():
            out = soft_generate(generator, z, c, max_len=2, tau=engine.state.tau,
                                kind=cfg.relaxation,
                                hard=engine.state.hard_relaxation == 1.0)
        seen.append(out.probs[:, 0])

    engine = Engine(step)
    attach_schedules(engine, schedules)
    engine.run(range(4), max_epochs=1)
    for probs, tau in zip(seen, [1.0, 1.0, 0.5, 0.25], strict=True):
        torch.testing.assert_close(probs, torch.softmax(logits0 / tau, dim=-1))
    assert not torch.allclose(seen[1], seen[2])


# --------------------------------------------------------------------------- checkpoints


CHECKPOINT_CASES = [
    train(tau_schedule="exponential", tau_steps=9, d_warmup_steps=3, relaxation="st_gumbel",
          hard_after_steps=5),
    train(tau_schedule="linear", tau_steps=13, d_warmup_steps=2, relaxation="gumbel"),
    train(tau_schedule="tanh", tau_steps=6, tau_start=3.0, tau_min=1.0, d_warmup_steps=4,
          relaxation="reinmax"),
    train(tau_schedule="constant", tau_start=0.6, d_warmup_steps=1, relaxation="softmax"),
]


@pytest.mark.parametrize("cfg", CHECKPOINT_CASES, ids=lambda c: c.tau_schedule)
def test_checkpoint_round_trip_continues_exactly(cfg, tmp_path):
    data, epochs, stop_after = range(5), 4, 2  # 20 iterations; interrupted after 10

    reference, reference_seen = recording_engine()
    attach_schedules(reference, make_train_schedules(cfg))
    reference.run(data, max_epochs=epochs)
    assert len({row[TEMPERATURE] for row in reference_seen}) > (cfg.tau_schedule != "constant")

    first, first_seen = recording_engine()
    schedules = make_train_schedules(cfg)
    attach_schedules(first, schedules)
    checkpointer = Checkpoint({"trainer": first, **schedules},
                              DiskSaver(tmp_path, require_empty=False), n_saved=1)
    first.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    first.run(data, max_epochs=stop_after)
    assert first_seen == reference_seen[:10]

    resumed, resumed_seen = recording_engine()
    fresh = make_train_schedules(cfg)
    attach_schedules(resumed, fresh)
    state = torch.load(checkpointer.last_checkpoint, weights_only=True, map_location="cpu")
    if cfg.tau_schedule != "constant":  # the numbers travel with the checkpoint
        assert state["tau_schedule"]["tau_min"] == cfg.tau_min
        assert state["tau_schedule"]["start_step"] == cfg.d_warmup_steps
    Checkpoint.load_objects({"trainer": resumed, **fresh}, state)
    resumed.run(data, max_epochs=epochs)

    assert resumed_seen == reference_seen[10:]
    assert fresh["tau_schedule"].event_index == 20
    assert fresh["hard_schedule"].event_index == 20


def test_loading_another_temperature_schedule_is_refused():
    saved = make_temperature_schedule(train(tau_schedule="exponential")).state_dict()
    with pytest.raises(CheckpointError, match=r"'tau_exponential' schedule.*'tau_linear'"):
        make_temperature_schedule(train(tau_schedule="linear")).load_state_dict(saved)
    switch = HardSwitch(3).state_dict()
    with pytest.raises(CheckpointError):
        ConstantSchedule(0.0, param_name=HARD_RELAXATION).load_state_dict(switch)
