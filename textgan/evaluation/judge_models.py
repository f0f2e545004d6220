"""The judges themselves: a bag-of-n-grams style classifier (`NgramClassifier`), a GRU language
model (`GRULanguageModel`), and `Judges`, the pair as the evaluation scores text with them.

Why these models and how they are trained and stored: `evaluation.judges`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from textgan.evaluation.judge_settings import JudgeSettings
from textgan.losses import reconstruction_loss
from textgan.tokenizer import Tokenizer


FORMAT_VERSION = 1  # of the judge files and judges.json

# Multipliers of the bigram hash: odd, below 2**31, so (id * P) stays far inside int64 for any
# vocabulary below 2**32 pieces and no overflow can make the hash platform-dependent.
_HASH_A = 1_000_003
_HASH_B = 998_244_353


class NgramClassifier(nn.Module):
    """Mean of unigram and hashed-bigram embeddings -> one linear head per attribute.

    The bag of a sentence w1..wn is its unigrams w1..wn (EOS left out: every sentence has one) and
    its bigrams (BOS,w1), (w1,w2), ..., (wn,EOS), so an empty sentence still has a bag.
    """

    def __init__(self, *, vocab_size: int, num_classes: Sequence[int], settings: JudgeSettings,
                 bos_id: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.buckets = settings.bigram_buckets
        self.bos_id = bos_id
        # "sum" with per-sample weights 1/bag size is the mean over each bag, on a padded (B, 2T)
        # input: no boolean indexing, so no data-dependent shapes or device syncs. Sparse
        # gradients: a batch touches a few hundred of the table's rows, and a dense Adam step
        # over all of them cost 37 ms against 2 ms for SparseAdam (64 sentences, 2^16 buckets).
        self.bag = nn.EmbeddingBag(vocab_size + self.buckets, settings.classifier_dim, mode="sum",
                                   sparse=True)
        self.heads = nn.ModuleList(nn.Linear(settings.classifier_dim, n) for n in num_classes)

    def features(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Bag indices (B, 2T) and their weights (B, 2T): 1/bag size, 0 on padding."""
        batch, steps = tokens.shape
        positions = torch.arange(steps, device=tokens.device).unsqueeze(0)  # (1, T)
        lengths = lengths.to(tokens.device).unsqueeze(1)  # (B, 1), EOS included
        unigram_mask = positions < lengths - 1  # (B, T): the pieces, not EOS
        bigram_mask = positions < lengths  # (B, T): (prev, token) pairs up to (wn, EOS)
        previous = torch.cat([tokens.new_full((batch, 1), self.bos_id), tokens[:, :-1]], dim=1)
        hashed = torch.bitwise_xor(previous * _HASH_A, tokens * _HASH_B) % self.buckets
        indices = torch.cat([tokens, self.vocab_size + hashed], dim=1)  # (B, 2T)
        mask = torch.cat([unigram_mask, bigram_mask], dim=1).float()  # (B, 2T)
        weights = mask / mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 2T)
        return indices, weights

    def forward(self, tokens: Tensor, lengths: Tensor) -> list[Tensor]:
        """tokens (B, T) ids, EOS, padding; lengths (B,) -> logits (B, C_a) per attribute."""
        indices, weights = self.features(tokens, lengths)
        pooled = self.bag(indices, per_sample_weights=weights)  # (B, D)
        return [head(pooled) for head in self.heads]


class GRULanguageModel(nn.Module):
    """A left-to-right GRU language model: reads BOS w1 .. wn, predicts w1 .. wn EOS."""

    def __init__(self, *, vocab_size: int, settings: JudgeSettings, pad_id: int,
                 bos_id: int) -> None:
        super().__init__()
        self.bos_id = bos_id
        self.embedding = nn.Embedding(vocab_size, settings.lm_embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(settings.lm_dropout)
        self.gru = nn.GRU(settings.lm_embedding_dim, settings.lm_hidden_dim, batch_first=True)
        self.out = nn.Linear(settings.lm_hidden_dim, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) ids then EOS then padding -> next-token logits (B, T, V).

        Runs on the padded batch without packing: the GRU is causal, so the outputs at the real
        positions never see the padding to their right; the loss masks the padded positions.
        """
        batch = tokens.shape[0]
        inputs = torch.cat([tokens.new_full((batch, 1), self.bos_id), tokens[:, :-1]], dim=1)
        states, _ = self.gru(self.dropout(self.embedding(inputs)))  # (B, T, H)
        return self.out(self.dropout(states))  # (B, T, V)


class LMScores(NamedTuple):
    """Per-sentence scores of the judge LM, in the order of the sentences given."""

    nll: np.ndarray     # (N,) float64: summed negative log-likelihood in nats, EOS included
    tokens: np.ndarray  # (N,) int64: tokens scored per sentence (pieces + EOS)

    @property
    def perplexity(self) -> float:
        """Corpus-level per-token perplexity: exp(total NLL / total tokens)."""
        total = int(self.tokens.sum())
        if total == 0:
            raise ValueError("no sentences to compute a perplexity of")
        return safe_exp(float(self.nll.sum()) / total)


@dataclass
class Judges:
    """The trained judges of one run folder, on `device`, in eval mode."""

    tokenizer: Tokenizer
    attributes: dict[str, list[str]]     # attribute -> class names, the classifier's head order
    classifier: NgramClassifier | None   # None when the corpus has no labelled attribute
    lm: GRULanguageModel
    settings: JudgeSettings
    seed: int
    report: dict[str, Any]               # the content of judges.json
    device: torch.device

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attributes)

    def class_probabilities(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Per attribute, the judge's class probabilities (N, C_a), float32."""
        batches, inverse = self._batches(sentences)
        if self.classifier is None:
            return []
        parts: list[list[Tensor]] = [[] for _ in self.attributes]
        with torch.no_grad():
            for tokens, lengths in batches:
                for a, logits in enumerate(self.classifier(tokens, lengths)):
                    parts[a].append(logits.softmax(dim=-1).float().cpu())
        return [torch.cat(p)[inverse].numpy() if p else np.zeros((0, len(classes)), np.float32)
                for p, classes in zip(parts, self.attributes.values())]

    def classify(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Per attribute (in `attributes` order), the judge's class index of each sentence (N,)."""
        return [p.argmax(axis=1).astype(np.int64) for p in self.class_probabilities(sentences)]

    def sentence_nll(self, sentences: Sequence[str]) -> LMScores:
        """NLL (nats, summed over pieces + EOS) and token count of each sentence under the LM."""
        batches, inverse = self._batches(sentences)
        nll: list[Tensor] = []
        counts: list[Tensor] = []
        with torch.no_grad():
            for tokens, lengths in batches:
                scored = reconstruction_loss(self.lm(tokens), tokens, lengths)
                nll.append(scored.nll_sum.double().cpu())
                counts.append(scored.tokens.cpu())
        if not nll:
            return LMScores(np.zeros(0, np.float64), np.zeros(0, np.int64))
        return LMScores(torch.cat(nll)[inverse].numpy(),
                        torch.cat(counts)[inverse].numpy().astype(np.int64))

    def perplexity(self, sentences: Sequence[str]) -> float:
        """Per-token perplexity of the sentences as one corpus (EOS counted as a token)."""
        return self.sentence_nll(sentences).perplexity

    def _batches(self, sentences: Sequence[str]
                 ) -> tuple[Iterator[tuple[Tensor, Tensor]], Tensor]:
        """Batches (tokens (B, T), lengths (B,)) on the device, shortest sentences first, and
        the indices (N,) that put results concatenated in batch order back in sentence order.

        Sorted by length, so that a batch holds sentences of similar length and little padding.
        """
        encoded = self.tokenizer.encode(_sentences(sentences))
        eos, pad = self.tokenizer.eos_id, self.tokenizer.pad_id
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        inverse = torch.empty(len(order), dtype=torch.int64)
        inverse[torch.tensor(order, dtype=torch.int64)] = torch.arange(len(order))
        size = self.settings.score_batch_size

        def batches() -> Iterator[tuple[Tensor, Tensor]]:
            for start in range(0, len(order), size):
                rows = [torch.tensor(encoded[i] + [eos], dtype=torch.int64)
                        for i in order[start:start + size]]
                tokens = pad_sequence(rows, batch_first=True, padding_value=pad)  # (B, T)
                lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)  # (B,)
                yield tokens.to(self.device), lengths.to(self.device)

        return batches(), inverse


def _sentences(sentences: Sequence[str]) -> list[str]:
    # A str is a sequence of characters: without this check each letter would be a sentence.
    if isinstance(sentences, str):
        raise TypeError("the judges take a list of sentences; wrap one sentence in a list")
    return [str(s) for s in sentences]


def safe_exp(value: float) -> float:
    """exp that gives inf for a diverged model instead of raising OverflowError."""
    if math.isnan(value):
        return math.nan
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
