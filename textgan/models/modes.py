"""Context managers that put networks in a mode for a block and restore what was there.

    with eval_mode(generator):      # dropout off for sampling, previous mode back afterwards
        ...
    with frozen(discriminator):     # its weights are constants in graphs built inside the block
        loss = attribute_loss(discriminator.forward_soft(...), c)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Every submodule of `modules` in eval mode inside the block, its own previous mode after.

    Per submodule, not just the top: a caller that keeps some part in eval on purpose (a frozen
    embedding with dropout, say) gets exactly that back.
    """
    saved = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, mode in saved:
            m.training = mode


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Parameters of `modules` do not require grad inside the block (each flag restored after).

    Autograd records requires_grad when a graph is built, so a loss computed inside the block
    sends no gradient to these weights even when backward runs after the block; gradients still
    flow *through* the modules to their inputs (the soft sentence, hence to the generator).
    """
    saved = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
