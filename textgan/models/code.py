"""The structured code c: one one-hot block per attribute, and its uniform prior.

A corpus with attributes `sentiment` (2 classes) and `tense` (2 classes) has
`num_classes = [2, 2]`, labels of shape (B, 2) holding class indices, and codes of shape (B, 4):

    labels = fill_missing(batch.labels, batch.label_mask, num_classes, generator=g)
    c = one_hot_code(labels, num_classes)          # (B, sum(num_classes))

A missing label is stored as -1 with `label_mask` False. It is never a class: `one_hot_code`
refuses it, so the caller has to decide (prior via `fill_missing`, or the discriminator's guess).
An unlabelled corpus has `num_classes = []` and a code of width 0, which the networks accept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from textgan.checks import require


def _check_num_classes(num_classes: Sequence[int]) -> None:
    for index, n in enumerate(num_classes):
        if int(n) < 1:
            raise ValueError(f"attribute {index} has {n} classes; every attribute needs at least 1")


def code_dim(num_classes: Sequence[int]) -> int:
    """Width of c: the sum of the attributes' class counts (0 for an unlabelled corpus)."""
    _check_num_classes(num_classes)
    return int(sum(num_classes))


def code_offsets(num_classes: Sequence[int]) -> list[int]:
    """Column where each attribute's block starts in c (e.g. [2, 3] -> [0, 2])."""
    _check_num_classes(num_classes)
    offsets, start = [], 0
    for n in num_classes:
        offsets.append(start)
        start += int(n)
    return offsets


def split_code(c: Tensor, num_classes: Sequence[int]) -> list[Tensor]:
    """The per-attribute blocks of a (possibly soft) code: [(B, n_0), (B, n_1), ...]."""
    if c.shape[-1] != code_dim(num_classes):
        raise ValueError(f"code has width {c.shape[-1]}, num_classes {list(num_classes)} "
                         f"needs {code_dim(num_classes)}")
    return list(torch.split(c, [int(n) for n in num_classes], dim=-1))


def one_hot_code(labels: Tensor, num_classes: Sequence[int]) -> Tensor:
    """Class indices (B, A) -> float code (B, sum(num_classes)) with one 1 per block.

    Raises ValueError on a missing label (-1) or an index out of range: silently encoding -1
    would wrap to the last class (or zero a block) and train on a label nobody gave. On CUDA the
    check is a device-side assertion (`textgan.checks.require`), so the step never waits for it.
    """
    if labels.dim() != 2 or labels.shape[1] != len(num_classes):
        raise ValueError(f"labels must be (B, {len(num_classes)}), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")
    code = torch.zeros(labels.shape[0], code_dim(num_classes), device=labels.device)  # (B, C)
    require(labels >= 0, lambda: "a label is missing (-1); fill it first (fill_missing, or the "
                                  "discriminator's prediction): a missing label is never a class")
    # One attribute at a time, with the class counts as Python numbers: a tensor of limits or
    # offsets built here would be a host-to-device copy, which waits for the GPU.
    for a, (start, n) in enumerate(zip(code_offsets(num_classes), num_classes)):
        column = labels[:, a:a + 1].long()  # (B, 1)
        require(column < int(n),
                lambda: f"a label is out of range for num_classes {list(num_classes)}")
        code[:, start:start + int(n)].scatter_(1, column, 1.0)
    return code


def strengthen_code(code: Tensor, strengthened: Tensor, strength: float,
                    num_classes: Sequence[int]) -> Tensor:
    """A one-hot code (B, C) with the blocks of the attributes `strengthened` (B, A) marks
    pushed `strength` times as far from the other classes: such a block becomes
    onehot + (strength - 1) * (onehot - (1 - onehot) / (n - 1)), so for two classes strength 2
    turns [0, 1] into [-1, 2]. Strength 1 (or an attribute of one class) leaves it as it is.

    Style transfer decodes with it when a plain code leaves a sentence in its source's style
    (`textgan.sampling.transfer`, transfer.style_strengths): the generator only ever saw
    one-hot codes, so a stronger one extrapolates along the direction it learned.
    """
    blocks = []
    for a, block in enumerate(split_code(code, num_classes)):  # (B, n) each
        n = block.shape[1]
        if n < 2 or strength == 1.0:
            blocks.append(block)
            continue
        away = block - (1.0 - block) / (n - 1)  # (B, n): +1 on the class, -1/(n-1) elsewhere
        pushed = block + (strength - 1.0) * away
        blocks.append(torch.where(strengthened[:, a:a + 1].bool(), pushed, block))
    return torch.cat(blocks, dim=1) if blocks else code


def sample_code(batch_size: int, num_classes: Sequence[int], *,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """Labels (B, A) drawn from the prior: each attribute uniform over its classes.

    With a generator and no device, the labels live on the generator's device (torch requires
    the two to match).
    """
    _check_num_classes(num_classes)
    if device is None and generator is not None:
        device = generator.device
    if not num_classes:
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    columns = [torch.randint(int(n), (batch_size,), generator=generator, device=device)
               for n in num_classes]  # A x (B,)
    return torch.stack(columns, dim=1)  # (B, A)


def fill_missing(labels: Tensor, label_mask: Tensor, num_classes: Sequence[int], *,
                 generator: torch.Generator | None = None) -> Tensor:
    """Labels (B, A) where known (label_mask True), a prior draw where missing.

    The prior is drawn for every entry and then selected, so the random stream advances by the
    same amount whatever the mask holds: a resumed run draws the same numbers as an unbroken one.
    """
    if labels.shape != label_mask.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and label_mask "
                         f"{tuple(label_mask.shape)} differ in shape")
    if labels.dim() != 2 or labels.shape[1] != len(num_classes):
        raise ValueError(f"labels must be (B, {len(num_classes)}), got {tuple(labels.shape)}")
    prior = sample_code(labels.shape[0], num_classes, generator=generator,
                        device=labels.device)  # (B, A)
    return torch.where(label_mask.bool(), labels.long(), prior)
