"""devices.denormals_flushed: denormal float32 numbers read as zero inside every training stage,
and IEEE floats again after it.

Without it an x86 CPU takes a slow path for each denormal, and the adversarial stage's soft
sentences at a low temperature are mostly denormals (NOTES.md, Y13: 4x slower rounds). After
it, code sharing the process (hypothesis's float strategies refuse to run under flushing) must
see IEEE floats again.
"""

from __future__ import annotations

import pytest
import torch

import textgan.pretrain as pretrain
import textgan.stage as stage
from textgan.devices import denormals_are_flushed, denormals_flushed


@pytest.fixture
def denormals_kept():
    """IEEE denormals for the test, and again after it (the process's state before any stage)."""
    if not torch.set_flush_denormal(False):
        pytest.skip("torch cannot set denormal flushing on this CPU")
    assert not denormals_are_flushed()
    yield
    torch.set_flush_denormal(False)


def test_denormals_read_as_zero_inside_and_as_themselves_after(denormals_kept):
    with denormals_flushed():
        assert denormals_are_flushed()
        assert (torch.tensor([1e-37]) * 1.0).item() == pytest.approx(1e-37)  # normal numbers stay
    assert not denormals_are_flushed()
    assert (torch.tensor([1e-39]) * 1.0).item() == pytest.approx(1e-39)


def test_the_state_before_is_restored_even_when_it_was_flushing(denormals_kept):
    torch.set_flush_denormal(True)
    with denormals_flushed():
        pass
    assert denormals_are_flushed()


def test_a_training_stage_runs_with_denormals_flushed_and_restores_them(denormals_kept,
                                                                       tmp_path, monkeypatch):
    seen = []
    seed_the_stage = stage.manual_seed  # called once the stage has opened its run folder

    def record_then_seed(seed):
        seen.append(denormals_are_flushed())
        seed_the_stage(seed)

    monkeypatch.setattr(stage, "manual_seed", record_then_seed)
    pretrain.main(["--preset", "tiny", "--no-progress", "--pretrain.epochs=1",
                   "--run-dir", str(tmp_path / "run")])
    assert seen and all(seen)
    assert not denormals_are_flushed()
