"""devices.flush_denormals: denormal float32 numbers read as zero, in every training stage.

Without it an x86 CPU takes a slow path for each denormal, and the adversarial stage's soft
sentences at a low temperature are mostly denormals (NOTES.md, Y13: 4x slower rounds).
"""

from __future__ import annotations

import pytest
import torch

import textgan.pretrain as pretrain
from textgan.devices import flush_denormals

DENORMAL = 1e-39  # below float32's smallest normal number, ~1.18e-38


def denormals_flushed() -> bool:
    return (torch.tensor([DENORMAL], dtype=torch.float32) * 1.0).item() == 0.0


@pytest.fixture
def denormals_kept():
    """IEEE denormals for the test, and again after it (the process's state before any stage)."""
    if not torch.set_flush_denormal(False):
        pytest.skip("torch cannot set denormal flushing on this CPU")
    assert not denormals_flushed()
    yield
    torch.set_flush_denormal(False)


def test_flush_denormals_reads_a_denormal_as_zero(denormals_kept):
    flush_denormals()
    assert denormals_flushed()
    assert (torch.tensor([1e-37]) * 1.0).item() == pytest.approx(1e-37)  # normal numbers stay


def test_a_training_stage_runs_with_denormals_flushed(denormals_kept, tmp_path):
    pretrain.main(["--preset", "tiny", "--no-progress", "--pretrain.epochs=1",
                   "--run-dir", str(tmp_path / "run")])
    assert denormals_flushed()
