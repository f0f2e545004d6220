"""SeenDigests: the compact set behind deduplication must answer exactly as a Python set."""

import numpy as np
import pytest

from textgan.corpora import digests as digests_module
from textgan.corpora.digests import SeenDigests


def reference_first_seen(batches):
    seen, answers = set(), []
    for batch in batches:
        answer = []
        for value in batch.tolist():
            answer.append(value not in seen)
            seen.add(value)
        answers.append(answer)
    return answers


@pytest.mark.parametrize("recent_min", [1, 7, 1 << 16])
def test_first_seen_matches_a_python_set_across_merges(monkeypatch, recent_min):
    # recent_min 1 and 7 force the two arrays to merge many times; 2^16 never merges here
    monkeypatch.setattr(digests_module, "_RECENT_MIN", recent_min)
    rng = np.random.default_rng(0)
    # few distinct values, so repeats happen within a batch and across batches; the top bit set
    # in some of them, so uint64 is not silently read as int64
    values = rng.integers(0, 2**63, size=300, dtype=np.uint64) | np.uint64(1 << 63) * (
        rng.random(300) < 0.5).astype(np.uint64)
    batches = [values[rng.integers(0, len(values), size=int(size))]
               for size in rng.integers(0, 60, size=40)]
    seen = SeenDigests()
    answers = [seen.first_seen(batch).tolist() for batch in batches]
    assert answers == reference_first_seen(batches)
    assert len(seen) == len(set(np.concatenate(batches).tolist()))


def test_an_empty_batch_and_the_extreme_values():
    seen = SeenDigests()
    assert seen.first_seen(np.empty(0, dtype=np.uint64)).tolist() == []
    top = np.array([2**64 - 1, 0, 2**64 - 1, 0], dtype=np.uint64)
    assert seen.first_seen(top).tolist() == [True, True, False, False]
    assert seen.first_seen(top[:1]).tolist() == [False]
