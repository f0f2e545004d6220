"""Value checks inside the training step that never make the host wait for a GPU.

Reading a CUDA tensor's value (`bool(t.any())`, `.item()`, `.tolist()`, `.cpu()`) stalls Python
until every kernel queued before it has finished, so the GPU then idles while Python queues the
next ones. A training step that checks its labels and lengths that way stalls a dozen times.
`require` reads the condition where that is free (a CPU tensor) and raises the usual
ValueError; on CUDA it queues the condition as a device-side assertion instead.

The checks guard bookkeeping inside textgan (a -1 label the mask calls known, a length outside
the padded width), not user input, which the corpus loader has validated by then. On CUDA a
failed one stops the run at a later kernel with "device-side assert triggered", and the CUDA
context is unusable afterwards; run the same step on the CPU (`--device cpu`) to read the
message.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def require(ok: Tensor, message: Callable[[], str]) -> None:
    """ValueError(message()) unless every element of the bool tensor `ok` is True.

    CPU (and any device but CUDA): one read of the value, then the check. CUDA: no read; the
    assertion runs on the device, asynchronously (`torch._assert_async`). `message` is only
    called when the check fails on the host, so it may read values freely.
    """
    if reading_waits(ok):
        torch._assert_async(ok.all())
        return
    if not bool(ok.all()):
        raise ValueError(message())


def reading_waits(tensor: Tensor) -> bool:
    """Whether reading `tensor` on the host would wait for a device (CUDA, where the step's
    kernels run asynchronously). Tests set it to always True to run the CUDA path on a CPU."""
    return tensor.device.type == "cuda"
