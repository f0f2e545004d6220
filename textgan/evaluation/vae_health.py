"""Health of the VAE: importance-weighted NLL of real sentences (Burda et al. 2016), and how much
of z its sentences carry (`latent_recovery`).

    iw = importance_weighted_nll(encoder, generator, test_loader, num_classes=[2, 2], samples=16)
    iw.nll_per_sentence, iw.nll_per_token, iw.ppl

    log p(x | c) >= log (1/K) sum_k p(x | z_k, c) p(z_k) / q(z_k | x),   z_k ~ q(z | x)

The bound tightens as K grows (K = 1 is the ELBO); it is the VAE's honest likelihood, where the
per-token NLL of validation (decoded from the posterior mean) is only a reconstruction score.
c is the sentence's label where known; where a label is missing, the likelihood is marginalised
exactly over that attribute's classes under the uniform prior, p(x) = sum_c p(c) p(x | c),
rather than scored under a guessed class.
All rows of a batch and all K samples run as one teacher-forced pass (B * K rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from textgan.data import Batch
from textgan.losses import code_combinations, gaussian_log_density, reconstruction_loss
from textgan.metrics import LatentRecovery
from textgan.models import Encoder, Generator, one_hot_code, sample_code
from textgan.models.modes import eval_mode


class IWNLL(NamedTuple):
    samples: int              # K
    sentences: int
    nll_per_sentence: float   # nats, mean over sentences of -log p(x) (EOS included)
    nll_per_token: float      # nats per token (EOS included): summed NLL / summed tokens
    ppl: float                # exp(nll_per_token)


def _label_choices(labels: Tensor, mask: Tensor, num_classes: Sequence[int]
                   ) -> tuple[Tensor, Tensor]:
    """Every completion of the missing labels: (M, B, A) class rows and (M, B) log p(c).

    M = prod_a K_a combinations. Known labels are kept; a missing label takes each class with
    prior probability 1/K_a; a combination that contradicts a known label gets log p = -inf.
    """
    log_missing = torch.zeros(labels.shape[0], device=labels.device)  # (B,)
    for a, k in enumerate(num_classes):
        log_missing = log_missing - (~mask[:, a]).float() * math.log(k)
    rows, log_weights = [], []
    for combo in code_combinations(num_classes, device=labels.device):  # (A,) each
        choice = combo.expand_as(labels)  # (B, A)
        consistent = (~mask | (labels == choice)).all(dim=1)  # (B,)
        rows.append(torch.where(mask, labels, choice))
        log_weights.append(log_missing.masked_fill(~consistent, -math.inf))
    return torch.stack(rows), torch.stack(log_weights)


@torch.no_grad()
def importance_weighted_nll(encoder: Encoder, generator: Generator, batches: Iterable[Batch], *,
                            num_classes: Sequence[int], samples: int = 16,
                            device: torch.device | str = "cpu", seed: int = 0) -> IWNLL:
    """-log p(x) estimated with K = `samples` importance samples per sentence (see module)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    device = torch.device(device)
    noise = torch.Generator(device=device).manual_seed(seed)
    total_nll, total_tokens, sentences = 0.0, 0, 0
    with eval_mode(encoder), eval_mode(generator):
        for batch in batches:
            batch = batch.to(device)
            nll = _batch_nll(encoder, generator, batch, num_classes, samples, noise)  # (B,)
            total_nll += float(nll.sum())
            total_tokens += batch.num_tokens
            sentences += nll.shape[0]
    if sentences == 0:
        raise ValueError("no sentences to score")
    per_token = total_nll / total_tokens
    return IWNLL(samples=samples, sentences=sentences, nll_per_sentence=total_nll / sentences,
                 nll_per_token=per_token, ppl=math.exp(min(per_token, 700.0)))


def _batch_nll(encoder: Encoder, generator: Generator, batch: Batch, num_classes: Sequence[int],
               samples: int, noise: torch.Generator) -> Tensor:
    """(B,) -log p(x) of one batch: logsumexp over K samples and the label completions."""
    posterior = encoder(batch.tokens, batch.lengths_on_host())
    b, z_dim = posterior.mean.shape
    eps = torch.randn((samples, b, z_dim), generator=noise, device=posterior.mean.device)
    z = posterior.mean + eps * torch.exp(0.5 * posterior.logvar)  # (K, B, Z)
    log_q = gaussian_log_density(z, posterior.mean, posterior.logvar).sum(-1)  # (K, B)
    log_prior = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
    flat_z = z.reshape(samples * b, z_dim)
    tokens = batch.tokens.repeat(samples, 1)  # (K*B, T), row k*B + i is sentence i
    lengths = batch.lengths.repeat(samples)
    inputs = generator.teacher_inputs(tokens)
    if num_classes:
        labels, log_pc = _label_choices(batch.labels, batch.label_mask, num_classes)
    else:
        labels = torch.zeros((1, b, 0), dtype=torch.long, device=z.device)
        log_pc = torch.zeros((1, b), device=z.device)
    terms = []
    for choice, log_weight in zip(labels, log_pc):  # M label completions (1 when all known)
        if bool(torch.isinf(log_weight).all()):
            continue
        code = one_hot_code(choice.repeat(samples, 1), num_classes)  # (K*B, C)
        logits = generator(inputs, flat_z, code)
        log_px = -reconstruction_loss(logits, tokens, lengths).nll_sum.view(samples, b)  # (K, B)
        terms.append(log_px + log_prior - log_q + log_weight)  # (K, B)
    stacked = torch.cat(terms, dim=0)  # (M'*K, B)
    return -(torch.logsumexp(stacked.float(), dim=0) - math.log(samples))


@torch.no_grad()
def latent_recovery(encoder: Encoder, generator: Generator, *, num_classes: Sequence[int],
                    n: int, max_len: int, device: torch.device | str = "cpu", seed: int = 0,
                    batch_size: int = 500) -> float:
    """How much of z survives G then E (`LatentRecovery`): n draws z ~ N(0, I), c ~ the uniform
    prior (a generator seeded here; the global RNG is untouched), greedy sentences G(z, c), read
    back by E (posterior mean); the mean over dimensions of corr(z_d, E(G(z, c))_d)."""
    noise = torch.Generator(device=device).manual_seed(seed)
    metric = LatentRecovery()
    with eval_mode(encoder, generator):
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            z = torch.randn(size, generator.z_dim, generator=noise, device=device)
            c = one_hot_code(sample_code(size, num_classes, generator=noise, device=device),
                             num_classes)
            sentence = generator.decode(z, c, max_len=max_len, strategy="greedy")
            metric.update((z, encoder(sentence.tokens, sentence.lengths.cpu()).mean))
    return metric.compute()
