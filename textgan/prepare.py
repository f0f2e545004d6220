"""Everything a training stage needs before its first step: corpus, tokenizer, batches.

    data = prepare_data(cfg, paths)   # loads the corpus, trains or loads the run's tokenizer

The tokenizer is trained once per run folder, on the training split, and stored there; every
later stage and every resume loads that file, so ids never change under a checkpoint.

Semi-supervised runs (data.label_fraction < 1 or data.labelled_sentences > 0) hide the labels of
the training sentences outside a class-balanced subset here, on the tokenised training split the
stages train on (`corpora.label_subset`): both stages and every resume see the same subset, while
`PreparedData.corpus`, valid and test, and the evaluation judges (which load the corpus
themselves) keep every label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets
import torch
from torch.utils.data import DataLoader

from textgan.config import Config, DataConfig
from textgan.corpora import MISSING_LABEL, Corpus, load_corpus
from textgan.corpora.label_subset import choose_labelled, hide_labels, kept_per_class, label_matrix
from textgan.data import make_loader
from textgan.errors import CorpusError
from textgan.parallel import main_process_first, rank, world_size
from textgan.runs import RunPaths, tokenise_corpus
from textgan.tokenizer import Tokenizer, train_tokenizer

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    corpus: Corpus
    tokenizer: Tokenizer
    # tokenised: ids (EOS included), length, labels; in a semi-supervised run the training
    # labels outside the kept subset are MISSING_LABEL (corpus.splits keeps them all)
    splits: datasets.DatasetDict
    train_loader: DataLoader
    valid_loader: DataLoader

    @property
    def num_classes(self) -> list[int]:
        return [len(values) for values in self.corpus.attributes.values()]

    @property
    def attribute_names(self) -> list[str]:
        return list(self.corpus.attributes)


def prepare_data(cfg: Config, paths: RunPaths, *, device: torch.device) -> PreparedData:
    """In a data-parallel run, rank 0 prepares first (a synthetic corpus is generated and the
    tokenizer trained once, on disk), then the others load them; each process's loaders yield
    its share of every global batch (`parallel` module doc)."""
    data = main_process_first(lambda: _prepare(cfg, paths, device=device))
    for loader in (data.train_loader, data.valid_loader):
        loader.batch_sampler.shard(rank(), world_size())
    return data


def _prepare(cfg: Config, paths: RunPaths, *, device: torch.device) -> PreparedData:
    corpus = load_corpus(cfg.data)
    if "valid" in corpus.empty_splits:  # empty before tokenising: say why, not max_tokens
        raise CorpusError(corpus.empty_splits["valid"])
    _refuse_subset_without_labels(cfg.data, corpus)  # before the tokenizer costs any time
    if paths.tokenizer.is_file():
        tokenizer = Tokenizer.load(paths.root)
        log.info("tokenizer: %s (vocab %d, from the run folder)", paths.tokenizer,
                 tokenizer.vocab_size)
    else:
        tokenizer = train_tokenizer(corpus.splits["train"]["text"], cfg.tokenizer, seed=cfg.seed)
        tokenizer.save(paths.root)
        log.info("tokenizer saved to %s", paths.tokenizer)
    splits = tokenise_corpus(corpus, tokenizer, cfg.data).splits
    for split in ("train", "valid"):
        if len(splits[split]) == 0:
            raise CorpusError(f"the {split} split is empty after tokenisation (data.max_tokens="
                              f"{cfg.data.max_tokens}); raise data.max_tokens or add sentences")
    splits["train"] = _keep_training_labels(splits["train"], corpus, cfg.data)
    pin = device.type == "cuda"
    loaders = {
        split: make_loader(splits[split], tokenizer, list(corpus.attributes),
                           batch_size=cfg.data.batch_size, bucket_batches=cfg.data.bucket_batches,
                           shuffle=split == "train", seed=cfg.seed, pin_memory=pin)
        for split in ("train", "valid")
    }
    return PreparedData(corpus=corpus, tokenizer=tokenizer, splits=splits,
                        train_loader=loaders["train"], valid_loader=loaders["valid"])


def _wants_subset(data: DataConfig) -> bool:
    return data.label_fraction < 1.0 or data.labelled_sentences > 0


def _subset_setting(data: DataConfig) -> str:
    """The setting that sizes the subset, as a user writes it (labelled_sentences wins)."""
    if data.labelled_sentences > 0:
        return f"data.labelled_sentences={data.labelled_sentences}"
    return f"data.label_fraction={data.label_fraction:g}"


def _refuse_subset_without_labels(data: DataConfig, corpus: Corpus) -> None:
    if _wants_subset(data) and not corpus.attributes:
        raise CorpusError(f"{_subset_setting(data)} keeps the labels of some training sentences, "
                          f"but the corpus {data.source} has no labels; set "
                          "data.label_fraction=1 and data.labelled_sentences=0, or name its label "
                          "columns in data.label_columns")


def _keep_training_labels(train: datasets.Dataset, corpus: Corpus,
                          data: DataConfig) -> datasets.Dataset:
    """The training split with the labels outside the semi-supervised subset hidden; the split
    itself, untouched, when every label is kept (label_fraction 1, labelled_sentences 0)."""
    if not _wants_subset(data):
        return train
    labels = label_matrix(train, corpus.attribute_names)
    keep = choose_labelled(labels, fraction=data.label_fraction, count=data.labelled_sentences,
                           seed=data.split_seed)
    labelled = int((labels != MISSING_LABEL).any(axis=1).sum())
    kept = int(keep.sum())
    in_all = f"; {len(train):,} training sentences in all" if labelled < len(train) else ""
    log.info("labels kept for %s of %s training sentences (%.1f%%, %s%s): %s", f"{kept:,}",
             f"{labelled:,}", 100 * kept / labelled, _subset_setting(data), in_all,
             kept_per_class(labels, keep, corpus.attributes))
    if kept == labelled:
        return train  # the subset is every labelled sentence: nothing to hide
    return hide_labels(train, corpus.attribute_names, keep,
                       tag=[data.label_fraction, data.labelled_sentences, data.split_seed])
