"""Loss terms of the VAE-GAN as pure functions of tensors (no modules, no state, no config).

Each function takes what the networks return and gives back named tuples of tensors, so the
engines decide how terms are weighted and what is logged. Sections:

- reconstruction: EOS-aware token cross-entropy (`reconstruction_loss`);
- KL to the prior: closed form per dimension (`gaussian_kl`) and free bits (`free_bits_kl`);
- KL decomposition (beta-TCVAE) and VAE health: `kl_decomposition`, `decomposed_kl_loss`,
  `mutual_information`, `active_units`;
- (the adversarial stage adds its terms here: discriminator entropy, attribute and
  independence losses.)

Conventions: `B` sentences, `T` time steps, `V` vocabulary, `Z` latent dimensions. Every loss is
computed in fp32 (or fp64 when given fp64) whatever the dtype of the network outputs, because
log-softmax and log-sum-exp in bf16/fp16 lose the small differences the gradients live on.

The VAE objective is the negative ELBO **per sentence**, averaged over the batch:

    L_VAE = mean_b [ sum_t NLL(b, t) ] + beta * mean_b [ KL(q(z|x_b) || p(z)) ]

Both terms are per-sentence quantities, so beta means what it says (beta=1 is the ELBO). Averaging
the NLL per token instead would divide the reconstruction term by the mean sentence length and
so multiply the effective KL weight by it (x15 for 15-token sentences), which pushes the model
toward posterior collapse. Per-token NLL is still what we *log* (it compares across lengths and
gives perplexity); `RecLoss` carries both.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- reconstruction


class RecLoss(NamedTuple):
    """Reconstruction cross-entropy of a batch, masked up to and including EOS."""

    nll_sum: Tensor       # (B,) fp32: summed token NLL of each sentence
    tokens: Tensor        # (B,) int64: tokens counted per sentence (= lengths, clipped to T)
    per_sentence: Tensor  # () fp32: mean_b nll_sum -- the ELBO's reconstruction term (the loss)
    per_token: Tensor     # () fp32: sum_b nll_sum / sum_b tokens -- NLL per token (logged)


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, T) bool, True at positions t < lengths[b]: the real tokens, EOS included."""
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def reconstruction_loss(logits: Tensor, targets: Tensor, lengths: Tensor) -> RecLoss:
    """Token NLL of `targets` under teacher-forced `logits`, counting positions t < lengths[b].

    logits (B, T, V) any float dtype; targets (B, T) int64 (sentence ids, EOS, then padding);
    lengths (B,) int64 = real tokens including EOS. The mask comes from `lengths`, not from the
    pad id: the ids after EOS may be anything (a pad id that is also a real id, an UNK-ed copy),
    and the length is what the data pipeline guarantees.
    """
    batch, steps, vocab = logits.shape
    # fp32 before log-softmax: bf16 keeps 8 bits of mantissa, too few to tell
    # log-probabilities apart near the top of a 4k-32k vocabulary.
    flat_logits = logits.reshape(-1, vocab).float()  # (B*T, V)
    # 2-D cross_entropy: the 3-D form runs nll_loss2d, non-deterministic (raising) on CUDA.
    nll = F.cross_entropy(flat_logits, targets.reshape(-1), reduction="none")  # (B*T,)
    nll = nll.view(batch, steps)  # (B, T)
    # lengths usually live on the CPU (pack_padded_sequence wants them there).
    mask = length_mask(lengths.to(nll.device), steps)  # (B, T)
    # Padding positions are computed and zeroed rather than gathered away: boolean indexing
    # would force a device->host sync and give the loss a data-dependent shape.
    nll_sum = nll.masked_fill(~mask, 0.0).sum(dim=1)  # (B,)
    tokens = mask.sum(dim=1)  # (B,)
    per_sentence = nll_sum.mean()
    per_token = nll_sum.sum() / tokens.sum().clamp(min=1)
    return RecLoss(nll_sum=nll_sum, tokens=tokens, per_sentence=per_sentence, per_token=per_token)


# --------------------------------------------------------------------------- KL to the prior


class KLTerms(NamedTuple):
    """The KL term of a batch, as the gradient sees it and as it is logged."""

    loss_value: Tensor    # (): sum_j max(free_bits, mean_b KL_bj) -- goes into the loss
    raw: Tensor           # (): sum_j mean_b KL_bj = mean_b KL(q(z|x_b) || p(z)) -- logged
    per_dim_mean: Tensor  # (Z,): mean_b KL_bj -- logged per dimension (collapse diagnostics)


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """(B, Z) per-dimension KL(N(mean, exp(logvar)) || N(0, 1)) in closed form (nats).

    KL_j = 0.5 * (mean_j^2 + exp(logvar_j) - 1 - logvar_j)
    """
    mean, logvar = _at_least_fp32(mean), _at_least_fp32(logvar)
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, Z)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> KLTerms:
    """Free bits (Kingma et al. 2016, "Improved variational inference with IAF", eq. 15).

    Variant: one group per latent dimension, floor on the **batch-averaged** KL:

        loss_value = sum_j max(free_bits, mean_b KL_bj)

    A dimension whose batch mean KL is below the floor gets no gradient from the KL term, so the
    encoder may spend up to `free_bits` nats in it for free; above the floor the gradient is that
    of the plain KL. The per-example alternative (max(lambda, KL_bj) per sentence) is not used: it
    lets every sentence keep lambda nats in every dimension, and the batch mean is what Kingma et
    al. clamp. free_bits = 0 gives loss_value == raw (and the same gradient).
    """
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0, got {free_bits}")
    per_dim_mean = kl_per_dim.mean(dim=0)  # (Z,)
    raw = per_dim_mean.sum()
    # clamp's gradient is 1 where the input is >= the floor and 0 below it.
    loss_value = per_dim_mean.clamp(min=free_bits).sum() if free_bits > 0 else raw
    return KLTerms(loss_value=loss_value, raw=raw, per_dim_mean=per_dim_mean)


# --------------------------------------------------------------------------- KL decomposition


class TCTerms(NamedTuple):
    """beta-TCVAE terms of a batch (Chen et al. 2018, eq. 2), raw estimates (may be negative)."""

    mutual_info: Tensor        # (): E[log q(z|x) - log q(z)]            index-code MI
    total_correlation: Tensor  # (): E[log q(z) - sum_j log q(z_j)]       TC
    dimwise_kl: Tensor         # (): E[sum_j log q(z_j) - log p(z_j)]     dimension-wise KL


def gaussian_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mean, exp(logvar)); broadcasts its arguments."""
    return -0.5 * (_LOG_2PI + logvar + (z - mean).pow(2) * torch.exp(-logvar))


def pairwise_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """(B, B, Z): entry [i, j, d] = log q(z_id | x_j), sample i scored under posterior j."""
    z, mean, logvar = _at_least_fp32(z), _at_least_fp32(mean), _at_least_fp32(logvar)
    return gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))


def kl_decomposition(z: Tensor, mean: Tensor, logvar: Tensor, dataset_size: int) -> TCTerms:
    """Minibatch-weighted sampling (MWS) estimate of the beta-TCVAE decomposition.

    z (B, Z) is one reparameterised sample per sentence from q(z|x_b) = N(mean_b, exp(logvar_b)).
    With N = dataset_size (Chen et al. 2018, section 3.1 and their reference code):

        log q(z_i)       ~ logsumexp_j [ sum_d log q(z_id | x_j) ] - log(B * N)
        log q(z_id)      ~ logsumexp_j [ log q(z_id | x_j) ]      - log(B * N)   (each d)
        MI  = mean_i [ log q(z_i | x_i)      - log q(z_i) ]
        TC  = mean_i [ log q(z_i)            - sum_d log q(z_id) ]
        DWK = mean_i [ sum_d log q(z_id)     - log p(z_i) ]

    The three telescope: MI + TC + DWK = mean_i [log q(z_i|x_i) - log p(z_i)], the single-sample
    Monte-Carlo estimate of KL(q(z|x) || p(z)) at the drawn z, whatever the q(z) estimate. MWS is
    biased (it weighs the sample's own posterior as 1/(B*N) of q(z) instead of 1/N) and the MI
    and TC estimates can come out negative; `decomposed_kl_loss` clamps them, log these raw.
    """
    if dataset_size < 1:
        raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
    batch = z.shape[0]
    z_ = _at_least_fp32(z)
    log_qz_x = pairwise_log_density(z, mean, logvar)  # (B, B, Z)
    log_q_own = log_qz_x.diagonal(dim1=0, dim2=1).sum(dim=0)  # (B,) log q(z_i|x_i)
    log_norm = math.log(batch * dataset_size)
    log_qz = torch.logsumexp(log_qz_x.sum(dim=2), dim=1) - log_norm  # (B,)
    log_qz_marginals = (torch.logsumexp(log_qz_x, dim=1) - log_norm).sum(dim=1)  # (B,)
    log_pz = gaussian_log_density(z_, torch.zeros_like(z_), torch.zeros_like(z_)).sum(dim=1)
    return TCTerms(
        mutual_info=(log_q_own - log_qz).mean(),
        total_correlation=(log_qz - log_qz_marginals).mean(),
        dimwise_kl=(log_qz_marginals - log_pz).mean(),
    )


def decomposed_kl_loss(terms: TCTerms, mi_weight: float, tc_weight: float,
                       dim_kl_weight: float) -> Tensor:
    """() alpha*MI + beta*TC + gamma*DWK with each estimate clamped at 0.

    Every true term is >= 0; a negative estimate is MWS noise, and minimising it would push the
    model to make the noise more negative rather than to fit the data. clamp(min=0) removes that
    gradient; the raw terms are what gets logged.
    """
    return (mi_weight * terms.mutual_info.clamp(min=0)
            + tc_weight * terms.total_correlation.clamp(min=0)
            + dim_kl_weight * terms.dimwise_kl.clamp(min=0))


# --------------------------------------------------------------------------- VAE health


def mutual_information(mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
    """() I(x; z) under the batch's aggregate posterior (Hoffman & Johnson 2016; He et al. 2019).

        MI = mean_i [ -H(q(z|x_i)) ] - mean_i [ log (1/B) sum_j q(z_i | x_j) ]

    with the negative entropy in closed form (-0.5 * sum_d (log 2 pi + 1 + logvar_id)) and z_i a
    sample from q(z|x_i). q(z) is the mixture of the batch's posteriors, so the estimate is at
    most about log B: compare values only across equal batch sizes. For validation logging; the
    training-time MI with a dataset-size correction is `kl_decomposition(...).mutual_info`.
    """
    batch = z.shape[0]
    logvar_ = _at_least_fp32(logvar)
    neg_entropy = (-0.5 * (_LOG_2PI + 1.0 + logvar_)).sum(dim=1).mean()
    log_qz_x = pairwise_log_density(z, mean, logvar).sum(dim=2)  # (B, B)
    log_qz = torch.logsumexp(log_qz_x, dim=1) - math.log(batch)  # (B,)
    return neg_entropy - log_qz.mean()


def active_units(means: Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data (Burda et al. 2016).

    means (N, Z) = E_q[z | x_n] over a dataset; a dimension is active when Var_n(means[:, d]) >
    threshold (0.01 in Burda et al.). The variance uses the N-1 denominator, as in He et al.'s
    reference code.
    """
    if means.shape[0] < 2:
        raise ValueError("active_units needs the posterior means of at least 2 sentences")
    variance = _at_least_fp32(means).var(dim=0, correction=1)  # (Z,)
    return int((variance > threshold).sum().item())


def _at_least_fp32(x: Tensor) -> Tensor:
    """fp64 stays fp64 (tests), every narrower float goes to fp32."""
    return x if x.dtype == torch.float64 else x.float()
