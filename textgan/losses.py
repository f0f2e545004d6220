"""Loss terms of the VAE-GAN as pure functions of tensors (no modules, no state, no config).

Each function takes what the networks return and gives back named tuples of tensors, so the
engines decide how terms are weighted and what is logged. Sections:

- reconstruction: EOS-aware token cross-entropy (`reconstruction_loss`);
- KL to the prior: closed form per dimension (`gaussian_kl`) and free bits (`free_bits_kl`);
- KL decomposition (beta-TCVAE) and VAE health: `kl_decomposition`, `decomposed_kl_loss`,
  `mutual_information`, `active_units`;
- adversarial stage: D's attribute loss over known labels (`attribute_loss`, optional class
  weights from `class_weights` / `class_weights_from_labels`), the minimum-entropy term
  (`prediction_entropy`), the independence loss -log q_E(z|x_hat) and its variants
  (`independence_loss`), the weights of the VAE loss's expectation over D's reading of
  unlabelled sentences (`code_combinations`, `code_posterior_weights`), and the monitors
  `attribute_accuracy` and `code_usage`. Attribute terms are summed over attributes (Hu et al.
  2017).

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
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from textgan.checks import require

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


# --------------------------------------------------------------------------- adversarial stage
#
# The discriminator D has one head per attribute, so its output is a list of logits
# [(B, K_0), (B, K_1), ...]; labels are (B, A) class indices with -1 where unknown. Every term
# is a mean over sentences for each attribute and a SUM over attributes, as in Hu et al. 2017
# (one cross-entropy per structured code block, added): each attribute then pulls with the
# same weight whether the corpus has one attribute or three, and lambda_c / lambda_u / beta mean
# the same per attribute. (A mean over attributes would silently halve every lambda when a second
# attribute is added.)

# Same value as textgan.corpora.corpus.MISSING_LABEL (a test checks it). Not imported: that module
# imports `datasets`, and this one stays a leaf of pure tensor functions.
_MISSING_LABEL = -1

CLASS_WEIGHT_KINDS = ("none", "inverse", "log")


class AttrLoss(NamedTuple):
    """An attribute loss, summed over attributes, with its per-attribute parts."""

    total: Tensor          # () fp32: sum_a per_attribute[a] -- goes into the loss
    per_attribute: Tensor  # (A,) fp32: (weighted) mean CE over the counted sentences; 0 if none
    counted: Tensor        # (A,) int64: sentences whose label counted, per attribute


class AttrAccuracy(NamedTuple):
    """Argmax accuracy counts per attribute (sum them over batches, then divide)."""

    correct: Tensor  # (A,) int64: counted sentences whose argmax is the label
    counted: Tensor  # (A,) int64: sentences with a known label


def _check_heads(logits: Sequence[Tensor], batch: int | None = None) -> None:
    for index, head in enumerate(logits):
        if head.dim() != 2:
            raise ValueError(f"logits of attribute {index} must be (B, K), "
                             f"got {tuple(head.shape)}")
        if batch is not None and head.shape[0] != batch:
            raise ValueError(f"logits of attribute {index} have {head.shape[0]} rows, the "
                             f"labels {batch}")


def _known_labels(logits: Sequence[Tensor], labels: Tensor,
                  label_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Which labels count, and labels safe to index with: ((B, A) bool, (B, A) int64).

    A label counts where `label_mask` is True, or, without a mask, where it is not -1. The safe
    labels hold 0 where a label does not count, so that gather/cross-entropy never index with -1
    (which would wrap to the last class, or raise); those rows are then weighted 0. A counted
    label outside [0, K_a) -- a -1 the mask calls known, or a class the head lacks -- is a
    bookkeeping bug upstream and raises here, rather than as a CUDA device-side assert.
    """
    if labels.dim() != 2 or labels.shape[1] != len(logits):
        raise ValueError(f"labels must be (B, {len(logits)}) for {len(logits)} discriminator "
                         f"heads, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got {labels.dtype}")
    _check_heads(logits, labels.shape[0])
    labels = labels.long()
    if label_mask is None:
        known = labels != _MISSING_LABEL  # (B, A)
    else:
        if label_mask.shape != labels.shape:
            raise ValueError(f"labels {tuple(labels.shape)} and label_mask "
                             f"{tuple(label_mask.shape)} differ in shape")
        known = label_mask.to(device=labels.device, dtype=torch.bool)  # (B, A)
    out_of_range = labels < 0  # (B, A)
    # the class counts compared as Python numbers: a tensor of them would be a host-to-device
    # copy, which waits for the GPU (see textgan.checks)
    for a, head in enumerate(logits):
        out_of_range[:, a] |= labels[:, a] >= head.shape[1]
    bad = known & out_of_range  # (B, A)

    def message() -> str:
        b, a = bad.nonzero()[0].tolist()
        return (f"label {labels[b, a].item()} of sentence {b}, attribute {a} counts as known "
                f"but is not a class of that head ({logits[a].shape[1]} classes); a missing "
                "label (-1) must have label_mask False")

    require(~bad, message)
    safe = labels.masked_fill(~known, 0)  # (B, A): any valid index; these rows weigh 0
    return known, safe


def attribute_loss(logits: Sequence[Tensor], labels: Tensor, label_mask: Tensor | None = None,
                   class_weights: Sequence[Tensor | None] | None = None) -> AttrLoss:
    """Cross-entropy of the discriminator heads against the known labels, summed over attributes.

    logits: A tensors (B, K_a); labels (B, A) int64, -1 where missing; label_mask (B, A) bool
    (None: known = labels != -1); class_weights: per attribute a (K_a,) tensor or None.

        per_attribute[a] = sum_b m_ba w_a[y_ba] CE_ba / sum_b m_ba w_a[y_ba]     (0 if no m_ba)
        total            = sum_a per_attribute[a]

    with m_ba = 1 where the label counts and w_a = 1 without weights: the mean over the known
    labels, or the weighted mean of F.cross_entropy(weight=w_a, ignore_index=-1). An attribute
    with no known label in the batch gives 0, counted 0 and no gradient (not 0/0 = NaN). Rows
    whose label does not count leave the value untouched (even with inf logits) and get exactly
    zero gradient when their logits are finite.

    Serves L_s (real labelled sentences), L_u (generated sentences against the code they were
    drawn with: all known) and L_attr_c = -log q_D(c | G_tau(z, c)) (G through D on the soft
    sentence). Which network the gradient may reach is the caller's business (detach / which
    optimizer steps).
    """
    known, safe = _known_labels(logits, labels, label_mask)
    if class_weights is not None and len(class_weights) != len(logits):
        raise ValueError(f"class_weights has {len(class_weights)} entries for "
                         f"{len(logits)} attributes")
    if not logits:  # an unlabelled corpus: no heads, nothing to learn
        zero = torch.zeros((), device=labels.device)
        return AttrLoss(total=zero, per_attribute=torch.zeros(0, device=labels.device),
                        counted=torch.zeros(0, dtype=torch.long, device=labels.device))
    parts = []
    for a, head in enumerate(logits):
        head = _at_least_fp32(head)  # (B, K)
        target = safe[:, a].to(head.device)  # (B,)
        mask = known[:, a].to(head.device)  # (B,)
        ce = F.cross_entropy(head, target, reduction="none")  # (B,)
        weight = mask.to(head.dtype)  # (B,)
        if class_weights is not None and class_weights[a] is not None:
            w = class_weights[a].to(device=head.device, dtype=head.dtype)
            if w.shape != (head.shape[1],):
                raise ValueError(f"class weights of attribute {a} have shape {tuple(w.shape)}, "
                                 f"the head has {head.shape[1]} classes")
            weight = weight * w[target]  # (B,)
        # where(), not multiplication, zeroes the ignored rows: the CE of an overflowed row is
        # NaN and 0 * NaN is NaN. Their gradient is then exactly 0 (where's backward sends
        # nothing to the other branch).
        numerator = torch.where(mask, ce * weight, torch.zeros_like(ce)).sum()
        denominator = weight.sum()
        # clamp keeps the untaken branch finite (0/0 would be NaN even unselected, and NaN
        # leaks through where's backward as 0 * NaN).
        parts.append(torch.where(denominator > 0,
                                 numerator / denominator.clamp(min=torch.finfo(head.dtype).tiny),
                                 torch.zeros_like(numerator)))
    per_attribute = torch.stack([p.to(parts[0].device) for p in parts])  # (A,)
    return AttrLoss(total=per_attribute.sum(), per_attribute=per_attribute,
                    counted=known.sum(dim=0))


def prediction_entropy(logits: Sequence[Tensor], rows: Tensor | None = None) -> Tensor:
    """() Entropy of D's predictions, mean over sentences, summed over attributes (nats).

        H = sum_a mean_b [ -sum_k p_bak log p_bak ],   p_ba = softmax(logits_a)_b

    `rows` (B, A) bool, optional: attribute a's mean runs over the sentences where rows[:, a]
    is True only (0 where there are none), e.g. the sentences whose label a is missing.

    Computed as -(softmax * log_softmax) rather than log(softmax): a probability that underflows
    to 0 then contributes 0 * (large finite) = 0, not 0 * -inf = NaN. Hu et al.'s minimum-entropy
    term: D minimises it on generated sentences so that it commits to one class per attribute.
    This is NOT the cross-entropy to the uniform distribution, which has the opposite sign of
    effect (it is smallest for uniform predictions). 0 <= H <= sum_a log K_a.
    """
    _check_heads(logits)
    parts = []
    for head in logits:
        head = _at_least_fp32(head)  # (B, K)
        log_p = F.log_softmax(head, dim=-1)  # (B, K)
        per_row = -(log_p.exp() * log_p).sum(dim=-1)  # (B,)
        if rows is None:
            parts.append(per_row.mean())
        else:  # a masked mean, without a host sync on how many rows count
            counted = rows[:, len(parts)].float()  # (B,)
            parts.append((per_row * counted).sum() / counted.sum().clamp(min=1.0))
    if not parts:
        return torch.zeros(())
    return torch.stack(parts).sum()


INDEPENDENCE_LOSSES = ("nll", "nll_detached_var", "nll_fixed_var", "mse")


def independence_loss(mean: Tensor, logvar: Tensor, z: Tensor, kind: str = "nll") -> Tensor:
    """() How far the encoder's reading of the sentence generated from z is from z.

    mean, logvar (B, Z): the encoder's posterior of the generated (soft) sentence G_tau(z, c);
    z (B, Z): the latent that sentence was generated from, the target. The caller detaches z
    (Hu et al. train G with this term: the target must not move toward the encoder's guess).
    Per sentence, summed over dimensions d, then the mean over sentences:

        nll              0.5 * sum_d [ log 2 pi + logvar_d + (z_d - mean_d)^2 / exp(logvar_d) ]
        nll_detached_var the same with logvar a constant (no gradient through it)
        nll_fixed_var    0.5 * sum_d [ log 2 pi + (z_d - mean_d)^2 ]          (variance 1)
        mse              mean_d (z_d - mean_d)^2                   (a mean over d, not a sum)

    "nll" is Hu et al.'s -log q_E(z | x_hat). Its log-variance term stops an encoder from
    buying a small loss with a huge variance when the encoder learns from it; but when E is a
    frozen critic and G alone learns from it, G can lower it by writing sentences E is *less*
    sure about, and narrow posteriors scale the squared error by 1/sigma^2 (NOTES.md,
    experiments F-G6). The other forms remove one of those effects each.
    """
    if not (mean.shape == logvar.shape == z.shape) or mean.dim() != 2:
        raise ValueError(f"mean {tuple(mean.shape)}, logvar {tuple(logvar.shape)} and z "
                         f"{tuple(z.shape)} must all be (B, Z)")
    if kind not in INDEPENDENCE_LOSSES:
        raise ValueError(f"unknown independence loss '{kind}' (use one of "
                         f"{INDEPENDENCE_LOSSES})")
    mean, logvar, z = _at_least_fp32(mean), _at_least_fp32(logvar), _at_least_fp32(z)
    if kind == "mse":
        return (z - mean).pow(2).mean(dim=1).mean()
    if kind == "nll_fixed_var":
        logvar = torch.zeros_like(logvar)
    elif kind == "nll_detached_var":
        logvar = logvar.detach()
    return -gaussian_log_density(z, mean, logvar).sum(dim=1).mean()


def code_combinations(num_classes: Sequence[int], *, device: torch.device | None = None
                      ) -> Tensor:
    """(M, A) int64: every joint class assignment of the A attributes, M = prod_a K_a, in
    lexicographic order (the last attribute varies fastest)."""
    ranges = [torch.arange(k, device=device) for k in num_classes]
    if not ranges:
        return torch.zeros(1, 0, dtype=torch.long, device=device)
    return torch.cartesian_prod(*ranges).reshape(-1, len(ranges))


def code_posterior_weights(probs: Sequence[Tensor], labels: Tensor, label_mask: Tensor,
                           combinations: Tensor) -> Tensor:
    """(B, M) fp32: the weight of each joint class assignment for each sentence.

    probs: per attribute (B, K_a) q_D(c_a | x); labels, label_mask (B, A); combinations (M, A)
    from `code_combinations`. A known label is certain (weight 1 on its class, 0 elsewhere), a
    missing one is weighted by D, attributes independently:

        w_bm = prod_a ( label_mask_ba ? [c_ma == y_ba] : q_D(c_ma | x_b) )

    so each row sums to 1, and a fully labelled row is one-hot on its own labels. Used for Hu
    et al.'s VAE loss of unlabelled sentences, E_{q_D(c|x)}[-log p_G(x | z, c)].
    """
    weights = torch.ones(labels.shape[0], combinations.shape[0], device=labels.device)
    for a, head in enumerate(probs):
        classes = combinations[:, a]  # (M,)
        from_d = _at_least_fp32(head)[:, classes]  # (B, M)
        certain = (labels[:, a:a + 1] == classes.unsqueeze(0)).float()  # (B, M)
        weights = weights * torch.where(label_mask[:, a:a + 1], certain, from_d)
    return weights


def class_weights(counts: Sequence[int], kind: str) -> Tensor | None:
    """(K,) fp32 per-class weights for D's supervised loss from the class counts of a split.

    - "none": None (unweighted).
    - "inverse": w_k = N / (K * n_k), N = sum_k n_k (sklearn's "balanced"): each class then
      carries the same total weight, and the average weight per *example* is 1.
    - "log": w_k = 1 + log(max_j n_j / n_k): the most frequent class keeps weight 1, and a class
      r times rarer gets 1 + log r instead of r -- a gentler correction when the imbalance is so
      large that inverse weights would let a handful of rare examples dominate the gradient.

    `attribute_loss` divides by the summed weights, so only their ratios change the loss; the
    normalisations above only make the numbers readable. Counts [90, 10] give inverse
    [0.5556, 5.0] and log [1.0, 1 + log 9 = 3.1972]. A class with no example has no finite
    weight: ValueError (the caller reports it as a configuration error).
    """
    if kind not in CLASS_WEIGHT_KINDS:
        raise ValueError(f"class weights kind must be one of {CLASS_WEIGHT_KINDS}, got {kind!r}")
    if kind == "none":
        return None
    n = [int(c) for c in counts]
    if not n:
        raise ValueError("class weights need the counts of at least one class")
    for k, c in enumerate(n):
        if c < 0:
            raise ValueError(f"class {k} has a negative count ({c})")
        if c == 0:
            raise ValueError(f"class {k} has no labelled example, so '{kind}' class weights "
                             "are undefined for it; label some, or use class weights 'none'")
    # float64 for the arithmetic (counts can be large), fp32 out like every other loss input.
    counts_t = torch.tensor(n, dtype=torch.float64)  # (K,)
    if kind == "inverse":
        weights = counts_t.sum() / (len(n) * counts_t)
    else:
        weights = 1.0 + torch.log(counts_t.max() / counts_t)
    return weights.float()


def label_counts(labels: Tensor, num_classes: Sequence[int]) -> list[list[int]]:
    """Per attribute, the count of each class in labels (N, A), ignoring missing labels (-1)."""
    if labels.dim() != 2 or labels.shape[1] != len(num_classes):
        raise ValueError(f"labels must be (N, {len(num_classes)}), got {tuple(labels.shape)}")
    counts = []
    for a, k in enumerate(num_classes):
        column = labels[:, a].long()  # (N,)
        column = column[column != _MISSING_LABEL]
        if column.numel() and (int(column.min()) < 0 or int(column.max()) >= int(k)):
            raise ValueError(f"attribute {a} has a label outside [0, {int(k)}) other than -1")
        counts.append(torch.bincount(column.cpu(), minlength=int(k)).tolist())
    return counts


def class_weights_from_labels(labels: Tensor | Sequence[Sequence[int]],
                              num_classes: Sequence[int], kind: str) -> list[Tensor | None]:
    """`class_weights` for every attribute, from a labelled split.

    labels: a (N, A) tensor of class indices with -1 where missing (counted by `label_counts`),
    or already the per-attribute count lists [[n_00, n_01, ...], ...]. A ValueError names the
    attribute whose class has no example.
    """
    if isinstance(labels, Tensor):
        counts = label_counts(labels, num_classes)
    else:
        counts = [list(c) for c in labels]
        if len(counts) != len(num_classes):
            raise ValueError(f"{len(counts)} count lists for {len(num_classes)} attributes")
        for a, (c, k) in enumerate(zip(counts, num_classes)):
            if len(c) != int(k):
                raise ValueError(f"attribute {a} has {int(k)} classes but {len(c)} counts")
    weights = []
    for a, c in enumerate(counts):
        try:
            weights.append(class_weights(c, kind))
        except ValueError as err:
            raise ValueError(f"attribute {a}: {err}") from err
    return weights


def attribute_accuracy(logits: Sequence[Tensor], labels: Tensor,
                       label_mask: Tensor | None = None) -> AttrAccuracy:
    """Argmax of each head against the known labels: (correct (A,), counted (A,)) int64.

    Counts, not a ratio, so that batches sum exactly; the metric divides at the end.
    """
    known, safe = _known_labels(logits, labels, label_mask)
    correct = []
    for a, head in enumerate(logits):
        hit = head.argmax(dim=-1).to(labels.device) == safe[:, a]  # (B,)
        correct.append((hit & known[:, a]).sum())
    correct_t = (torch.stack(correct) if correct
                 else torch.zeros(0, dtype=torch.long, device=labels.device))  # (A,)
    return AttrAccuracy(correct=correct_t, counted=known.sum(dim=0))


def code_usage(logits: Sequence[Tensor], *, hard: bool = False) -> list[Tensor]:
    """Per attribute, the distribution of D's predicted class over a batch: [(K_a,) fp32].

    hard=False: the mean predicted distribution mean_b softmax(logits_a)_b; hard=True: the share
    of sentences whose argmax is each class. Each sums to 1. A monitor for the codes D reads in
    generated samples (one class taking everything is the symptom of G ignoring c, or of D
    collapsing), so the result is detached.
    """
    _check_heads(logits)
    usage = []
    for a, head in enumerate(logits):
        if head.shape[0] == 0:
            raise ValueError(f"code usage of attribute {a} over an empty batch is undefined")
        head = _at_least_fp32(head.detach())  # (B, K)
        if hard:
            histogram = torch.bincount(head.argmax(dim=-1), minlength=head.shape[1])  # (K,)
            usage.append(histogram.to(head.dtype) / head.shape[0])
        else:
            usage.append(F.softmax(head, dim=-1).mean(dim=0))
    return usage


def _at_least_fp32(x: Tensor) -> Tensor:
    """fp64 stays fp64 (tests), every narrower float goes to fp32."""
    return x if x.dtype == torch.float64 else x.float()
