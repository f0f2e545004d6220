"""Which torch device a command runs on: the one `--device` flag and its one resolution.

Every command (`pretrain`, `train`, `sample`, `evaluate`) takes `--device` through
`add_device_argument`, with the same default and help, and every library function that takes a
device name (`sampling.load_for_inference`, the judges, `parallel.pick_device`) resolves it
through `resolve_device`:

- "auto" (the default) is "cuda" when torch sees a GPU, else "cpu";
- "cpu", "cuda", "cuda:N" (anything `torch.device` reads) is that device;
- a name torch does not know, or a CUDA device without a GPU, is the user's mistake, raised
  before any work as a one-line error rather than a traceback deep inside the first step.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from textgan.errors import ConfigError, TextganError

if TYPE_CHECKING:
    import torch

DEFAULT_DEVICE = "auto"
DEVICE_HELP = "'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N'"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device, as every command takes it."""
    parser.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)


def resolve_device(name: str | torch.device = DEFAULT_DEVICE, *,
                   error: type[TextganError] = ConfigError) -> torch.device:
    """`name` ('auto', 'cpu', 'cuda', 'cuda:N' or a torch.device) as a usable torch.device.

    An unknown name, or CUDA asked for where torch sees no GPU, raises `error`: ConfigError, as
    for any other flag of a training command, or the error class the caller's API promises
    (`load_for_inference` raises SamplingError for every request it cannot serve).
    """
    # Imported here: the commands build their parsers, and refuse flag mistakes, before torch
    # is imported (tests/test_cli_help.py), and they import this module to do so.
    import torch

    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise error(f"unknown device '{name}' (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise error(f"device '{name}' asked for, but torch sees no CUDA GPU; use cpu")
    return device


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Inside: this process's CPU float math treats denormal numbers as zero (where the CPU can);
    after: as before, so that code sharing the process (a notebook, a test run, hypothesis's
    float strategies, which refuse to run under flushing) sees IEEE floats again.

    The adversarial stage's soft sentences are softmax(o / tau) over the whole vocabulary: as
    tau anneals toward 0.1, most of the probabilities fall below float32's smallest normal
    number (~1.2e-38), and an x86 CPU takes a slow path for every operation on such a number.
    On the yelp preset a round of the stage took 0.86 s at tau 0.25 and 3.8 s at tau 0.1; with
    denormals flushed, 200 s of the stage ran 120 rounds instead of 31 (NOTES.md, Y13). Numbers
    that small change no float32 sum they enter. Every training stage (`stage.run_stage`) and
    `evaluate` (its judges train) run inside it; it changes nothing in a GPU's math.
    """
    import torch

    was_flushing = denormals_are_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)


def denormals_are_flushed() -> bool:
    """Whether the CPU now reads a float32 denormal as zero (torch has no getter for it)."""
    import torch

    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0
