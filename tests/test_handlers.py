"""Stopping a run cleanly: the agreed stop of data-parallel runs (Ctrl-C, time limit).

These run in one process with `agreed=True`, the path every process of a data-parallel run
takes; tests/test_parallel.py presses Ctrl-C on a real two-process run.
"""

import signal

import pytest
import torch
from ignite.engine import Engine, Events

from textgan.checkpoint import latest_checkpoint, make_checkpointer
from textgan.handlers import attach_agreed_stop, attach_interrupt_checkpoint
from textgan.stage import save_unless_nan

BATCHES_PER_EPOCH = 5


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """The SIGINT disposition of a command run from a terminal: Python's KeyboardInterrupt
    handler, the signal not blocked. These tests press Ctrl-C with raise_signal and count on
    it, but a shell starts a background job (`pytest ... &`) with SIGINT ignored, and Python
    then keeps it ignored: there the second press of a test was lost and the run went on to
    its epoch's validation (seen twice). Set here, restored after."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    # and none of our handlers is left behind by the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    signal.signal(signal.SIGINT, handler)


def stage_like_trainer(folder, *, press_ctrl_c_at=(), times=1):
    """A trainer wired as the stages wire theirs, pressing Ctrl-C after the given iterations."""
    model = torch.nn.Linear(2, 1)

    def step(engine, batch):
        with torch.no_grad():
            model.weight.add_(1.0)  # so a checkpoint tells which iteration it holds
        return {"loss": 0.0}

    trainer = Engine(step)
    trainer.state.validations = []
    trainer.state.model = model
    trainer.state.initial_weights = {k: v.clone() for k, v in model.state_dict().items()}

    @trainer.on(Events.ITERATION_COMPLETED)
    def _press(engine):
        if engine.state.iteration in press_ctrl_c_at:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)

    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda engine: engine.state.validations.append(engine.state.epoch))
    checkpointer = make_checkpointer({"model": model, "trainer": trainer}, folder, "pretrain",
                                     keep_last=2)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    trainer.add_event_handler(Events.COMPLETED, save_unless_nan, checkpointer)
    attach_interrupt_checkpoint(trainer, checkpointer, agreed=True)
    return trainer


def saved(folder):
    """The newest checkpoint (these hold no textgan meta, so plain torch.load)."""
    return torch.load(latest_checkpoint(folder, "pretrain"), map_location="cpu",
                      weights_only=True)


@pytest.mark.parametrize("pressed_at, stops_at, validated", [
    (7, 7, [1]),       # mid-epoch: after the iteration it was pressed in
    (10, 10, [1, 2]),  # an epoch's last iteration: after that epoch's validation and checkpoint
])
def test_ctrl_c_asks_to_stop_and_the_run_stops_after_the_iteration(tmp_path, pressed_at,
                                                                    stops_at, validated):
    before = signal.getsignal(signal.SIGINT)
    trainer = stage_like_trainer(tmp_path, press_ctrl_c_at=(pressed_at,))
    with pytest.raises(KeyboardInterrupt):
        trainer.run([0] * BATCHES_PER_EPOCH, max_epochs=10)
    assert trainer.state.iteration == stops_at and trainer.state.validations == validated
    state = saved(tmp_path)
    assert state["trainer"]["iteration"] == stops_at
    assert torch.equal(state["model"]["weight"], trainer.state.model.weight)
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C means KeyboardInterrupt again


def test_a_second_ctrl_c_stops_at_once_with_the_checkpoint_of_the_last_iteration(tmp_path):
    # pressed twice in an epoch's last iteration: no waiting for that epoch's validation
    trainer = stage_like_trainer(tmp_path, press_ctrl_c_at=(10,), times=2)
    with pytest.raises(KeyboardInterrupt):
        trainer.run([0] * BATCHES_PER_EPOCH, max_epochs=10)
    assert trainer.state.validations == [1]
    assert saved(tmp_path)["trainer"]["iteration"] == 10


def test_the_checkpoint_of_an_agreed_stop_resumes_like_an_unbroken_run(tmp_path):
    unbroken = stage_like_trainer(tmp_path / "unbroken")
    unbroken.run([0] * BATCHES_PER_EPOCH, max_epochs=3)
    broken = stage_like_trainer(tmp_path / "broken", press_ctrl_c_at=(7,))
    broken.state.model.load_state_dict(unbroken.state.initial_weights)
    with pytest.raises(KeyboardInterrupt):
        broken.run([0] * BATCHES_PER_EPOCH, max_epochs=3)

    state = saved(tmp_path / "broken")
    resumed = stage_like_trainer(tmp_path / "broken")
    resumed.state.model.load_state_dict(state["model"])
    resumed.load_state_dict(state["trainer"])
    resumed.run([0] * BATCHES_PER_EPOCH, max_epochs=3)
    assert resumed.state.iteration == 15 and resumed.state.validations == [2, 3]
    assert torch.equal(resumed.state.model.weight, unbroken.state.model.weight)


def test_an_agreed_stop_after_an_epochs_last_iteration_waits_for_its_end_handlers():
    engine = Engine(lambda engine, batch: None)
    ended = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: ended.append(e.state.iteration))
    attach_agreed_stop(engine, lambda: engine.state.iteration >= 4, lambda e: None)
    engine.run([0] * 4, max_epochs=5)
    assert engine.state.iteration == 4 and ended == [4]


def _progress_run(monkeypatch, caplog, *, terminal: bool, disable: bool) -> list[str]:
    import logging

    import textgan.handlers as handlers

    monkeypatch.setattr(handlers, "can_draw_bars", lambda: terminal)
    trainer = Engine(lambda engine, batch: {"loss": float(batch), "tokens": 10})
    handlers.attach_progress(trainer, ["loss"], disable=disable)
    with caplog.at_level(logging.INFO, logger="textgan.handlers"):
        trainer.run(range(45), max_epochs=2)
    return [r.getMessage() for r in caplog.records if "iteration" in r.getMessage()]


def test_progress_off_a_terminal_is_a_log_line_every_5_percent_of_an_epoch(monkeypatch, caplog):
    lines = _progress_run(monkeypatch, caplog, terminal=False, disable=False)
    # 45 iterations: every 2nd (45 // 20), and the last; counted within each epoch
    assert len(lines) == 2 * (22 + 1)
    assert lines[0].startswith("epoch 1, iteration 2/45 (4%): loss ")
    assert "tok/s" in lines[0]
    assert lines[-1].startswith("epoch 2, iteration 45/45 (100%)")


def test_progress_on_a_terminal_is_a_bar_and_no_progress_is_silent(monkeypatch, caplog):
    assert _progress_run(monkeypatch, caplog, terminal=True, disable=False) == []
    assert _progress_run(monkeypatch, caplog, terminal=False, disable=True) == []
