"""Find the operations of a block of code that would make the host wait for a GPU, on any device.

    with SyncAudit() as audit:
        trainer._process_function(trainer, batch)
    audit.sites()        # {"textgan/models/generator.py:295 read": 3, ...}

On CUDA, `torch.cuda.set_sync_debug_mode("warn")` reports every synchronising call; a CPU has
nothing to wait for, so tests cannot use it. This mode watches the dispatcher for the operations
that synchronise on a GPU whatever device they run on:

- a read of a tensor's value: `.item()`, `bool(t)`, `int(t)`, `float(t)` (aten._local_scalar_dense);
- a tensor built from Python data, `torch.tensor([...], device=...)` (aten.lift_fresh): on a GPU,
  a copy from the host that waits for it;
- an explicit copy to the CPU that converts the dtype (aten._to_copy with device="cpu").

What it cannot see: `.tolist()` and `.numpy()`, which read without the dispatcher, and a
`.to("cpu")` / `.cpu()` of a tensor already on the CPU, which returns the tensor itself. And it
cannot tell a tensor that would live on the GPU from one that stays on the host in a GPU run
too (the optimizer's step counters, Batch.host_lengths): reads of those are counted, and the
caller says which call sites it expects (`sites`, `unexpected`).
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# the dispatcher's names for the operations above, and what to call them in a report
_WATCHED = {
    torch.ops.aten._local_scalar_dense.default: "read",
    torch.ops.aten.lift_fresh.default: "tensor from host data",
}
_PACKAGE = Path(__file__).resolve().parent
# frames inside torch that name a call site better than the textgan line calling into them
_TORCH_SITES = ("torch/optim/", "torch/nn/utils/rnn.py")
# Call sites whose reads are of tensors that stay on the host in a GPU run too: the optimizers'
# step counters, the lengths that packing reads (Batch.host_lengths) and the encoder's checks of
# them, and a batch's token count read from them.
HOST_SIDE_SITES = ("torch/optim/", "torch/nn/utils/rnn.py", "textgan/models/encoder.py",
                   "textgan/data.py")
# The value checks of textgan.checks: reads on a CPU, device-side assertions on CUDA.
CHECK_SITES = ("textgan/checks.py",)


class SyncAudit(TorchDispatchMode):
    """Counts the watched operations by call site (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        kind = _WATCHED.get(func)
        target = kwargs.get("device")
        if kind is None and func is torch.ops.aten._to_copy.default and target is not None \
                and torch.device(target).type == "cpu":
            kind = "copy to the host"
        if kind is not None:
            self.counts[f"{_call_site(traceback.extract_stack())} {kind}"] += 1
        return func(*args, **kwargs)

    def sites(self) -> dict[str, int]:
        """{"<file>:<line> <kind>": count}, the file relative to the repository (or torch)."""
        return dict(sorted(self.counts.items()))

    def unexpected(self, expected: Iterable[str]) -> dict[str, int]:
        """The counted sites whose text contains none of the `expected` fragments."""
        fragments = list(expected)
        return {site: n for site, n in self.sites().items()
                if not any(fragment in site for fragment in fragments)}

    def by_kind(self) -> dict[str, int]:
        """Counts split into "host" (HOST_SIDE_SITES: no wait on a GPU either), "check"
        (CHECK_SITES: device-side assertions on CUDA) and "wait" (the rest)."""
        split = {"host": 0, "check": 0, "wait": 0}
        for site, n in self.counts.items():
            if any(fragment in site for fragment in HOST_SIDE_SITES):
                split["host"] += n
            elif any(fragment in site for fragment in CHECK_SITES):
                split["check"] += n
            else:
                split["wait"] += n
        return split

    def total(self) -> int:
        return sum(self.counts.values())


def _call_site(stack: traceback.StackSummary) -> str:
    """The innermost frame in textgan or in one of _TORCH_SITES, as "path:line"."""
    for frame in reversed(stack[:-1]):  # [-1] is __torch_dispatch__ itself
        path = Path(frame.filename).resolve()
        if path == Path(__file__).resolve():
            continue
        if _PACKAGE in path.parents:
            return f"{path.relative_to(_PACKAGE.parent).as_posix()}:{frame.lineno}"
        posix = path.as_posix()
        for site in _TORCH_SITES:
            if site in posix:
                return f"{posix[posix.index(site):]}:{frame.lineno}"
    return "elsewhere"
