"""ignite metrics of textgan, one `Metric` subclass per quantity, each safe to run distributed.

Sections:

- VAE validation (the pretraining stage's per-epoch validation, `textgan.vae_validation`):
  reconstruction NLL per token (and perplexity through `perplexity_of`), teacher-forced token
  accuracy, EOS rate of greedy reconstructions, KL to the prior (total and per dimension),
  the ELBO, active units, mutual information;
- text overlap: corpus BLEU with sacrebleu (`CorpusBLEU`);
- how much of z survives G then E (`LatentRecovery`, the adversarial stage's validation and
  the evaluation report);
- (the evaluation issue adds its metrics here: importance-weighted NLL, self-BLEU, distinct-n,
  style accuracy.)

Every metric reads named entries of the engine's output (a dict): `required_output_keys` lists
them in the order `update` takes them, so a test can call `metric.update((a, b, ...))` with the
same values the evaluator would pass. Conventions: `B` sentences, `T` time steps, `V`
vocabulary, `Z` latent dimensions.

Distributed safety: tensor state lives on the metric's `device` and is summed across processes
by ignite's `sync_all_reduce` before `compute()`. Sums are kept in float64 (float32
on MPS, which has no float64): a validation set of 10^5 sentences x 15 tokens accumulates
~10^6 NLL terms, and float32 would lose the last digits that tell two epochs apart. BLEU
needs the strings themselves; it gathers them with `idist.all_gather` (every process then
scores the whole corpus, which is cheap next to decoding it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric, MetricsLambda
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from sacrebleu.metrics import BLEU
from torch import Tensor

from textgan.losses import gaussian_kl, length_mask, mutual_information, reconstruction_loss

__all__ = [
    "ActiveUnits", "CorpusBLEU", "ELBO", "EOSRate", "KLPerDim", "MutualInformation",
    "ReconstructionNLL", "TokenAccuracy", "perplexity_of", "total_kl_of",
]


def _identity(output: Any) -> Any:
    return output


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for running sums, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _safe_exp(value: float) -> float:
    """exp that returns inf instead of raising OverflowError (a diverged model's perplexity)."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


class _SumMetric(Metric):
    """Base for the metrics below: no unrolling of list outputs, state made in `reset`.

    ignite "unrolls" an output whose items are all lists of tensors or numbers into one update
    per element; our outputs are whole-batch tensors and lists of strings, so that behaviour is
    switched off (`skip_unrolling=True`) to keep `update` seeing exactly one batch.
    """

    def __init__(self, output_transform: Callable[[Any], Any] = _identity,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    def _zeros(self, *shape: int, integer: bool = False) -> Tensor:
        dtype = torch.int64 if integer else _sum_dtype(self._device)
        return torch.zeros(shape, dtype=dtype, device=self._device)

    def _check_seen(self, count: Tensor, what: str) -> None:
        if int(count) == 0:
            raise NotComputableError(f"{type(self).__name__} must see at least one {what} "
                                     "before it can be computed (empty validation set?)")


# =========================================================================== VAE validation


class ReconstructionNLL(_SumMetric):
    """Reconstruction NLL per token: sum of token NLL over real tokens (EOS included) / count.

    Output keys: logits (B, T, V) teacher-forced, targets (B, T), lengths (B,) incl. EOS. The
    mask follows `losses.reconstruction_loss` (positions t < lengths[b]). This is -log p(x | z)
    at whatever z produced the logits (the posterior mean in validation), NOT the marginal
    -log p(x): that needs importance weighting and belongs to the evaluation metrics. Its
    exponential (`perplexity_of`) is therefore the reconstruction perplexity.
    """

    required_output_keys = ("logits", "targets", "lengths")

    @reinit__is_reduced
    def reset(self) -> None:
        self._nll_sum = self._zeros()
        self._tokens = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        logits, targets, lengths = (t.detach() for t in output)
        rec = reconstruction_loss(logits, targets, lengths)
        self._nll_sum += rec.nll_sum.sum().to(self._device, self._nll_sum.dtype)
        self._tokens += rec.tokens.sum().to(self._device)

    @sync_all_reduce("_nll_sum", "_tokens")
    def compute(self) -> float:
        self._check_seen(self._tokens, "token")
        return float(self._nll_sum / self._tokens)


def perplexity_of(nll: ReconstructionNLL) -> MetricsLambda:
    """exp(NLL per token) as its own metric (inf rather than an error if the NLL is huge)."""
    return MetricsLambda(_safe_exp, nll)


class TokenAccuracy(_SumMetric):
    """Teacher-forced argmax accuracy over the real tokens EXCEPT the final EOS.

    Output keys: logits (B, T, V), targets (B, T), lengths (B,) incl. EOS. Counted positions are
    t < lengths[b] - 1: by the data convention (ids followed by one EOS) the last real position
    is the EOS, which even a model that has learnt nothing about content predicts well once it
    has seen a length pattern; leaving it out makes the number about words. Position-based, so
    no special id is needed. The argmax is over the raw logits (PAD/BOS are never targets, so
    predicting them simply counts as wrong). A set of sentences with no word at all (only EOS)
    gives NaN.
    """

    required_output_keys = ("logits", "targets", "lengths")

    @reinit__is_reduced
    def reset(self) -> None:
        self._correct = self._zeros(integer=True)
        self._tokens = self._zeros(integer=True)
        self._sentences = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        logits, targets, lengths = (t.detach() for t in output)
        lengths = lengths.to(targets.device)
        words = length_mask(lengths - 1, targets.shape[1])  # (B, T) real, non-EOS positions
        hits = (logits.argmax(dim=-1) == targets) & words  # (B, T)
        self._correct += hits.sum().to(self._device)
        self._tokens += words.sum().to(self._device)
        self._sentences += targets.shape[0]

    @sync_all_reduce("_correct", "_tokens", "_sentences")
    def compute(self) -> float:
        self._check_seen(self._sentences, "sentence")
        if int(self._tokens) == 0:
            return math.nan
        return float(self._correct.double() / self._tokens)


class EOSRate(_SumMetric):
    """Share of free-running (greedy) reconstructions that produced an EOS within max_len.

    Output key: ended (B,) bool, as in `models.Decoded.ended`. A low rate means the generator
    runs on past the sentence (and every length-dependent metric of its samples is suspect).
    """

    required_output_keys = ("ended",)

    @reinit__is_reduced
    def reset(self) -> None:
        self._ended = self._zeros(integer=True)
        self._sentences = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        (ended,) = output
        ended = ended.detach()
        self._ended += ended.bool().sum().to(self._device)
        self._sentences += ended.numel()

    @sync_all_reduce("_ended", "_sentences")
    def compute(self) -> float:
        self._check_seen(self._sentences, "sentence")
        return float(self._ended.double() / self._sentences)


class _LatentMetric(_SumMetric):
    """A metric over posteriors of a known latent size (state shapes fixed at construction).

    The size is an argument rather than read from the first batch so that every process holds
    state of the same shape before any data arrives; all_reduce of mismatched shapes hangs.
    """

    def __init__(self, z_dim: int, output_transform: Callable[[Any], Any] = _identity,
                 device: str | torch.device = "cpu") -> None:
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        self.z_dim = z_dim  # before super().__init__, which calls reset()
        super().__init__(output_transform=output_transform, device=device)

    def _check_z(self, x: Tensor, name: str) -> None:
        if x.dim() != 2 or x.shape[1] != self.z_dim:
            raise ValueError(f"{name} must be (B, {self.z_dim}), got {tuple(x.shape)}")


class KLPerDim(_LatentMetric):
    """Mean over sentences of KL(q(z|x) || N(0, I)) per latent dimension: a (Z,) float32 tensor.

    Output keys: mean (B, Z), logvar (B, Z) of q(z|x); closed form (`losses.gaussian_kl`), no
    sampling. Its sum (`total_kl_of`) is the mean per-sentence KL, the ELBO's KL term. The
    vector is returned on the CPU: a dimension whose KL stays near 0 has collapsed to the prior
    (log its min/mean/max, or every entry: ignite's TensorBoard handler writes a 1-D tensor as
    one scalar per dimension).
    """

    required_output_keys = ("mean", "logvar")

    @reinit__is_reduced
    def reset(self) -> None:
        self._kl_sum = self._zeros(self.z_dim)
        self._sentences = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        mean, logvar = (t.detach() for t in output)
        self._check_z(mean, "mean")
        kl = gaussian_kl(mean, logvar)  # (B, Z)
        self._kl_sum += kl.sum(dim=0).to(self._device, self._kl_sum.dtype)
        self._sentences += mean.shape[0]

    @sync_all_reduce("_kl_sum", "_sentences")
    def compute(self) -> Tensor:
        self._check_seen(self._sentences, "sentence")
        return (self._kl_sum / self._sentences).float().cpu()  # (Z,)


def _sum_to_float(per_dim: Tensor) -> float:
    return float(per_dim.sum())


def total_kl_of(per_dim: KLPerDim) -> MetricsLambda:
    """Mean per-sentence KL (summed over dimensions) as its own metric."""
    return MetricsLambda(_sum_to_float, per_dim)


class ELBO(_LatentMetric):
    """Evidence lower bound per sentence (nats, higher is better), averaged over sentences:

        ELBO = -mean_b [ sum_t NLL(x_b | z_b) + KL(q(z|x_b) || p(z)) ]

    Output keys: sampled_nll (B,) = the summed token NLL (EOS included) of each sentence
    teacher-forced from ONE SAMPLE z_b ~ q(z|x_b) -- a single-sample Monte-Carlo estimate of
    E_q[log p(x|z)], which is what makes this an (unbiased estimate of the) ELBO; the NLL at the
    posterior mean would overstate it. mean, logvar (B, Z) give the KL in closed form. The
    reconstruction term is per sentence, not per token, matching the training loss (losses.py).
    """

    required_output_keys = ("sampled_nll", "mean", "logvar")

    @reinit__is_reduced
    def reset(self) -> None:
        self._neg_elbo_sum = self._zeros()
        self._sentences = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        sampled_nll, mean, logvar = (t.detach() for t in output)
        self._check_z(mean, "mean")
        if sampled_nll.shape != mean.shape[:1]:
            raise ValueError(f"sampled_nll must be ({mean.shape[0]},), got "
                             f"{tuple(sampled_nll.shape)}")
        kl = gaussian_kl(mean, logvar).sum(dim=1)  # (B,)
        neg_elbo = sampled_nll.to(kl.dtype) + kl  # (B,)
        self._neg_elbo_sum += neg_elbo.sum().to(self._device, self._neg_elbo_sum.dtype)
        self._sentences += mean.shape[0]

    @sync_all_reduce("_neg_elbo_sum", "_sentences")
    def compute(self) -> float:
        self._check_seen(self._sentences, "sentence")
        return -float(self._neg_elbo_sum / self._sentences)


class ActiveUnits(_LatentMetric):
    """Latent dimensions whose posterior mean varies across the data (Burda et al. 2016).

    Output key: mean (B, Z) = E_q[z | x]. A dimension is active when Var_x(E_q[z_j|x]) >
    threshold (0.01 in Burda et al.). One pass: the sum and the sum of squares of the means are
    accumulated per dimension (float64, so the difference of the two does not cancel badly),
    and the variance uses the N-1 denominator, matching `losses.active_units`.
    """

    required_output_keys = ("mean",)

    def __init__(self, z_dim: int, threshold: float = 0.01,
                 output_transform: Callable[[Any], Any] = _identity,
                 device: str | torch.device = "cpu") -> None:
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.threshold = threshold
        super().__init__(z_dim, output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = self._zeros(self.z_dim)
        self._sum_sq = self._zeros(self.z_dim)
        self._count = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        (mean,) = output
        self._check_z(mean, "mean")
        mean = mean.detach().to(self._device, self._sum.dtype)  # (B, Z)
        self._sum += mean.sum(dim=0)
        self._sum_sq += mean.pow(2).sum(dim=0)
        self._count += mean.shape[0]

    def variances(self) -> Tensor:
        """(Z,) unbiased variance of the posterior means seen so far (not synchronised)."""
        n = int(self._count)
        if n < 2:
            raise NotComputableError("ActiveUnits needs the posterior means of at least 2 "
                                     f"sentences, got {n}")
        centred = self._sum_sq - self._sum.pow(2) / n
        return centred.clamp(min=0.0) / (n - 1)

    @sync_all_reduce("_sum", "_sum_sq", "_count")
    def compute(self) -> int:
        return int((self.variances() > self.threshold).sum())


class MutualInformation(_LatentMetric):
    """I(x; z) estimate of He et al. 2019 (`losses.mutual_information`), averaged over batches.

    Output keys: mean, logvar (B, Z) of q(z|x) and z (B, Z) one sample per sentence. The
    estimator uses the batch's posteriors as the aggregate posterior q(z), so it is at most about
    log B and depends on the batch size: compare values only at equal validation batch sizes.
    Batches are weighted by their size, as in He et al.'s reference code (`calc_mi`).
    """

    required_output_keys = ("mean", "logvar", "z")

    @reinit__is_reduced
    def reset(self) -> None:
        self._weighted_sum = self._zeros()
        self._sentences = self._zeros(integer=True)

    @reinit__is_reduced
    def update(self, output: Sequence[Tensor]) -> None:
        mean, logvar, z = (t.detach() for t in output)
        self._check_z(mean, "mean")
        batch = mean.shape[0]
        mi = mutual_information(mean, logvar, z)  # ()
        self._weighted_sum += (mi * batch).to(self._device, self._weighted_sum.dtype)
        self._sentences += batch

    @sync_all_reduce("_weighted_sum", "_sentences")
    def compute(self) -> float:
        self._check_seen(self._sentences, "sentence")
        return float(self._weighted_sum / self._sentences)


# =========================================================================== text overlap


class CorpusBLEU(Metric):
    """sacrebleu corpus BLEU of hypotheses against one reference each (0-100).

    Output keys: hypotheses, references: lists of detokenized strings, parallel. Uses the BLEU
    object API with one reference stream. `signature` (a str, None before the first compute)
    must go with every reported number: a BLEU score means nothing without its settings.

    Settings and why:
    - tokenize="13a" (sacrebleu's default) on the text `Tokenizer.decode` returns; use "none"
      if the corpus itself is already space-tokenized and should be scored as it stands.
    - effective_order=True: standard corpus BLEU scores 0 whenever the whole corpus has no
      4-gram (e.g. a handful of 3-word sentences) even if every hypothesis is exact; with it, the
      orders absent from the corpus are left out. Whenever some hypothesis has 4+ tokens the
      score is identical to standard corpus BLEU. The signature shows `eff:yes`.
    - force=True: sacrebleu's "forgot to detokenize" check counts hypotheses ending in " ." and
      is meant for MT output scored against detokenized references. Here hypotheses and
      references come out of the same `Tokenizer.decode`, so they are always in the same form,
      and a corpus written with " ." (Yelp, Amazon as commonly distributed) would only trip the
      warning on every validation run. `force` does not change the score or the signature.

    Multi-process: each process keeps its own strings; `compute` gathers them with
    `idist.all_gather` (same order on every process: rank 0's first) and scores the union. A
    DistributedSampler that pads the last batch with repeats makes those repeats count twice.
    """

    required_output_keys = ("hypotheses", "references")

    def __init__(self, tokenize: str = "13a", lowercase: bool = False,
                 output_transform: Callable[[Any], Any] = _identity,
                 device: str | torch.device = "cpu") -> None:
        # Built once: a wrong tokenizer name fails here, at construction, not after an epoch.
        if tokenize not in BLEU.TOKENIZERS:
            raise ValueError(f"unknown sacrebleu tokenizer '{tokenize}' (choose from "
                             f"{', '.join(BLEU.TOKENIZERS)})")
        self._bleu = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True,
                          force=True)
        self.signature: str | None = None
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    @reinit__is_reduced
    def reset(self) -> None:
        self._hypotheses: list[str] = []
        self._references: list[str] = []

    @reinit__is_reduced
    def update(self, output: Sequence[Sequence[str]]) -> None:
        hypotheses, references = output
        if isinstance(hypotheses, str) or isinstance(references, str):
            raise TypeError("hypotheses and references must be lists of strings, not a string")
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        self._hypotheses.extend(str(h) for h in hypotheses)
        self._references.extend(str(r) for r in references)

    def _gathered(self) -> tuple[list[str], list[str]]:
        if idist.get_world_size() == 1:
            return self._hypotheses, self._references
        hyps = idist.all_gather(self._hypotheses)  # one list per process
        refs = idist.all_gather(self._references)
        return [h for part in hyps for h in part], [r for part in refs for r in part]

    def compute(self) -> float:
        hypotheses, references = self._gathered()
        if not hypotheses:
            raise NotComputableError("CorpusBLEU must see at least one sentence before it can "
                                     "be computed (empty validation set?)")
        score = self._bleu.corpus_score(hypotheses, [references])
        self.signature = str(self._bleu.get_signature())
        return float(score.score)


class LatentRecovery(Metric):
    """Mean over dimensions of the Pearson correlation between z and E's reading of G(z, c):
    1 when every dimension of z can be read off the sentence generated from it, ~0 when the
    sentence does not depend on z. Output keys: z (B, Z), z_read (B, Z) (E's posterior mean)."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__(output_transform=lambda out: (out["z"], out["z_read"]), device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        # sums over sentences of z, m, z^2, m^2, z*m per dimension, and the count (fp64)
        self._sums = torch.zeros(0, dtype=torch.float64, device=self._device)
        self._count = torch.zeros((), dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        z, m = (x.detach().to(self._device, torch.float64) for x in output)  # (B, Z) each
        sums = torch.stack([z.sum(0), m.sum(0), (z * z).sum(0), (m * m).sum(0),
                            (z * m).sum(0)])  # (5, Z)
        self._sums = sums if self._sums.numel() == 0 else self._sums + sums
        self._count += z.shape[0]

    @sync_all_reduce("_sums", "_count")
    def compute(self) -> float:
        n = self._count.clamp(min=1.0)
        z, m, zz, mm, zm = self._sums / n
        covariance = zm - z * m
        spread = ((zz - z * z).clamp(min=0) * (mm - m * m).clamp(min=0)).sqrt()
        # a dimension E reads as a constant carries nothing of z: correlation 0
        correlation = torch.where(spread > 0, covariance / spread.clamp(min=1e-12),
                                  torch.zeros_like(spread))
        return float(correlation.mean())
