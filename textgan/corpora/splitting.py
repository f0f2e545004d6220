"""Deterministic train/valid/test carving of one dataset (a single file, or a train-only folder).

A seeded permutation (numpy PCG64, data.split_seed) picks round(n * fraction) sentences for each
carved split, at least one when the fraction is positive and the corpus has three or more
sentences (so every split exists even on toy corpora). Each split keeps the file order. The same
cleaned corpus and seed always give the same split; cleaning runs first, so the fractions apply
to the sentences actually kept.
"""

from __future__ import annotations

import math

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from textgan.corpora.raw import keep_rows

_TRAIN, _VALID, _TEST = 0, 1, 2
_CODES = {"train": _TRAIN, "valid": _VALID, "test": _TEST}


def carved_size(total: int, fraction: float) -> int:
    size = math.floor(total * fraction + 0.5)  # round half up: round() would give 0 for 0.5
    if fraction > 0 and size == 0 and total >= 3:
        size = 1
    return size


def assign_roles(total: int, valid_fraction: float | None, test_fraction: float | None,
                 seed: int) -> np.ndarray:
    """The role code of every row (0 train, 1 valid, 2 test); a None fraction carves nothing."""
    order = np.random.default_rng(seed).permutation(total)
    roles = np.full(total, _TRAIN, dtype=np.int8)
    n_test = carved_size(total, test_fraction) if test_fraction is not None else 0
    n_valid = carved_size(total, valid_fraction) if valid_fraction is not None else 0
    roles[order[:n_test]] = _TEST
    roles[order[n_test:n_test + n_valid]] = _VALID
    return roles


def _rows_of_role(batch: dict[str, list], indices: list[int], roles: np.ndarray,
                  code: int) -> dict[str, list]:
    return keep_rows(batch, roles[indices] == code)


def carve(ds: datasets.Dataset, valid_fraction: float | None, test_fraction: float | None,
          seed: int) -> dict[str, datasets.Dataset]:
    """{"train": ..., and "valid"/"test" for each fraction that is not None}."""
    roles = assign_roles(len(ds), valid_fraction, test_fraction, seed)
    wanted = ["train"] + [role for role, fraction in (("valid", valid_fraction),
                                                      ("test", test_fraction))
                          if fraction is not None]
    parts = {}
    for role in wanted:
        # a map that keeps rows, not select(): see raw.keep_rows. The fingerprint names what the
        # result depends on, so datasets need not hash the roles array
        fingerprint = Hasher.hash(["textgan-carve-v1", ds._fingerprint, role, valid_fraction,
                                   test_fraction, seed])
        parts[role] = ds.map(_rows_of_role, batched=True, with_indices=True,
                             remove_columns=ds.column_names, features=ds.features,
                             fn_kwargs={"roles": roles, "code": _CODES[role]},
                             new_fingerprint=fingerprint, desc=f"textgan: carving {role}")
    return parts
