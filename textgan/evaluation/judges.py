"""Independent judges of generated text: a bag-of-n-grams style classifier and a GRU language model.

    judges = ensure_judges("checkpoints/tiny")     # loads <run>/judges/, or trains it (seconds)
    judges.classify(["the pasta was great ."])     # [array([1]), array([0])]: one per attribute
    judges.perplexity(sentences)                   # corpus-level per-token perplexity, EOS included
    judges.sentence_nll(sentences)                 # LMScores(nll (N,) nats, tokens (N,))

Why separate models: the generator is trained to satisfy the
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
                           test perplexity, the LM's real-vs-shuffled check (`order_check`),
                           chosen epochs and how each training stopped, settings, seed,
                           tokenizer sha256, sentences per split, training seconds. Written
                           last: its presence means a complete set.

The .pt files hold plain state dicts and a `meta` dict (format version, tokenizer sha256, vocab
size, special ids, settings, seed, attributes, corpus, the judge's own part of the report), so
they load with `torch.load(weights_only=True)`. Loading refuses a judge made with another
tokenizer (CheckpointError): ids would mean other words. Each .pt file is written as soon as its
judge is trained, and `train_judges` reuses one that an interrupted call left when it was made
with the same tokenizer, seed, corpus and settings: the classifier survives a stop during the LM.

Training is bounded: at most `classifier_epochs` / `lm_epochs` epochs and `*_time_limit` seconds
per judge (the best validation epoch so far is kept, and judges.json says what stopped it), the
LM on at most `lm_max_sentences` training sentences. Each epoch logs a line (seconds, validation
accuracy or perplexity), also without progress bars.

Training is deterministic given the seed (and the device and torch version) unless a time limit
cuts it: each model is built and trained after `torch.manual_seed(seed)` inside
`torch.random.fork_rng`, so the caller's global RNG is left as it was, and the batch order comes
from the loaders' own seeded samplers.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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

from textgan.config import DataConfig, read_config
from textgan.corpora import MISSING_LABEL, Corpus, load_corpus
from textgan.corpora.bars import show_bars
from textgan.data import dataset_lengths, fixed_sample, make_loader, tokenize_corpus
from textgan.devices import resolve_device
from textgan.errors import CheckpointError, ConfigError
from textgan.evaluation.jsonfile import write_json_atomic
from textgan.losses import attribute_loss, reconstruction_loss
from textgan.tokenizer import MODEL_FILE as TOKENIZER_MODEL_FILE
from textgan.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JUDGES_DIR = "judges"
CLASSIFIER_FILE = "classifier.pt"
LM_FILE = "lm.pt"
REPORT_FILE = "judges.json"
_FILES = {"classifier": CLASSIFIER_FILE, "lm": LM_FILE}
_NAMES = {"classifier": "classifier", "lm": "LM"}

# Multipliers of the bigram hash: odd, below 2**31, so (id * P) stays far inside int64 for any
# vocabulary below 2**32 pieces and no overflow can make the hash platform-dependent.
_HASH_A = 1_000_003
_HASH_B = 998_244_353


@dataclass(frozen=True)
class JudgeSettings:
    """Sizes and training knobs of both judges; saved with them and into the report.

    The defaults train both judges on the 20k-sentence synthetic corpus in well under a minute
    on two CPU cores, and bound each judge to a few minutes on a real corpus of ~115k training
    sentences (Yelp): there an LM epoch over every sentence took ~4.5 minutes, and six of them
    with nothing shown made `evaluate` look hung.
    """

    # classifier: unigrams (one row per piece) + hashed bigrams, mean-pooled, linear heads
    classifier_dim: int = 64            # size of the pooled n-gram embedding
    bigram_buckets: int = 1 << 16       # hash buckets of the bigrams (BOS/EOS included)
    # lr and epochs: at 5e-3 and 4 epochs the judge under-fitted 2,700 synthetic sentences (0.98
    # test accuracy, misreading adjectives seen 39 times); 2e-2 and 6 reach 1.0 there and on 18k
    classifier_lr: float = 2e-2
    classifier_epochs: int = 6          # at most; the best validation accuracy epoch is kept
    # seconds of training, validation included (0: no limit). When it runs out mid-epoch the
    # part trained is validated like an epoch, and the best validation score so far is kept.
    classifier_time_limit: float = 180.0
    # language model: GRU over the run's tokenizer, BOS -> pieces -> EOS
    lm_embedding_dim: int = 64
    lm_hidden_dim: int = 128
    lm_dropout: float = 0.1
    lm_lr: float = 3e-3
    lm_epochs: int = 6                  # at most; the best validation NLL epoch is kept
    lm_patience: int = 2                # stop after this many epochs without a better NLL
    lm_clip_norm: float = 5.0
    lm_time_limit: float = 180.0        # as classifier_time_limit
    # Training sentences of the LM, a seeded sample of the training split (0: all of them).
    # Its cost is the softmax over the vocabulary at every token; it only has to rank real text
    # above scrambled text and compare samples with the corpus, and 40k sentences do that,
    # while the whole synthetic corpus (18k training sentences) stays under the cap.
    lm_max_sentences: int = 40_000
    lm_check_sentences: int = 1000      # test sentences of the real-vs-shuffled check of the LM
    # batching
    batch_size: int = 64
    bucket_batches: int = 50            # length bucketing of training batches (textgan.data)
    score_batch_size: int = 512         # sentences per forward pass when scoring

    def __post_init__(self) -> None:
        for name in ("classifier_dim", "bigram_buckets", "classifier_epochs", "lm_embedding_dim",
                     "lm_hidden_dim", "lm_epochs", "lm_patience", "lm_check_sentences",
                     "batch_size", "bucket_batches", "score_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"JudgeSettings.{name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        for name in ("classifier_lr", "lm_lr", "lm_clip_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"JudgeSettings.{name} must be > 0, got {getattr(self, name)}")
        for name in ("classifier_time_limit", "lm_time_limit", "lm_max_sentences"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"JudgeSettings.{name} must be >= 0 (0: no limit), got "
                                  f"{getattr(self, name)}")
        if not 0.0 <= self.lm_dropout < 1.0:
            raise ConfigError(f"JudgeSettings.lm_dropout must be in [0, 1), got "
                              f"{self.lm_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def of(self, kind: str) -> dict[str, Any]:
        """The settings that shape one judge, "classifier" or "lm": a saved judge file is
        reused when these (and the seed, tokenizer and corpus) are the same, so changing only
        the LM's settings keeps a finished classifier."""
        own = {"classifier": ("classifier_", "bigram_"), "lm": ("lm_",)}[kind]
        return {key: value for key, value in self.to_dict().items()
                if key.startswith(own) or key in _SHARED_SETTINGS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str) -> JudgeSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CheckpointError(f"{origin}: unknown judge setting(s) {unknown}; it was written "
                                  "by another textgan version")
        return cls(**values)


# settings of both judges (score_batch_size too: it batches the validation that picks the epoch)
_SHARED_SETTINGS = ("batch_size", "bucket_batches", "score_batch_size")


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


@dataclass(frozen=True)
class LoadedCorpus:
    """A corpus a caller already loaded (`data`) and tokenised (with the tokenizer of
    `tokenizer_sha256`), so that `train_judges` need not read it, and log it, a second time."""

    data: DataConfig
    tokenizer_sha256: str
    corpus: Corpus
    splits: datasets.DatasetDict

    def serves(self, data: DataConfig, tokenizer: Tokenizer) -> bool:
        """Whether it is the corpus `data` describes, tokenised by `tokenizer`. Runtime keys
        (the cache folder, the validation sample) change no sentence and are not compared."""
        return (self.tokenizer_sha256 == tokenizer.sha256
                and _corpus_fields(self.data) == _corpus_fields(data))


def _corpus_fields(data: DataConfig) -> dict[str, Any]:
    return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
            if not f.metadata.get("runtime")}


def train_judges(run_dir: str | Path, *, seed: int = 0, settings: JudgeSettings | None = None,
                 device: str | torch.device = "cpu", progress: bool = True,
                 reuse: bool = True, loaded: LoadedCorpus | None = None) -> Judges:
    """Train both judges on the run folder's corpus and tokenizer, save them under judges/.

    The corpus is the one the run's config.toml names, tokenised with the run's tokenizer and cut
    at its data.max_tokens, as the stages see it; the run folder needs both files.

    Each judge is saved as soon as it is trained, and judges.json last. With `reuse`, a judge
    file left by an earlier, unfinished call is loaded instead of trained again when it was made
    with the same tokenizer, seed, corpus and settings of its own (`JudgeSettings.of`): a run
    stopped while the LM trained keeps its classifier. `loaded`: the caller's corpus, used when
    it is the one the run's config names (`LoadedCorpus.serves`).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir} has no config.toml: not a run folder (start one with "
                              f"`python -m textgan.pretrain --run-dir {run_dir}`)")
    settings = settings or JudgeSettings()
    cfg = read_config(config_path)
    tokenizer = Tokenizer.load(run_dir)
    if loaded is not None and loaded.serves(cfg.data, tokenizer):
        corpus, splits = loaded.corpus, loaded.splits
    else:
        corpus = load_corpus(cfg.data)
        splits, _ = tokenize_corpus(corpus, tokenizer, cfg.data.max_tokens)
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in corpus.attributes.items()}
    corpus_info = {"source": cfg.data.source, "max_tokens": cfg.data.max_tokens,
                   "sentences": {name: len(split) for name, split in splits.items()}}
    folder = judges_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # judges.json says "complete set": from here until it is written again, there is none
    (folder / REPORT_FILE).unlink(missing_ok=True)

    def meta(kind: str, report: dict[str, Any]) -> dict[str, Any]:
        return _judge_meta(kind, tokenizer=tokenizer, settings=settings, seed=seed,
                           attributes=attributes, report=report, corpus=corpus_info)

    def load(kind: str) -> tuple[nn.Module, dict[str, Any]] | None:
        if not reuse:
            return None
        return _reusable(folder / _FILES[kind], meta(kind, {}), tokenizer, settings, device)

    def keep(kind: str, model: nn.Module | None, report: dict[str, Any] | None) -> None:
        path = folder / _FILES[kind]
        if model is None:
            path.unlink(missing_ok=True)  # a corpus without labels: no stale classifier
            return
        _save(path, {"state_dict": _cpu_state(model), "meta": meta(kind, report or {})})
        log.info("judge %s saved to %s", _NAMES[kind], path)

    judges = _fit_set(splits, tokenizer, attributes, seed=seed, settings=settings,
                      device=resolve_device(device), progress=progress, load=load, keep=keep)
    judges.report["corpus"] = corpus_info
    _write_report(judges, folder)
    return judges


def fit_judges(splits: datasets.DatasetDict, tokenizer: Tokenizer,
               attributes: Mapping[str, Sequence[str]], *, seed: int = 0,
               settings: JudgeSettings | None = None, device: str | torch.device = "cpu",
               progress: bool = True) -> Judges:
    """Train both judges on tokenised splits (`tokenize_corpus`: train, valid and test), in memory.

    The classifier trains on the training sentences with at least one label, each attribute's
    loss over the sentences labelled for it; the LM trains on every training sentence (up to
    `lm_max_sentences`, a seeded sample).
    """
    attributes = {str(name): [str(c) for c in classes] for name, classes in attributes.items()}
    return _fit_set(splits, tokenizer, attributes, seed=seed, settings=settings or JudgeSettings(),
                    device=resolve_device(device), progress=progress, load=lambda kind: None,
                    keep=lambda kind, model, report: None)


def _fit_set(splits: datasets.DatasetDict, tokenizer: Tokenizer,
             attributes: dict[str, list[str]], *, seed: int, settings: JudgeSettings,
             device: torch.device, progress: bool,
             load: Callable[[str], tuple[nn.Module, dict[str, Any]] | None],
             keep: Callable[[str, nn.Module | None, dict[str, Any] | None], None]) -> Judges:
    """Both judges, the classifier first: each one `load`ed, or trained and handed to `keep`."""
    for name in ("train", "valid", "test"):
        if name not in splits:
            raise ValueError(f"fit_judges needs the splits train, valid and test; "
                             f"{name} is missing")
    started = time.perf_counter()
    reused: list[str] = []
    classifier, classifier_report = None, None
    if attributes:
        found = load("classifier")
        if found is not None:
            classifier, classifier_report = found
            reused.append("classifier")
        else:
            classifier, classifier_report = _fit_classifier(
                splits, tokenizer, attributes, seed=seed, settings=settings, device=device,
                progress=progress)
            keep("classifier", classifier, classifier_report)
    else:
        keep("classifier", None, None)
    found = load("lm")
    if found is not None:
        lm, lm_report = found
        reused.append("lm")
    else:
        lm, lm_report = _fit_lm(splits, tokenizer, seed=seed, settings=settings, device=device,
                                progress=progress)
        keep("lm", lm, lm_report)
    report = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "settings": settings.to_dict(),
        "attributes": attributes,
        "classifier": classifier_report,
        "lm": lm_report,
        "reused": reused,  # judges loaded from an earlier, unfinished call, not trained here
        "train_seconds": round(time.perf_counter() - started, 2),
        "device": str(device),
        "torch": torch.__version__,
    }
    return Judges(tokenizer=tokenizer, attributes=attributes, classifier=classifier,
                  lm=lm, settings=settings, seed=seed, report=report, device=device)


def classifier_loss(logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """Sum over attributes of the mean cross-entropy over the sentences labelled for it.

    logits: (B, C_a) per attribute; labels (B, A) class indices, MISSING_LABEL (-1) where
    unknown. A missing label is ignored, never a class: it adds nothing to the loss and its
    row gets no gradient from that attribute. An attribute with no label in the batch adds 0.
    The discriminator's L_s without class weights: `losses.attribute_loss`'s total.
    """
    return attribute_loss(logits, labels).total


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
    log.info("judge classifier: training on %d sentences, at most %d epochs%s", len(train),
             settings.classifier_epochs, _limit_text(settings.classifier_time_limit))
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = NgramClassifier(vocab_size=tokenizer.vocab_size,
                                num_classes=[len(c) for c in attributes.values()],
                                settings=settings, bos_id=tokenizer.bos_id).to(device)
        optimizers = [torch.optim.SparseAdam(model.bag.parameters(), lr=settings.classifier_lr),
                      torch.optim.Adam(model.heads.parameters(), lr=settings.classifier_lr)]

        def step(batch: Any) -> None:
            loss = classifier_loss(model(batch.tokens, batch.lengths), batch.labels)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()

        def validate(epoch: int) -> tuple[tuple[float, float], str, dict[str, Any]]:
            valid = _classifier_scores(model, loaders["valid"], attributes, device)
            known = [acc for acc in valid["accuracy"].values() if acc is not None]
            # The mean validation accuracy over the attributes, ties (a saturated accuracy is
            # common on clean corpora) going to the lower validation loss. No labelled
            # validation sentence: no basis for choosing, keep the last epoch.
            score = (float(np.mean(known)), -valid["loss"]) if known else (0.0, epoch)
            return score, (f"valid accuracy {_format_accuracy(valid['accuracy'])}, "
                           f"loss {valid['loss']:.4f}"), valid

        training, valid = _train_epochs("judge classifier", model, loaders["train"], step,
                                        validate, epochs=settings.classifier_epochs, patience=None,
                                        time_limit=settings.classifier_time_limit,
                                        device=device, progress=progress)
    model.eval()
    test = _classifier_scores(model, loaders["test"], attributes, device)
    log.info("judge classifier: epoch %d kept (%s); test accuracy %s", training["epoch"],
             _stop_text(training, settings.classifier_time_limit),
             _format_accuracy(test["accuracy"]))
    return model, {
        "epoch": training["epoch"],
        "valid_accuracy": valid["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_class_accuracy": test["class_accuracy"],
        "test_labelled": test["labelled"],
        "train_sentences": len(train),
        "train_unlabelled": unlabelled,
        **{key: value for key, value in training.items() if key != "epoch"},
    }


def _fit_lm(splits: datasets.DatasetDict, tokenizer: Tokenizer, *, seed: int,
            settings: JudgeSettings, device: torch.device, progress: bool
            ) -> tuple[GRULanguageModel, dict[str, Any]]:
    train = fixed_sample(splits["train"], settings.lm_max_sentences, seed)
    loaders = _loaders(splits, train, tokenizer, [], settings, seed)
    log.info("judge LM: training on %d of %d sentences, at most %d epochs%s", len(train),
             len(splits["train"]), settings.lm_epochs, _limit_text(settings.lm_time_limit))
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                                 pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lm_lr)

        def step(batch: Any) -> None:
            loss = reconstruction_loss(model(batch.tokens), batch.tokens,
                                       batch.lengths).per_token
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.lm_clip_norm)
            optimizer.step()

        def validate(epoch: int) -> tuple[tuple[float], str, float]:
            nll = _lm_nll(model, loaders["valid"], device)
            return (-nll,), f"valid perplexity {_safe_exp(nll):.3f}", nll

        training, valid_nll = _train_epochs("judge LM", model, loaders["train"], step, validate,
                                            epochs=settings.lm_epochs,
                                            patience=settings.lm_patience,
                                            time_limit=settings.lm_time_limit, device=device,
                                            progress=progress)
    model.eval()
    test_nll = _lm_nll(model, loaders["test"], device)
    scorer = Judges(tokenizer=tokenizer, attributes={}, classifier=None, lm=model,
                    settings=settings, seed=seed, report={}, device=device)
    check = order_check(scorer, splits["test"]["text"], sentences=settings.lm_check_sentences,
                        seed=seed)
    log.info("judge LM: epoch %d kept (%s); valid perplexity %.3f, test perplexity %.3f%s",
             training["epoch"], _stop_text(training, settings.lm_time_limit),
             _safe_exp(valid_nll), _safe_exp(test_nll), _check_text(check))
    return model, {"epoch": training["epoch"], "valid_ppl": _safe_exp(valid_nll),
                   "test_ppl": _safe_exp(test_nll), "train_sentences": len(train),
                   "train_available": len(splits["train"]), "check": check,
                   **{key: value for key, value in training.items() if key != "epoch"}}


def _train_epochs(name: str, model: nn.Module, loader: Any, step: Callable[[Any], None],
                  validate: Callable[[int], tuple[tuple[float, ...], str, Any]], *, epochs: int,
                  patience: int | None, time_limit: float, device: torch.device,
                  progress: bool) -> tuple[dict[str, Any], Any]:
    """Train for at most `epochs` epochs, `time_limit` seconds (0: none) and, with `patience`,
    until that many epochs bring no better validation score; load the best epoch's weights.

    `validate(epoch)` gives (score, higher is better; a line for the log; the scores to report).
    Each epoch gets a bar (hidden without `progress`) and a log line, which `--no-progress`
    keeps: a judge that trains for minutes must not look hung. Returns the training's part of
    the judge's report and the kept epoch's validation scores (no second validation pass: on
    Yelp one pass of the LM took a quarter of its time budget).
    """
    started = time.monotonic()
    deadline = started + time_limit if time_limit > 0 else math.inf
    best, best_score, best_epoch, best_scores = None, (-math.inf,), 0, None
    epoch, done, stopped_by = 0, 1.0, "epochs"
    for epoch in range(1, epochs + 1):
        model.train()
        batches = seen = len(loader)
        with tqdm(total=batches, desc=f"{name} epoch {epoch}/{epochs}", unit="batch",
                  disable=not show_bars(progress), leave=False) as bar:
            for seen, batch in enumerate(loader, start=1):
                step(batch.to(device))
                bar.update()
                if time.monotonic() > deadline:
                    break
        done = seen / batches if batches else 1.0
        # the part of an epoch trained before the time ran out is validated like an epoch:
        # on a large corpus it may be all the training there is time for
        score, summary, scores = validate(epoch)
        log.info("%s epoch %d/%d%s: %.1f s, %s", name, epoch, epochs,
                 f" ({done:.0%} of it, then the time limit)" if done < 1 else "",
                 time.monotonic() - started, summary)
        if score > best_score:  # a nan score is never better, so never kept
            best_score, best_epoch, best_scores = score, epoch, scores
            best = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - best_epoch >= patience:
            log.info("%s: no better validation score for %d epochs, stopping", name, patience)
            stopped_by = "patience"
            break
        if done < 1 or (time.monotonic() > deadline and epoch < epochs):
            stopped_by = "time_limit"
            break
    if best is None:  # the validation score was never finite: keep the last weights, say so
        log.warning("%s: the validation score was never finite; keeping the last weights", name)
        best_epoch, best_scores = epoch, scores
    else:
        model.load_state_dict(best)
    return {"epoch": best_epoch, "epochs_run": epoch, "last_epoch_done": round(done, 4),
            "stopped_by": stopped_by,
            "seconds": round(time.monotonic() - started, 2)}, best_scores


def order_check(judges: Judges, texts: Sequence[str], *, sentences: int = 1000,
                seed: int = 0) -> dict[str, Any] | None:
    """The LM's sanity check: real sentences against the same words in a shuffled order.

    Up to `sentences` of `texts` (a seeded sample), each with its words shuffled (seeded) until
    the order differs; a sentence of fewer than two distinct words cannot be shuffled and is
    left out. Gives the mean per-token NLL of both (nats, EOS included), their perplexities and
    `real_better`, the share of sentences whose real order has the lower per-token NLL. A
    language model that learnt word order puts that share near 1; a bag-of-words one near 0.5.
    None when no sentence can be shuffled.
    """
    rng = np.random.default_rng(seed)
    texts = list(texts)
    if len(texts) > sentences:
        texts = [texts[i] for i in np.sort(rng.choice(len(texts), size=sentences,
                                                      replace=False))]
    real, shuffled = [], []
    for text in texts:
        words = text.split()
        if len(set(words)) < 2:
            continue
        order = list(words)
        while order == words:
            order = [words[i] for i in rng.permutation(len(words))]
        real.append(" ".join(words))
        shuffled.append(" ".join(order))
    if not real:
        return None
    real_scores, shuffled_scores = judges.sentence_nll(real), judges.sentence_nll(shuffled)
    real_nll = float(real_scores.nll.sum() / real_scores.tokens.sum())
    shuffled_nll = float(shuffled_scores.nll.sum() / shuffled_scores.tokens.sum())
    better = (real_scores.nll / real_scores.tokens) < (shuffled_scores.nll /
                                                       shuffled_scores.tokens)
    return {"sentences": len(real), "left_out": len(texts) - len(real), "seed": seed,
            "real_nll": real_nll, "shuffled_nll": shuffled_nll,
            "real_ppl": _safe_exp(real_nll), "shuffled_ppl": _safe_exp(shuffled_nll),
            "real_better": float(np.mean(better))}


def _loaders(splits: datasets.DatasetDict, train: datasets.Dataset, tokenizer: Tokenizer,
             names: list[str], settings: JudgeSettings, seed: int) -> dict[str, Any]:
    loaders = {"train": make_loader(train, tokenizer, names, batch_size=settings.batch_size,
                                    bucket_batches=settings.bucket_batches, shuffle=True,
                                    seed=seed)}
    for name in ("valid", "test"):
        # Shortest sentences first: a scoring pass only sums over its sentences, so their order
        # is free, and batches of one length carry no padding. In corpus order a third of the
        # Yelp positions were padding, each one a softmax over 9k words.
        split = splits[name]
        by_length = split.select(np.argsort(dataset_lengths(split), kind="stable"))
        loaders[name] = make_loader(by_length, tokenizer, names,
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
    (folder / REPORT_FILE).unlink(missing_ok=True)  # no complete set while the files change
    models = {"classifier": judges.classifier, "lm": judges.lm}
    for kind, model in models.items():
        path = folder / _FILES[kind]
        if model is None:
            path.unlink(missing_ok=True)
            continue
        meta = _judge_meta(kind, tokenizer=judges.tokenizer, settings=judges.settings,
                           seed=judges.seed, attributes=judges.attributes,
                           report=judges.report.get(kind) or {},
                           corpus=judges.report.get("corpus"))
        _save(path, {"state_dict": _cpu_state(model), "meta": meta})
    _write_report(judges, folder)
    return folder


def _write_report(judges: Judges, folder: Path) -> None:
    """judges.json, written last: its presence means that both judge files are complete."""
    judges.report = {**judges.report, "files": {
        "classifier": CLASSIFIER_FILE if judges.classifier is not None else None,
        "lm": LM_FILE}}
    write_json_atomic(folder / REPORT_FILE, judges.report)
    log.info("judges saved to %s", folder)


def _judge_meta(kind: str, *, tokenizer: Tokenizer, settings: JudgeSettings, seed: int,
                attributes: Mapping[str, list[str]], report: Mapping[str, Any],
                corpus: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `meta` of a judge file: what it was made from, and its own part of the report (so
    that a judge file reused without the judges.json of its time still has its scores)."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "special_ids": _special_ids(tokenizer),
        "settings": settings.to_dict(),
        "seed": seed,
        "attributes": dict(attributes),
        "corpus": dict(corpus) if corpus is not None else None,
        "report": dict(report),
    }


def _reusable(path: Path, wanted: Mapping[str, Any], tokenizer: Tokenizer,
              settings: JudgeSettings, device: str | torch.device
              ) -> tuple[nn.Module, dict[str, Any]] | None:
    """The judge saved at `path` and its report when it was made as `wanted` (a `_judge_meta`)
    would make it now; else None (and a log line saying why it is trained again)."""
    kind = wanted["kind"]
    if not path.is_file():
        return None
    try:
        state = _read(path, kind, tokenizer)
        meta = state["meta"]
        saved = JudgeSettings.from_dict(meta["settings"], str(path))
    except (CheckpointError, ConfigError, KeyError, TypeError) as error:
        log.info("judge %s: not reusing %s (%s); training it again", _NAMES[kind], path,
                 str(error).splitlines()[0])
        return None
    differences = [key for key in ("seed", "attributes", "corpus")
                   if meta.get(key) != wanted[key]]
    differences += [key for key, value in settings.of(kind).items()
                    if saved.of(kind)[key] != value]
    if not meta.get("report"):
        differences.append("report")
    if differences:
        log.info("judge %s: %s was made with another %s; training it again", _NAMES[kind],
                 path, ", ".join(differences))
        return None
    device = resolve_device(device)
    if kind == "classifier":
        model: nn.Module = NgramClassifier(
            vocab_size=tokenizer.vocab_size, num_classes=[len(c) for c in wanted["attributes"]
                                                          .values()],
            settings=settings, bos_id=tokenizer.bos_id)
    else:
        model = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                                 pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id)
    _load_weights(model, state, path)
    model.to(device).eval()
    log.info("judge %s: reusing %s, trained earlier with the same tokenizer, seed, corpus and "
             "settings", _NAMES[kind], path)
    return model, dict(meta["report"])


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
    device = resolve_device(device)
    run_sha256 = _run_tokenizer_sha256(run_dir)
    lm_state = _read(folder / LM_FILE, "lm", tokenizer, run_sha256)
    meta = lm_state["meta"]
    lm_settings = JudgeSettings.from_dict(meta["settings"], str(folder / LM_FILE))
    # The set's settings are those it was asked for (judges.json); a judge reused from an
    # earlier call was made with the same settings of its own (JudgeSettings.of), not all.
    settings = (JudgeSettings.from_dict(report["settings"], str(report_path))
                if isinstance(report.get("settings"), dict) else lm_settings)
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in meta["attributes"].items()}
    lm = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=lm_settings,
                          pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id)
    _load_weights(lm, lm_state, folder / LM_FILE)
    classifier = None
    if files.get("classifier"):
        state = _read(folder / CLASSIFIER_FILE, "classifier", tokenizer, run_sha256)
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
                  progress: bool = True, loaded: LoadedCorpus | None = None) -> Judges:
    """The run's judges: loaded when judges/ holds them, else trained (and saved) first.

    Judges trained with another seed or other settings than asked for are refused rather than
    silently used: a report must state the judges it was measured with. Delete judges/ to
    retrain.
    """
    if not (judges_dir(run_dir) / REPORT_FILE).is_file():
        if tokenizer is not None and tokenizer != Tokenizer.load(run_dir):
            raise CheckpointError(f"the tokenizer given is not the one of {run_dir}, which its "
                                  "judges are trained with: the model to judge comes from another "
                                  "run; judge it with its own run folder")
        log.info("no complete set of judges in %s: training them (a judge file finished "
                 "earlier is reused where it fits)", judges_dir(run_dir))
        return train_judges(run_dir, seed=seed, settings=settings, device=device,
                            progress=progress, loaded=loaded)
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


def _run_tokenizer_sha256(run_dir: str | Path) -> str | None:
    """sha256 of the run folder's tokenizer.model (as Tokenizer.sha256), None without one."""
    path = Path(run_dir) / TOKENIZER_MODEL_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _read(path: Path, kind: str, tokenizer: Tokenizer,
          run_sha256: str | None = None) -> dict[str, Any]:
    """torch.load(weights_only=True) of a judge file, checked against the tokenizer.

    `run_sha256`, the run folder's own tokenizer, tells which side of a mismatch is foreign:
    judges made with it are valid, and it is the tokenizer given (a model of another run) that
    does not belong here."""
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
    if meta["tokenizer_sha256"] != tokenizer.sha256 and meta["tokenizer_sha256"] == run_sha256:
        raise CheckpointError(
            f"the judges in {path.parent} were trained with the run folder's tokenizer "
            f"({run_sha256[:12]}...), the model to judge with another tokenizer "
            f"({tokenizer.sha256[:12]}...): it comes from another run, whose ids mean other "
            "words here. The judges are valid; judge the model with its own run folder")
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


def _limit_text(seconds: float) -> str:
    return f" or {seconds:g} s" if seconds > 0 else ""


def _stop_text(training: Mapping[str, Any], time_limit: float) -> str:
    """How a judge's training ended, for its last log line."""
    if training["stopped_by"] == "time_limit":
        return (f"stopped by the time limit of {time_limit:g} s in epoch "
                f"{training['epochs_run']}")
    if training["stopped_by"] == "patience":
        return f"stopped early after epoch {training['epochs_run']}"
    return f"{training['epochs_run']} epochs"


def _check_text(check: Mapping[str, Any] | None) -> str:
    if check is None:
        return ""
    return (f"; {check['sentences']} test sentences, real order per-token NLL "
            f"{check['real_nll']:.3f} against {check['shuffled_nll']:.3f} shuffled, real "
            f"better in {check['real_better']:.1%}")
