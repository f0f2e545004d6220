"""Independent judges of generated text: a bag-of-n-grams style classifier and a GRU language model.

    judges = ensure_judges("checkpoints/tiny")     # loads <run>/judges/, or trains it (seconds)
    judges.classify(["the pasta was great ."])     # [array([1]), array([0])]: one per attribute
    judges.perplexity(sentences)                   # corpus-level per-token perplexity, EOS included
    judges.sentence_nll(sentences)                 # LMScores(nll (N,) nats, tokens (N,))

Why separate models (ARCHITECTURE.md section 4): the generator is trained to satisfy the
project's own discriminator, so that discriminator's accuracy on generated text measures how
well G fools D, not whether the style came out. The style judge is therefore another model
family -- hashed unigrams and bigrams of token ids, mean-pooled and fed to one linear head per
attribute (fastText; Joulin et al. 2017) where D is a convolutional or recurrent reader -- trained
separately, on the labelled training sentences only. Its held-out accuracy on the test split is
the ceiling of any style accuracy it reports. The language model is a small GRU trained on the
training split only, never on generated text, so the perplexity it gives to samples measures how
far they are from the training distribution. (A generator that repeats one frequent sentence also
gets a low perplexity: read it beside the diversity metrics.)

Both judges read text through the run's own tokenizer. Generated sentences are re-encoded from
their text, exactly as a user's sentences would be, and may be of any length (no max_tokens cut).

Files, under the run folder (`judges_dir`):

    judges/classifier.pt   {"state_dict", "meta"}   (absent for a corpus without attributes)
    judges/lm.pt           {"state_dict", "meta"}
    judges/judges.json     the report: held-out accuracy per attribute and per class, valid and
                           test perplexity, chosen epochs, settings, seed, tokenizer sha256,
                           sentences per split, training seconds. Written last: its presence
                           means a complete set.

The .pt files hold plain state dicts and a `meta` dict (format version, tokenizer sha256, vocab
size, special ids, settings, seed, attributes), so they load with `torch.load(weights_only=True)`.
Loading refuses a judge made with another tokenizer (CheckpointError): ids would mean other words.

Training is deterministic given the seed (and the device and torch version): each model is built
and trained after `torch.manual_seed(seed)` inside `torch.random.fork_rng`, so the caller's global
RNG is left as it was, and the batch order comes from the loaders' own seeded samplers.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from textgan.config import read_config
from textgan.corpora import MISSING_LABEL, load_corpus
from textgan.data import make_loader, tokenize_corpus
from textgan.errors import CheckpointError, ConfigError
from textgan.evaluation.jsonfile import write_json_atomic
from textgan.losses import reconstruction_loss
from textgan.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JUDGES_DIR = "judges"
CLASSIFIER_FILE = "classifier.pt"
LM_FILE = "lm.pt"
REPORT_FILE = "judges.json"

# Multipliers of the bigram hash: odd, below 2**31, so (id * P) stays far inside int64 for any
# vocabulary below 2**32 pieces and no overflow can make the hash platform-dependent.
_HASH_A = 1_000_003
_HASH_B = 998_244_353


@dataclass(frozen=True)
class JudgeSettings:
    """Sizes and training knobs of both judges; saved with them and into the report.

    The defaults train both judges on the 20k-sentence synthetic corpus in well under a minute
    on two CPU cores.
    """

    # classifier: unigrams (one row per piece) + hashed bigrams, mean-pooled, linear heads
    classifier_dim: int = 64            # size of the pooled n-gram embedding
    bigram_buckets: int = 1 << 16       # hash buckets of the bigrams (BOS/EOS included)
    # lr and epochs: at 5e-3 and 4 epochs the judge under-fitted 2,700 synthetic sentences (0.98
    # test accuracy, misreading adjectives seen 39 times); 2e-2 and 6 reach 1.0 there and on 18k
    classifier_lr: float = 2e-2
    classifier_epochs: int = 6          # the epoch with the best validation accuracy is kept
    # language model: GRU over the run's tokenizer, BOS -> pieces -> EOS
    lm_embedding_dim: int = 64
    lm_hidden_dim: int = 128
    lm_dropout: float = 0.1
    lm_lr: float = 3e-3
    lm_epochs: int = 6                  # at most; the best validation NLL epoch is kept
    lm_patience: int = 2                # stop after this many epochs without a better NLL
    lm_clip_norm: float = 5.0
    # batching
    batch_size: int = 64
    bucket_batches: int = 50            # length bucketing of training batches (textgan.data)
    score_batch_size: int = 512         # sentences per forward pass when scoring

    def __post_init__(self) -> None:
        for name in ("classifier_dim", "bigram_buckets", "classifier_epochs", "lm_embedding_dim",
                     "lm_hidden_dim", "lm_epochs", "lm_patience", "batch_size", "bucket_batches",
                     "score_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"JudgeSettings.{name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        for name in ("classifier_lr", "lm_lr", "lm_clip_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"JudgeSettings.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.lm_dropout < 1.0:
            raise ConfigError(f"JudgeSettings.lm_dropout must be in [0, 1), got "
                              f"{self.lm_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str) -> JudgeSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CheckpointError(f"{origin}: unknown judge setting(s) {unknown}; it was written "
                                  "by another textgan version")
        return cls(**values)


# --------------------------------------------------------------------------- the models


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


# --------------------------------------------------------------------------- the judges


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
        return _safe_exp(float(self.nll.sum()) / total)


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


# --------------------------------------------------------------------------- training


def judges_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / JUDGES_DIR


def train_judges(run_dir: str | Path, *, seed: int = 0, settings: JudgeSettings | None = None,
                 device: str | torch.device = "cpu", progress: bool = True) -> Judges:
    """Train both judges on the run folder's corpus and tokenizer, save them under judges/.

    The corpus is the one the run's config.toml names, tokenised with the run's tokenizer and cut
    at its data.max_tokens, as the stages see it; the run folder needs both files.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir} has no config.toml: not a run folder (start one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    cfg = read_config(config_path)
    tokenizer = Tokenizer.load(run_dir)
    corpus = load_corpus(cfg.data)
    splits, _ = tokenize_corpus(corpus, tokenizer, cfg.data.max_tokens)
    judges = fit_judges(splits, tokenizer, corpus.attributes, seed=seed, settings=settings,
                        device=device, progress=progress)
    judges.report["corpus"] = {"source": cfg.data.source, "max_tokens": cfg.data.max_tokens,
                               "sentences": {name: len(split) for name, split in splits.items()}}
    save_judges(judges, run_dir)
    return judges


def fit_judges(splits: datasets.DatasetDict, tokenizer: Tokenizer,
               attributes: Mapping[str, Sequence[str]], *, seed: int = 0,
               settings: JudgeSettings | None = None, device: str | torch.device = "cpu",
               progress: bool = True) -> Judges:
    """Train both judges on tokenised splits (`tokenize_corpus`: train, valid and test), in memory.

    The classifier trains on the training sentences with at least one label, each attribute's
    loss over the sentences labelled for it; the LM trains on every training sentence.
    """
    settings = settings or JudgeSettings()
    device = _device(device)
    for name in ("train", "valid", "test"):
        if name not in splits:
            raise ValueError(f"fit_judges needs the splits train, valid and test; "
                             f"{name} is missing")
    attributes = {str(name): [str(c) for c in classes] for name, classes in attributes.items()}
    started = time.perf_counter()
    classifier, classifier_report = None, None
    if attributes:
        classifier, classifier_report = _fit_classifier(
            splits, tokenizer, attributes, seed=seed, settings=settings, device=device,
            progress=progress)
    lm, lm_report = _fit_lm(splits, tokenizer, seed=seed, settings=settings, device=device,
                            progress=progress)
    report = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "settings": settings.to_dict(),
        "attributes": attributes,
        "classifier": classifier_report,
        "lm": lm_report,
        "train_seconds": round(time.perf_counter() - started, 2),
        "device": str(device),
        "torch": torch.__version__,
    }
    return Judges(tokenizer=tokenizer, attributes=attributes, classifier=classifier, lm=lm,
                  settings=settings, seed=seed, report=report, device=device)


def classifier_loss(logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """Sum over attributes of the mean cross-entropy over the sentences labelled for it.

    logits: (B, C_a) per attribute; labels (B, A) class indices, MISSING_LABEL (-1) where
    unknown. A missing label is ignored, never a class: it adds nothing to the loss and its
    row gets no gradient from that attribute. An attribute with no label in the batch adds 0
    (the clamp keeps 0 / 0 out).
    """
    return sum(
        (F.cross_entropy(block.float(), labels[:, a], ignore_index=MISSING_LABEL,
                         reduction="sum") / (labels[:, a] != MISSING_LABEL).sum().clamp(min=1)
         for a, block in enumerate(logits)),
        start=labels.new_zeros((), dtype=torch.float32))


def _fit_classifier(splits: datasets.DatasetDict, tokenizer: Tokenizer,
                    attributes: dict[str, list[str]], *, seed: int, settings: JudgeSettings,
                    device: torch.device, progress: bool
                    ) -> tuple[NgramClassifier | None, dict[str, Any] | None]:
    names = list(attributes)
    train = _labelled(splits["train"], names)
    if len(train) == 0:
        log.warning("no training sentence has a label: the judges have no style classifier")
        return None, None
    unlabelled = {name: int(np.sum(_labels(train, name) == MISSING_LABEL)) for name in names}
    loaders = _loaders(splits, train, tokenizer, names, settings, seed)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = NgramClassifier(vocab_size=tokenizer.vocab_size,
                                num_classes=[len(c) for c in attributes.values()],
                                settings=settings, bos_id=tokenizer.bos_id).to(device)
        optimizers = [torch.optim.SparseAdam(model.bag.parameters(), lr=settings.classifier_lr),
                      torch.optim.Adam(model.heads.parameters(), lr=settings.classifier_lr)]
        best, best_score, best_epoch = None, (-math.inf, -math.inf), 0
        epochs = settings.classifier_epochs
        bar = tqdm(total=epochs * len(loaders["train"]), desc="judge classifier", unit="batch",
                   disable=not progress, leave=False)
        with bar:
            for epoch in range(1, epochs + 1):
                model.train()
                for batch in loaders["train"]:
                    batch = batch.to(device)
                    loss = classifier_loss(model(batch.tokens, batch.lengths), batch.labels)
                    for optimizer in optimizers:
                        optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    for optimizer in optimizers:
                        optimizer.step()
                    bar.update()
                valid = _classifier_scores(model, loaders["valid"], attributes, device)
                known = [acc for acc in valid["accuracy"].values() if acc is not None]
                # The mean validation accuracy over the attributes, ties (a saturated accuracy
                # is common on clean corpora) going to the lower validation loss. No labelled
                # validation sentence: no basis for choosing, keep the last epoch.
                score = (float(np.mean(known)), -valid["loss"]) if known else (0.0, epoch)
                bar.set_postfix(valid_acc=f"{score[0]:.4f}" if known else "n/a")
                log.info("judge classifier epoch %d: valid accuracy %s, loss %.4f", epoch,
                         _format_accuracy(valid["accuracy"]), valid["loss"])
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best = copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    model.eval()
    valid = _classifier_scores(model, loaders["valid"], attributes, device)
    test = _classifier_scores(model, loaders["test"], attributes, device)
    log.info("judge classifier: epoch %d kept; test accuracy %s", best_epoch,
             _format_accuracy(test["accuracy"]))
    return model, {
        "epoch": best_epoch,
        "valid_accuracy": valid["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_class_accuracy": test["class_accuracy"],
        "test_labelled": test["labelled"],
        "train_sentences": len(train),
        "train_unlabelled": unlabelled,
    }


def _fit_lm(splits: datasets.DatasetDict, tokenizer: Tokenizer, *, seed: int,
            settings: JudgeSettings, device: torch.device, progress: bool
            ) -> tuple[GRULanguageModel, dict[str, Any]]:
    loaders = _loaders(splits, splits["train"], tokenizer, [], settings, seed)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                                 pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lm_lr)
        best, best_nll, best_epoch, epoch = None, math.inf, 0, 0
        bar = tqdm(total=settings.lm_epochs * len(loaders["train"]), desc="judge LM",
                   unit="batch", disable=not progress, leave=False)
        with bar:
            for epoch in range(1, settings.lm_epochs + 1):
                model.train()
                for batch in loaders["train"]:
                    batch = batch.to(device)
                    loss = reconstruction_loss(model(batch.tokens), batch.tokens,
                                               batch.lengths).per_token
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), settings.lm_clip_norm)
                    optimizer.step()
                    bar.update()
                nll = _lm_nll(model, loaders["valid"], device)
                bar.set_postfix(valid_ppl=f"{_safe_exp(nll):.2f}")
                log.info("judge LM epoch %d: valid perplexity %.3f", epoch, _safe_exp(nll))
                if nll < best_nll:
                    best_nll, best_epoch = nll, epoch
                    best = copy.deepcopy(model.state_dict())
                elif epoch - best_epoch >= settings.lm_patience:
                    log.info("judge LM: no better validation NLL for %d epochs, stopping",
                             settings.lm_patience)
                    break
    if best is None:  # the validation NLL was never finite: keep the last weights, say so
        log.warning("judge LM: the validation NLL was never finite")
        best_epoch = epoch
    else:
        model.load_state_dict(best)
    model.eval()
    test_nll = _lm_nll(model, loaders["test"], device)
    log.info("judge LM: epoch %d kept; valid perplexity %.3f, test perplexity %.3f", best_epoch,
             _safe_exp(best_nll), _safe_exp(test_nll))
    return model, {"epoch": best_epoch, "epochs_run": epoch, "valid_ppl": _safe_exp(best_nll),
                   "test_ppl": _safe_exp(test_nll), "train_sentences": len(splits["train"])}


def _loaders(splits: datasets.DatasetDict, train: datasets.Dataset, tokenizer: Tokenizer,
             names: list[str], settings: JudgeSettings, seed: int) -> dict[str, Any]:
    loaders = {"train": make_loader(train, tokenizer, names, batch_size=settings.batch_size,
                                    bucket_batches=settings.bucket_batches, shuffle=True,
                                    seed=seed)}
    for name in ("valid", "test"):
        loaders[name] = make_loader(splits[name], tokenizer, names,
                                    batch_size=settings.score_batch_size, bucket_batches=1,
                                    shuffle=False, seed=seed)
    return loaders


def _labels(split: datasets.Dataset, name: str) -> np.ndarray:
    """One label column as an int64 array (respects select), as `data.dataset_lengths` reads."""
    return np.asarray(split.select_columns([name]).with_format("numpy")[:][name], dtype=np.int64)


def _labelled(split: datasets.Dataset, names: list[str]) -> datasets.Dataset:
    """The rows with at least one known label (all of them in a fully labelled corpus)."""
    known = np.zeros(len(split), dtype=bool)
    for name in names:
        known |= _labels(split, name) != MISSING_LABEL
    return split if known.all() else split.select(np.flatnonzero(known))


def _classifier_scores(model: NgramClassifier, loader: Any, attributes: dict[str, list[str]],
                       device: torch.device) -> dict[str, dict[str, Any]]:
    """Accuracy per attribute and per class over the labelled sentences (None where none)."""
    sizes = [len(classes) for classes in attributes.values()]
    confusion = [torch.zeros(n * n, dtype=torch.int64) for n in sizes]  # true * n + predicted
    loss_sum = torch.zeros(len(sizes), dtype=torch.float64)  # summed cross-entropy per attribute
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            for a, logits in enumerate(model(batch.tokens, batch.lengths)):
                known = batch.label_mask[:, a]
                pairs = batch.labels[known, a] * sizes[a] + logits[known].argmax(dim=-1)
                confusion[a] += torch.bincount(pairs, minlength=sizes[a] ** 2).cpu()
                loss_sum[a] += F.cross_entropy(logits.float(), batch.labels[:, a],
                                               ignore_index=MISSING_LABEL,
                                               reduction="sum").double().cpu()
    model.train(was_training)
    totals = torch.stack([counts.sum() for counts in confusion]).double()  # (A,)
    losses = loss_sum[totals > 0] / totals[totals > 0]
    accuracy: dict[str, float | None] = {}
    class_accuracy: dict[str, dict[str, float | None]] = {}
    labelled: dict[str, int] = {}
    for (name, classes), counts in zip(attributes.items(), confusion):
        matrix = counts.view(len(classes), len(classes)).numpy()  # (true, predicted)
        total = int(matrix.sum())
        labelled[name] = total
        accuracy[name] = float(np.trace(matrix) / total) if total else None
        class_accuracy[name] = {
            label: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None
            for i, label in enumerate(classes)}
    return {"accuracy": accuracy, "class_accuracy": class_accuracy, "labelled": labelled,
            # the mean over the attributes of each one's mean cross-entropy (nan: no labels)
            "loss": float(losses.mean()) if len(losses) else math.nan}


def _lm_nll(model: GRULanguageModel, loader: Any, device: torch.device) -> float:
    """Per-token NLL (nats) of the loader's sentences, EOS included."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            scored = reconstruction_loss(model(batch.tokens), batch.tokens, batch.lengths)
            nll += float(scored.nll_sum.double().sum())
            tokens += int(scored.tokens.sum())
    model.train(was_training)
    return nll / tokens if tokens else math.nan


# --------------------------------------------------------------------------- files


def save_judges(judges: Judges, run_dir: str | Path) -> Path:
    """Write classifier.pt, lm.pt and then judges.json under run_dir/judges/; returns the folder."""
    folder = judges_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "tokenizer_sha256": judges.tokenizer.sha256,
        "vocab_size": judges.tokenizer.vocab_size,
        "special_ids": _special_ids(judges.tokenizer),
        "settings": judges.settings.to_dict(),
        "seed": judges.seed,
        "attributes": judges.attributes,
    }
    if judges.classifier is not None:
        _save(folder / CLASSIFIER_FILE, {"state_dict": _cpu_state(judges.classifier),
                                          "meta": {**meta, "kind": "classifier"}})
    else:
        (folder / CLASSIFIER_FILE).unlink(missing_ok=True)
    _save(folder / LM_FILE, {"state_dict": _cpu_state(judges.lm), "meta": {**meta, "kind": "lm"}})
    report = {**judges.report, "files": {
        "classifier": CLASSIFIER_FILE if judges.classifier is not None else None,
        "lm": LM_FILE}}
    judges.report = report
    write_json_atomic(folder / REPORT_FILE, report)
    log.info("judges saved to %s", folder)
    return folder


def load_judges(run_dir: str | Path, tokenizer: Tokenizer | None = None, *,
                device: str | torch.device = "cpu") -> Judges:
    """The judges saved under run_dir/judges/, checked against `tokenizer` (default: the run's)."""
    folder = judges_dir(run_dir)
    report_path = folder / REPORT_FILE
    if not report_path.is_file():
        raise CheckpointError(f"no judges in {folder} (no {REPORT_FILE}); train them with "
                              "textgan.evaluation.judges.train_judges or ensure_judges")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        files = report["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{report_path} is not a judges report ({error}); delete {folder} "
                              "and train the judges again") from None
    if tokenizer is None:
        tokenizer = Tokenizer.load(run_dir)
    device = _device(device)
    lm_state = _read(folder / LM_FILE, "lm", tokenizer)
    meta = lm_state["meta"]
    settings = JudgeSettings.from_dict(meta["settings"], str(folder / LM_FILE))
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in meta["attributes"].items()}
    lm = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                          pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id)
    _load_weights(lm, lm_state, folder / LM_FILE)
    classifier = None
    if files.get("classifier"):
        state = _read(folder / CLASSIFIER_FILE, "classifier", tokenizer)
        classifier_settings = JudgeSettings.from_dict(state["meta"]["settings"],
                                                      str(folder / CLASSIFIER_FILE))
        classifier = NgramClassifier(vocab_size=tokenizer.vocab_size,
                                     num_classes=[len(c) for c in attributes.values()],
                                     settings=classifier_settings, bos_id=tokenizer.bos_id)
        _load_weights(classifier, state, folder / CLASSIFIER_FILE)
        classifier.to(device).eval()
    lm.to(device).eval()
    log.info("loaded the judges from %s (classifier test accuracy %s, LM test perplexity %s)",
             folder, _format_accuracy((report.get("classifier") or {}).get("test_accuracy", {})),
             (report.get("lm") or {}).get("test_ppl"))
    return Judges(tokenizer=tokenizer, attributes=attributes, classifier=classifier, lm=lm,
                  settings=settings, seed=int(meta["seed"]), report=report, device=device)


def ensure_judges(run_dir: str | Path, tokenizer: Tokenizer | None = None, *, seed: int = 0,
                  settings: JudgeSettings | None = None, device: str | torch.device = "cpu",
                  progress: bool = True) -> Judges:
    """The run's judges: loaded when judges/ holds them, else trained (and saved) first.

    Judges trained with another seed or other settings than asked for are refused rather than
    silently used: a report must state the judges it was measured with. Delete judges/ to
    retrain.
    """
    if not (judges_dir(run_dir) / REPORT_FILE).is_file():
        if tokenizer is not None and tokenizer != Tokenizer.load(run_dir):
            raise CheckpointError(f"the tokenizer given is not the one of {run_dir}, which the "
                                  "judges would be trained with; use the run folder's tokenizer")
        log.info("no judges in %s yet: training them", judges_dir(run_dir))
        return train_judges(run_dir, seed=seed, settings=settings, device=device,
                            progress=progress)
    judges = load_judges(run_dir, tokenizer, device=device)
    wanted = settings or JudgeSettings()
    if judges.seed != seed or judges.settings != wanted:
        changed = [f"seed: {judges.seed} -> {seed}"] if judges.seed != seed else []
        changed += [f"{key}: {old} -> {getattr(wanted, key)}"
                    for key, old in judges.settings.to_dict().items()
                    if getattr(wanted, key) != old]
        raise CheckpointError(
            f"the judges in {judges_dir(run_dir)} were trained with other settings than asked "
            "for:\n  " + "\n  ".join(changed) + f"\ndelete {judges_dir(run_dir)} to train them "
            "again, or ask for the saved settings")
    return judges


def _save(path: Path, state: dict[str, Any]) -> None:
    # Atomic, as the stages' checkpoints: a judge killed mid-write must not be half loadable.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read(path: Path, kind: str, tokenizer: Tokenizer) -> dict[str, Any]:
    """torch.load(weights_only=True) of a judge file, checked against the tokenizer."""
    if not path.is_file():
        raise CheckpointError(f"judge file not found: {path}; delete {path.parent} and train "
                              "the judges again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"{path} is not a readable judge file: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None
    meta = state.get("meta") if isinstance(state, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a textgan judge file (no 'meta' / 'state_dict')")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != kind:
        raise CheckpointError(f"{path} is a judge file of format {meta.get('format_version')} "
                              f"and kind {meta.get('kind')!r}; this textgan reads format "
                              f"{FORMAT_VERSION}, kind {kind!r}")
    if meta["tokenizer_sha256"] != tokenizer.sha256:
        raise CheckpointError(
            f"{path} was trained with another tokenizer (sha256 {meta['tokenizer_sha256'][:12]}"
            f"... vs {tokenizer.sha256[:12]}... here): its ids would mean other pieces. Use the "
            f"run folder's own tokenizer, or delete {path.parent} and train the judges again")
    if meta["vocab_size"] != tokenizer.vocab_size or meta["special_ids"] != _special_ids(
            tokenizer):
        raise CheckpointError(f"{path} expects vocabulary size {meta['vocab_size']} and special "
                              f"ids {meta['special_ids']}; the tokenizer has "
                              f"{tokenizer.vocab_size} and {_special_ids(tokenizer)}")
    return state


def _load_weights(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the weights do not fit the judge its own settings "
                              f"describe ({str(error).splitlines()[0]} ...)") from None


def _special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id, "bos": tokenizer.bos_id,
            "eos": tokenizer.eos_id}


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


# --------------------------------------------------------------------------- small helpers


def _device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG `fork_rng` must save and restore (none on the CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _safe_exp(value: float) -> float:
    """exp that gives inf for a diverged model instead of raising OverflowError."""
    if math.isnan(value):
        return math.nan
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def _format_accuracy(accuracy: Mapping[str, float | None]) -> str:
    return ", ".join(f"{name} {'n/a' if acc is None else f'{acc:.4f}'}"
                     for name, acc in accuracy.items()) or "n/a"
