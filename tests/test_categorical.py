"""sample_categorical: draws in the law of the rows, never a zero-probability entry."""

from __future__ import annotations

import pytest
import torch

from textgan.models.categorical import sample_categorical


def _frequencies(probs: torch.Tensor, draws: int, seed: int = 0) -> torch.Tensor:
    """Empirical frequencies (V,) of `draws` draws from the one row `probs` (V,)."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(probs.shape[0], dtype=torch.float64)
    for start in range(0, draws, 10_000):  # rows of 10k draws: the cumsum is (rows, V)
        rows = min(10_000, draws - start)
        index = sample_categorical(probs.expand(rows, -1), generator=generator)
        counts += torch.bincount(index, minlength=probs.shape[0])
    return counts / draws


def test_frequencies_follow_the_row_and_zero_mass_is_never_drawn():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])
    freq = _frequencies(probs, 200_000)
    assert freq[1] == 0 and freq[4] == 0  # zero mass, including the last entry
    # binomial standard error at 200k draws is <= 0.0012: 0.005 is ~4 standard errors
    assert torch.allclose(freq, probs.double(), atol=0.005)


def test_an_unnormalised_row_is_drawn_in_proportion():
    freq = _frequencies(torch.tensor([2.0, 0.0, 0.0, 6.0]), 100_000)
    assert freq[1] == freq[2] == 0
    assert freq[3] == pytest.approx(0.75, abs=0.006)


def test_a_large_vocabulary_matches_the_law_by_chi_square():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 2
    probs = torch.softmax(logits, dim=-1)
    draws = 300_000
    observed = _frequencies(probs, draws) * draws
    expected = probs.double() * draws
    common = expected > 20  # the chi-square approximation wants large expected counts
    chi2 = float((((observed - expected)[common]) ** 2 / expected[common]).sum())
    dof = int(common.sum()) - 1
    # mean dof, sd sqrt(2 dof): a wrong law (e.g. an off-by-one shift of the index) is far out
    assert chi2 < dof + 5 * (2 * dof) ** 0.5


def test_the_top_of_the_uniform_cannot_step_past_the_last_positive_entry(monkeypatch):
    # rand's largest value times the total can round up to the total itself
    below_one = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: below_one.expand(shape).clone())
    probs = torch.tensor([[0.1, 0.7, 0.2, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]])
    assert sample_categorical(probs).tolist() == [2, 2]


def test_draws_are_reproducible_by_generator_and_shaped_per_row():
    probs = torch.softmax(torch.randn(7, 50), dim=-1)
    first = sample_categorical(probs, generator=torch.Generator().manual_seed(3))
    again = sample_categorical(probs, generator=torch.Generator().manual_seed(3))
    assert first.shape == (7,) and first.dtype == torch.long
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        sample_categorical(probs[0])
