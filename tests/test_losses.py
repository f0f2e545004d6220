"""Loss terms: hand-computed values, EOS masking, fp32 computation, free-bits gradients, and the
beta-TCVAE / MI estimators against explicit float64 loops over the batch."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from textgan.losses import (
    TCTerms,
    active_units,
    decomposed_kl_loss,
    free_bits_kl,
    gaussian_kl,
    kl_decomposition,
    length_mask,
    mutual_information,
    reconstruction_loss,
)

# Ids of the hand-made 3-word vocabulary below (tests only: library code takes them as args).
PAD, WORD, EOS = 0, 1, 2
LOG2, LOG3 = math.log(2.0), math.log(3.0)


def hand_case():
    """2 sentences x 4 steps, V = 3. A step whose target logit is log 2 (others 0) costs log 2
    (p = 2/4); an all-zero step costs log 3. Row 1 has 2 real tokens, then 2 padding steps with
    wild logits that must not count."""
    targets = torch.tensor([[WORD, WORD, WORD, EOS],
                            [WORD, EOS, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    logits = torch.zeros(2, 4, 3, dtype=torch.float64)
    logits[0, 0, WORD] = LOG2
    logits[0, 3, EOS] = LOG2
    logits[1, 1, EOS] = LOG2
    logits[1, 2:] = torch.tensor([50.0, -30.0, 7.0], dtype=torch.float64)
    return logits, targets, lengths


# --------------------------------------------------------------------------- reconstruction


def test_reconstruction_hand_values():
    logits, targets, lengths = hand_case()
    rec = reconstruction_loss(logits, targets, lengths)
    torch.testing.assert_close(rec.nll_sum, torch.tensor([2 * LOG2 + 2 * LOG3, LOG3 + LOG2]))
    assert rec.tokens.tolist() == [4, 2]
    assert rec.per_sentence.item() == pytest.approx((3 * LOG2 + 3 * LOG3) / 2)
    assert rec.per_token.item() == pytest.approx(math.log(6.0) / 2)  # 6 tokens, 3 log 6 in all


def test_reconstruction_matches_cross_entropy_ignoring_pad_when_they_agree():
    torch.manual_seed(0)
    lengths = torch.tensor([5, 1, 3])
    targets = torch.randint(1, 7, (3, 5))
    targets[~length_mask(lengths, 5)] = PAD
    logits = torch.randn(3, 5, 7)
    rec = reconstruction_loss(logits, targets, lengths)
    expected = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=PAD,
                               reduction="sum")
    torch.testing.assert_close(rec.nll_sum.sum(), expected)
    torch.testing.assert_close(rec.per_token, expected / 9)


def test_reconstruction_ignores_everything_after_eos():
    logits, targets, lengths = hand_case()
    base = reconstruction_loss(logits, targets, lengths).nll_sum
    after_logits, after_targets = logits.clone(), targets.clone()
    after_logits[1, 2:] = torch.randn(2, 3, dtype=torch.float64) * 100
    after_targets[1, 2:] = torch.tensor([WORD, EOS])  # a "pad" that is a real id
    torch.testing.assert_close(reconstruction_loss(after_logits, after_targets, lengths).nll_sum,
                               base)


def test_reconstruction_counts_the_eos_step():
    logits, targets, lengths = hand_case()
    base = reconstruction_loss(logits, targets, lengths).nll_sum
    at_logits = logits.clone()
    at_logits[1, 1, EOS] = 0.0  # the EOS step now costs log 3 instead of log 2
    changed = reconstruction_loss(at_logits, targets, lengths).nll_sum
    assert changed[1].item() == pytest.approx(base[1].item() - LOG2 + LOG3)
    at_targets = targets.clone()
    at_targets[1, 1] = WORD  # a wrong EOS target changes the loss too
    assert reconstruction_loss(logits, at_targets, lengths).nll_sum[1] != base[1]


def test_reconstruction_gradient_is_zero_after_eos():
    logits, targets, lengths = hand_case()
    logits.requires_grad_(True)
    reconstruction_loss(logits, targets, lengths).per_sentence.backward()
    assert torch.all(logits.grad[1, 2:] == 0)
    assert torch.all(logits.grad[1, :2].abs().sum(-1) > 0)


def test_reconstruction_mask_follows_lengths_not_pad_id():
    # The pad id is also a real word here: lengths decide what counts.
    targets = torch.tensor([[PAD, WORD, EOS, PAD]])
    logits = torch.zeros(1, 4, 3)
    rec = reconstruction_loss(logits, targets, torch.tensor([3]))
    assert rec.tokens.tolist() == [3]
    assert rec.nll_sum.item() == pytest.approx(3 * LOG3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reconstruction_runs_in_fp32_for_half_logits(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(2, 4, 50) * 4).to(dtype).requires_grad_(True)
    targets = torch.randint(0, 50, (2, 4))
    lengths = torch.tensor([4, 3])
    rec = reconstruction_loss(logits, targets, lengths)
    assert rec.nll_sum.dtype == torch.float32 and rec.per_token.dtype == torch.float32
    reference = reconstruction_loss(logits.detach().float(), targets, lengths)
    torch.testing.assert_close(rec.nll_sum, reference.nll_sum)  # same fp32 maths, not bf16
    rec.per_sentence.backward()
    assert logits.grad.dtype == dtype


# --------------------------------------------------------------------------- KL and free bits


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean = torch.randn(4, 3, dtype=torch.float64)
    logvar = torch.randn(4, 3, dtype=torch.float64)
    q = Normal(mean, (0.5 * logvar).exp())
    p = Normal(torch.zeros_like(mean), torch.ones_like(mean))
    kl = gaussian_kl(mean, logvar)
    assert kl.shape == (4, 3)
    torch.testing.assert_close(kl, kl_divergence(q, p))


def test_gaussian_kl_hand_value():
    # mean 1, var e: 0.5 * (1 + e - 1 - 1) = 0.5 * (e - 1); the standard normal itself: 0.
    kl = gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(kl, torch.tensor([[0.5 * (math.e - 1.0), 0.0]]))


def test_free_bits_values():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # batch means: 0.2 (below 0.5) and 3.0
    terms = free_bits_kl(kl, free_bits=0.5)
    torch.testing.assert_close(terms.per_dim_mean, torch.tensor([0.2, 3.0]))
    assert terms.raw.item() == pytest.approx(3.2)
    assert terms.loss_value.item() == pytest.approx(0.5 + 3.0)
    off = free_bits_kl(kl, free_bits=0.0)
    assert off.loss_value.item() == pytest.approx(3.2) == off.raw.item()


def test_free_bits_gradient_zero_below_floor_and_raw_above():
    torch.manual_seed(0)
    mean = torch.tensor([[0.1, 2.0], [-0.2, 1.5], [0.05, -2.5]], requires_grad=True)
    logvar = torch.tensor([[-0.1, -1.0], [0.1, 0.5], [0.05, -0.3]], requires_grad=True)
    kl = gaussian_kl(mean, logvar)
    assert kl.mean(0)[0] < 0.5 < kl.mean(0)[1]  # dimension 0 below the floor, 1 above
    terms = free_bits_kl(kl, free_bits=0.5)
    clamped = torch.autograd.grad(terms.loss_value, (mean, logvar), retain_graph=True)
    raw = torch.autograd.grad(terms.raw, (mean, logvar))
    for got, plain in zip(clamped, raw):
        assert torch.all(got[:, 0] == 0)
        assert torch.all(plain[:, 0] != 0)
        torch.testing.assert_close(got[:, 1], plain[:, 1])


def test_free_bits_rejects_a_negative_floor():
    with pytest.raises(ValueError, match="free_bits"):
        free_bits_kl(torch.zeros(2, 2), free_bits=-0.1)


# --------------------------------------------------------------------------- beta-TCVAE (MWS)


def tiny_posterior(batch=3, dims=2, seed=0):
    torch.manual_seed(seed)
    mean = torch.randn(batch, dims, dtype=torch.float64)
    logvar = torch.randn(batch, dims, dtype=torch.float64) * 0.5
    z = mean + (0.5 * logvar).exp() * torch.randn(batch, dims, dtype=torch.float64)
    return z, mean, logvar


def brute_force_terms(z, mean, logvar, dataset_size):
    """The MWS formulas with explicit loops, torch.distributions densities and math.log/exp."""
    batch, dims = z.shape
    std = (0.5 * logvar).exp()

    def log_q(i, j, d):  # log q(z_id | x_j)
        return Normal(mean[j, d], std[j, d]).log_prob(z[i, d]).item()

    log_norm = math.log(batch * dataset_size)
    mi = tc = dw = kl_sample = 0.0
    for i in range(batch):
        own = sum(log_q(i, i, d) for d in range(dims))
        joint = math.log(sum(math.exp(sum(log_q(i, j, d) for d in range(dims)))
                             for j in range(batch))) - log_norm
        marginals = sum(math.log(sum(math.exp(log_q(i, j, d)) for j in range(batch))) - log_norm
                        for d in range(dims))
        prior = sum(Normal(0.0, 1.0).log_prob(z[i, d]).item() for d in range(dims))
        mi += own - joint
        tc += joint - marginals
        dw += marginals - prior
        kl_sample += own - prior
    return mi / batch, tc / batch, dw / batch, kl_sample / batch


def test_kl_decomposition_matches_brute_force():
    z, mean, logvar = tiny_posterior()
    terms = kl_decomposition(z, mean, logvar, dataset_size=10)
    mi, tc, dw, _ = brute_force_terms(z, mean, logvar, dataset_size=10)
    assert terms.mutual_info.item() == pytest.approx(mi, abs=1e-10)
    assert terms.total_correlation.item() == pytest.approx(tc, abs=1e-10)
    assert terms.dimwise_kl.item() == pytest.approx(dw, abs=1e-10)


@pytest.mark.parametrize("dataset_size", [1, 7, 100_000])
def test_kl_decomposition_sums_to_the_sampled_kl(dataset_size):
    z, mean, logvar = tiny_posterior(batch=5, dims=4, seed=1)
    terms = kl_decomposition(z, mean, logvar, dataset_size=dataset_size)
    total = terms.mutual_info + terms.total_correlation + terms.dimwise_kl
    std = (0.5 * logvar).exp()
    log_q = Normal(mean, std).log_prob(z).sum(1)  # (B,) log q(z_i | x_i)
    log_p = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(1)
    assert total.item() == pytest.approx((log_q - log_p).mean().item(), abs=1e-12)
    assert total.item() == pytest.approx(brute_force_terms(z, mean, logvar, dataset_size)[3],
                                         abs=1e-10)


def test_kl_decomposition_in_fp32_and_differentiable():
    z, mean, logvar = (t.float().requires_grad_(True) for t in tiny_posterior(batch=8, dims=3))
    terms = kl_decomposition(z, mean, logvar, dataset_size=50)
    assert all(t.dtype == torch.float32 and t.shape == () for t in terms)
    decomposed_kl_loss(terms, 1.0, 1.0, 1.0).backward()
    assert mean.grad is not None and torch.isfinite(mean.grad).all()


def test_decomposed_loss_weights_and_clamps_negative_estimates():
    mi = torch.tensor(-0.5, requires_grad=True)
    tc = torch.tensor(1.0, requires_grad=True)
    dw = torch.tensor(2.0, requires_grad=True)
    loss = decomposed_kl_loss(TCTerms(mi, tc, dw), mi_weight=2.0, tc_weight=3.0,
                              dim_kl_weight=4.0)
    assert loss.item() == pytest.approx(0.0 + 3.0 + 8.0)
    loss.backward()
    assert mi.grad.item() == 0.0 and tc.grad.item() == 3.0 and dw.grad.item() == 4.0


def test_kl_decomposition_rejects_an_empty_dataset():
    z, mean, logvar = tiny_posterior()
    with pytest.raises(ValueError, match="dataset_size"):
        kl_decomposition(z, mean, logvar, dataset_size=0)


# --------------------------------------------------------------------------- MI, active units


def test_mutual_information_matches_brute_force():
    z, mean, logvar = tiny_posterior(batch=4, dims=3, seed=2)
    batch = 4
    std = (0.5 * logvar).exp()
    neg_entropy = -Normal(mean, std).entropy().sum(1).mean().item()
    log_qz = [math.log(sum(math.exp(Normal(mean[j], std[j]).log_prob(z[i]).sum().item())
                           for j in range(batch)) / batch) for i in range(batch)]
    expected = neg_entropy - sum(log_qz) / batch
    assert mutual_information(mean, logvar, z).item() == pytest.approx(expected, abs=1e-10)


def test_mutual_information_is_log_batch_for_separated_posteriors():
    # Posteriors 100 standard deviations apart, and samples one standard deviation from their
    # mean in every dimension (so log q(z_i|x_i) equals minus the entropy): MI = log B exactly.
    batch, dims = 4, 2
    mean = torch.arange(batch, dtype=torch.float64).unsqueeze(1).repeat(1, dims) * 10.0
    logvar = torch.full((batch, dims), math.log(0.01), dtype=torch.float64)
    z = mean + 0.1 * torch.tensor([[1.0, -1.0]] * batch, dtype=torch.float64)
    assert mutual_information(mean, logvar, z).item() == pytest.approx(math.log(batch), abs=1e-9)


def test_active_units_hand_case():
    means = torch.tensor([[0.0, 0.1, 0.0, 0.0],
                          [1.0, 0.1, 0.1, 0.2],
                          [2.0, 0.1, 0.0, 0.0],
                          [3.0, 0.1, 0.1, 0.2]])
    # unbiased variances per column: 5/3, 0, 0.01/3 (below 0.01), 0.04/3 (above)
    assert active_units(means) == 2
    assert active_units(means, threshold=2.0) == 0


def test_active_units_needs_two_sentences():
    with pytest.raises(ValueError, match="at least 2"):
        active_units(torch.zeros(1, 3))
