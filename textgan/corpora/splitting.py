"""Deterministic train/valid/test carving of one dataset (a single file, or a train-only folder).

A seeded permutation (numpy PCG64, data.split_seed) picks the sentences of each carved split:
exactly data.valid_size / data.test_size of them when that is set (above 0), otherwise
round(n * fraction), at least one when the fraction is positive and the corpus has three or more
sentences (so every split exists even on toy corpora). Test takes the first picks, valid the next
ones. Each split keeps the file order. The same cleaned corpus, seed and sizes always give the
same split; cleaning runs first, so fractions and sizes apply to the sentences actually kept.
"""

from __future__ import annotations

import math

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from textgan.corpora.bars import datasets_bars
from textgan.corpora.raw import keep_rows
from textgan.errors import CorpusError

_TRAIN, _VALID, _TEST = 0, 1, 2
_CODES = {"train": _TRAIN, "valid": _VALID, "test": _TEST}


def carved_size(total: int, fraction: float) -> int:
    size = math.floor(total * fraction + 0.5)  # round half up: round() would give 0 for 0.5
    if fraction > 0 and size == 0 and total >= 3:
        size = 1
    return size


def held_out_size(total: int, fraction: float | None, size: int = 0) -> int:
    """Sentences carved for one split: none when its fraction is None (the split is not carved),
    exactly `size` when that is set, otherwise the fraction's share."""
    if fraction is None:
        return 0
    return size if size > 0 else carved_size(total, fraction)


def assign_roles(total: int, valid_fraction: float | None, test_fraction: float | None,
                 seed: int, valid_size: int = 0, test_size: int = 0) -> np.ndarray:
    """The role code of every row (0 train, 1 valid, 2 test); a None fraction carves nothing,
    a size above 0 carves exactly that many instead of the fraction."""
    n_test = held_out_size(total, test_fraction, test_size)
    n_valid = held_out_size(total, valid_fraction, valid_size)
    if (valid_size > 0 or test_size > 0) and n_valid + n_test >= total:
        raise CorpusError(
            f"carving {n_valid} valid and {n_test} test sentences (data.valid_size "
            f"{valid_size}, data.test_size {test_size}) leaves no training sentences: train has "
            f"{total} after cleaning; set smaller sizes, or 0 to use the fractions")
    order = np.random.default_rng(seed).permutation(total)
    roles = np.full(total, _TRAIN, dtype=np.int8)
    roles[order[:n_test]] = _TEST
    roles[order[n_test:n_test + n_valid]] = _VALID
    return roles


def _portion(fraction: float | None, size: int) -> float | list | None:
    """What a carved split's size depends on, for the fingerprint. A fraction alone hashes as
    before sizes existed, so corpora carved by fractions keep their cached files."""
    if fraction is None or size <= 0:
        return fraction
    return ["size", size]


def _rows_of_role(batch: dict[str, list], indices: list[int], roles: np.ndarray,
                  code: int) -> dict[str, list]:
    return keep_rows(batch, roles[indices] == code)


def carve(ds: datasets.Dataset, valid_fraction: float | None, test_fraction: float | None,
          seed: int, *, valid_size: int = 0, test_size: int = 0) -> dict[str, datasets.Dataset]:
    """{"train": ..., and "valid"/"test" for each fraction that is not None}; a size above 0
    carves exactly that many sentences for its split instead of the fraction."""
    roles = assign_roles(len(ds), valid_fraction, test_fraction, seed, valid_size, test_size)
    wanted = ["train"] + [role for role, fraction in (("valid", valid_fraction),
                                                      ("test", test_fraction))
                          if fraction is not None]
    portions = [_portion(valid_fraction, valid_size), _portion(test_fraction, test_size)]
    parts = {}
    for role in wanted:
        # a map that keeps rows, not select(): see raw.keep_rows. The fingerprint names what the
        # result depends on, so datasets need not hash the roles array
        fingerprint = Hasher.hash(["textgan-carve-v1", ds._fingerprint, role, *portions, seed])
        with datasets_bars(len(ds)):
            parts[role] = ds.map(_rows_of_role, batched=True, with_indices=True,
                                 remove_columns=ds.column_names, features=ds.features,
                                 fn_kwargs={"roles": roles, "code": _CODES[role]},
                                 new_fingerprint=fingerprint, desc=f"textgan: carving {role}")
    return parts
