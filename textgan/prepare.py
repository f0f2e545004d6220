"""Everything a training stage needs before its first step: corpus, tokenizer, batches.

    data = prepare_data(cfg, paths)   # loads the corpus, trains or loads the run's tokenizer

The tokenizer is trained once per run folder, on the training split, and stored there; every
later stage and every resume loads that file, so ids never change under a checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets
import torch
from torch.utils.data import DataLoader

from textgan.checkpoint import RunPaths
from textgan.config import Config
from textgan.corpora import Corpus, load_corpus
from textgan.data import make_loader, tokenize_corpus
from textgan.errors import CorpusError
from textgan.parallel import main_process_first, rank, world_size
from textgan.tokenizer import Tokenizer, train_tokenizer

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    corpus: Corpus
    tokenizer: Tokenizer
    splits: datasets.DatasetDict        # tokenised: ids (EOS included), length, labels
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
    if paths.tokenizer.is_file():
        tokenizer = Tokenizer.load(paths.root)
        log.info("tokenizer: %s (vocab %d, from the run folder)", paths.tokenizer,
                 tokenizer.vocab_size)
    else:
        tokenizer = train_tokenizer(corpus.splits["train"]["text"], cfg.tokenizer, seed=cfg.seed)
        tokenizer.save(paths.root)
        log.info("tokenizer saved to %s", paths.tokenizer)
    splits, _ = tokenize_corpus(corpus, tokenizer, cfg.data.max_tokens)
    for split in ("train", "valid"):
        if len(splits[split]) == 0:
            raise CorpusError(f"the {split} split is empty after tokenisation (data.max_tokens="
                              f"{cfg.data.max_tokens}); raise data.max_tokens or add sentences")
    pin = device.type == "cuda"
    loaders = {
        split: make_loader(splits[split], tokenizer, list(corpus.attributes),
                           batch_size=cfg.data.batch_size, bucket_batches=cfg.data.bucket_batches,
                           shuffle=split == "train", seed=cfg.seed, pin_memory=pin)
        for split in ("train", "valid")
    }
    return PreparedData(corpus=corpus, tokenizer=tokenizer, splits=splits,
                        train_loader=loaders["train"], valid_loader=loaders["valid"])
