"""A set of 64-bit sentence digests in sorted numpy arrays, for deduplicating large corpora.

    seen = SeenDigests()
    keep = seen.first_seen(digests)   # bool per row: first time this digest appears, ever

Why not a Python `set[int]`: each 64-bit int is a 32-byte object plus ~20 bytes of table slot,
about 60-70 bytes a sentence (1M sentences: +116 MiB of heap measured by
benchmarks/corpus_memory.py). Here a digest costs its 8 bytes, so deduplicating a corpus of
hundreds of millions of sentences fits in memory.

Two sorted arrays, like a two-level log-structured merge: `_recent` takes each batch's new
digests (a stable sort of two sorted runs is a linear merge), and is merged into `_settled` when
it outgrows an eighth of it, so every digest is copied O(log n) times and a membership test is
two binary searches.
"""

from __future__ import annotations

import numpy as np

_RECENT_MIN = 1 << 16  # below this `_recent` never merges: merging a tiny array is pure overhead


def _sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two sorted arrays with no common element, as one sorted array. `kind="stable"` is
    timsort for integers, which merges the two runs in linear time."""
    return np.sort(np.concatenate((a, b)), kind="stable")


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_values, values)
    return sorted_values[np.minimum(at, len(sorted_values) - 1)] == values


class SeenDigests:
    """The digests seen so far; `first_seen` asks about a batch and remembers it."""

    def __init__(self) -> None:
        self._settled = np.empty(0, dtype=np.uint64)
        self._recent = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._settled) + len(self._recent)

    def first_seen(self, digests: np.ndarray) -> np.ndarray:
        """For each digest, in order: True if neither an earlier batch nor an earlier position of
        this batch had it. The batch's digests are then remembered."""
        digests = np.asarray(digests, dtype=np.uint64)
        unique, first = np.unique(digests, return_index=True)
        new = ~(_contains(self._settled, unique) | _contains(self._recent, unique))
        keep = np.zeros(len(digests), dtype=bool)
        keep[first[new]] = True
        self._recent = _sorted_union(self._recent, unique[new])
        if len(self._recent) > max(_RECENT_MIN, len(self._settled) // 8):
            self._settled = _sorted_union(self._settled, self._recent)
            self._recent = np.empty(0, dtype=np.uint64)
        return keep
