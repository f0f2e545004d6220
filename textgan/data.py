"""Tokenised datasets, length-bucketed batching and the `Batch` every engine step receives.

    tokenized, dropped = tokenize_corpus(corpus, tokenizer, max_tokens=cfg.data.max_tokens)
    loader = make_loader(tokenized["train"], tokenizer, corpus.attribute_names,
                         batch_size=cfg.data.batch_size, bucket_batches=cfg.data.bucket_batches,
                         shuffle=True, seed=cfg.seed)
    loader.batch_sampler.set_epoch(epoch)   # optional: each pass also advances the epoch
                                            # (handlers.attach_sampler_epochs calls it)
    for batch in loader: ...                # Batch(tokens, lengths, labels, label_mask,
                                            #       host_lengths)

Tokenise once, pad per batch: `tokenize_corpus` runs one batched `datasets.map` per split, which
adds `ids` (subword ids followed by EOS) and `length` and drops sentences longer than
`max_tokens`. On a file-backed (memory-mapped) corpus the result is written to arrow cache files
beside it and stays memory-mapped, so corpora larger than memory work; an in-memory corpus
stays in memory. The "text" column is kept: evaluation and sampling need the original sentences
(BLEU references, transfer sources) aligned with the ids, and the loader never reads it.

Batches are length-bucketed (`BucketBatchSampler`): sentences of similar length share a batch,
so little of each batch is padding, and the order of the batches is random.

Tokenising the training split also measures the share of its tokens that became `<unk>` (on the
ids just written, one vectorised count): logged at INFO, and as a WARNING above `_LOUD_UNK_SHARE`
with the tokenizer settings that fix it. `fixed_sample` bounds a split to a seeded sample of its
rows, the same whatever the epoch or process (the stages validate on one with data.valid_sample).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Sampler

from textgan.corpora.bars import datasets_bars
from textgan.corpora.corpus import MISSING_LABEL, TEXT, Corpus
from textgan.errors import CorpusError
from textgan.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

IDS = "ids"
LENGTH = "length"
# Sentences per `map` batch: big enough that the per-batch Python overhead vanishes next to
# sentencepiece's batch encoding, small enough to keep one batch's Python strings cheap.
_MAP_BATCH = 10_000
# Above this share of a split dropped for length, tokenising warns: the model would train on a
# biased part of the corpus (the short sentences), which a log line at INFO level hides.
_LOUD_DROP_SHARE = 0.10
# Above this share of the training tokens being <unk>, tokenising warns: the model then learns to
# write <unk> for a good part of its words (measured on the Yelp reviews: 16% with a word model
# of 400 pieces, 2.0% with 4000, 0% with unigram), while the synthetic corpus's word model covers
# every training word (0%).
_LOUD_UNK_SHARE = 0.02


# --------------------------------------------------------------------------- the batch


class Batch(NamedTuple):
    """One batch of sentences, right-padded. B = sentences, T = longest length, A = attributes."""

    tokens: torch.Tensor      # (B, T) int64: subword ids then EOS, then pad_id to T
    lengths: torch.Tensor     # (B,) int64: real tokens per sentence, EOS included
    labels: torch.Tensor      # (B, A) int64: class index, MISSING_LABEL (-1) where unknown
    label_mask: torch.Tensor  # (B, A) bool: True where the label is known
    # (B,) int64 on the CPU, whatever device the rest is on: the lengths the encoder's
    # pack_padded_sequence needs there, kept so that packing never waits for a GPU. None: take
    # `lengths` (read from the device if it lives on one).
    host_lengths: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The four tensors on device; host_lengths stays on the CPU."""
        moved = (t.to(device, non_blocking=non_blocking) for t in self[:4])
        return Batch(*moved, host_lengths=self.lengths_on_host())

    def lengths_on_host(self) -> torch.Tensor:
        """(B,) int64 on the CPU: host_lengths, or lengths copied there."""
        if self.host_lengths is not None:
            return self.host_lengths
        return self.lengths.to(device="cpu", dtype=torch.int64)

    @property
    def num_tokens(self) -> int:
        """Real (non-pad) tokens in the batch, EOS included: the denominator of per-token loss."""
        return int(self.lengths_on_host().sum())

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]


def collate(rows: Sequence[dict[str, Any]], *, pad_id: int,
            attribute_names: Sequence[str]) -> Batch:
    """Rows of a tokenised dataset (`ids` as lists, arrays or tensors, one int per attribute)."""
    sequences = [torch.as_tensor(row[IDS], dtype=torch.int64) for row in rows]
    tokens = pad_sequence(sequences, batch_first=True, padding_value=pad_id)  # (B, T)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)   # (B,)
    labels = torch.tensor([[int(row[name]) for name in attribute_names] for row in rows],
                          dtype=torch.int64).reshape(len(rows), len(attribute_names))  # (B, A)
    return Batch(tokens, lengths, labels, labels != MISSING_LABEL, host_lengths=lengths)


# --------------------------------------------------------------------------- tokenising


def tokenize_corpus(corpus: Corpus, tokenizer: Tokenizer, max_tokens: int
                    ) -> tuple[datasets.DatasetDict, dict[str, int]]:
    """Add `ids` (ids + EOS, int32) and `length` to every split; drop sentences over max_tokens.

    Returns the tokenised splits (every original column kept) and, per split, how many
    sentences were dropped for being longer than max_tokens (EOS counted).
    """
    if max_tokens < 1:
        raise CorpusError(f"max_tokens must be at least 1 (room for EOS), got {max_tokens}")
    clash = {IDS, LENGTH} & set(corpus.attribute_names)
    if clash:
        raise CorpusError(f"attribute name(s) {sorted(clash)} collide with the columns the "
                          "tokenised dataset adds; rename the attribute(s)")
    tokenized: dict[str, datasets.Dataset] = {}
    dropped: dict[str, int] = {}
    for name, split in corpus.splits.items():
        if TEXT not in split.column_names:
            raise CorpusError(f"split '{name}' has no '{TEXT}' column")
        features = split.features.copy()
        for column in (IDS, LENGTH):
            features.pop(column, None)  # tokenising twice replaces, never duplicates
        features[IDS] = datasets.List(datasets.Value("int32"))
        features[LENGTH] = datasets.Value("int32")
        # Arrow in, arrow out: only the text becomes Python strings; the label columns are
        # filtered as arrow arrays. Filtering inside the same map (a batched map may return
        # fewer rows) writes the result once, without the indices mapping `filter` would add.
        # a bar only where it helps: a large split on a terminal (corpora.bars)
        with datasets_bars(len(split)):
            result = split.with_format("arrow").map(
                _tokenize_batch, batched=True, batch_size=_MAP_BATCH,
                fn_kwargs={"tokenizer": tokenizer, "max_tokens": max_tokens},
                remove_columns=split.column_names, features=features,
                desc=f"tokenising {name}").with_format(None)
        tokenized[name] = result
        dropped[name] = len(split) - len(result)
        share = dropped[name] / len(split) if len(split) else 0.0
        logger.info("tokenised %s: %d sentences kept, %d dropped as longer than %d tokens "
                    "(%.1f%%)", name, len(result), dropped[name], max_tokens, 100 * share)
        if share > _LOUD_DROP_SHARE:
            logger.warning("%.0f%% of the %s split is longer than data.max_tokens=%d subword "
                           "tokens and was dropped: raise data.max_tokens, or give the tokenizer "
                           "more or longer pieces (tokenizer.vocab_size, tokenizer.model_type)",
                           100 * share, name, max_tokens)
        if name == "train" and len(split) and not len(result):
            raise CorpusError(f"every training sentence is longer than data.max_tokens="
                              f"{max_tokens} subword tokens (EOS included); raise it")
        if name == "train":
            _report_unknown(result, tokenizer)
    return datasets.DatasetDict(tokenized), dropped


def unknown_share(dataset: datasets.Dataset, unk_id: int) -> tuple[int, int]:
    """(<unk> tokens, tokens) of a tokenised split, EOS not counted (it is never <unk>).

    Counted on the `ids` column as arrow arrays, not by encoding the text again: a flat view of
    the (memory-mapped) ids and one comparison, so it costs little next to the tokenising.
    """
    table = dataset.select_columns([IDS]).with_format("arrow")[:]  # respects select/shuffle
    values = pc.list_flatten(table.column(IDS))
    unknown = pc.sum(pc.equal(values, unk_id)).as_py() or 0
    return int(unknown), len(values) - len(dataset)


def _report_unknown(train: datasets.Dataset, tokenizer: Tokenizer) -> None:
    unknown, total = unknown_share(train, tokenizer.unk_id)
    share = unknown / total if total else 0.0
    if share > _LOUD_UNK_SHARE:
        logger.warning("%.1f%% of the training tokens are <unk> (%d of %d: words or characters "
                       "outside the %d-piece vocabulary), which the model would learn to write: "
                       "raise tokenizer.vocab_size, or use tokenizer.model_type=unigram or bpe "
                       "(they spell unseen words with known pieces), or set "
                       "tokenizer.byte_fallback=true (unseen characters as bytes)",
                       100 * share, unknown, total, tokenizer.vocab_size)
    else:
        logger.info("tokenised train: %.2f%% of the tokens are <unk> (%d of %d)", 100 * share,
                    unknown, total)


def _tokenize_batch(batch: pa.Table, *, tokenizer: Tokenizer, max_tokens: int) -> pa.Table:
    """One map batch: encode the texts, append EOS, keep the rows that fit in max_tokens."""
    for column in (IDS, LENGTH):
        if column in batch.column_names:
            batch = batch.drop_columns([column])
    encoded = tokenizer.encode(batch.column(TEXT).to_pylist())
    lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
    keep = lengths <= max_tokens
    kept_lengths = lengths[keep]
    offsets = np.zeros(len(kept_lengths) + 1, dtype=np.int64)
    np.cumsum(kept_lengths, out=offsets[1:])
    # Flat values: every kept sentence's ids, then its EOS at offsets[i+1] - 1.
    values = np.empty(int(offsets[-1]), dtype=np.int32)
    is_eos = np.zeros(len(values), dtype=bool)
    is_eos[offsets[1:] - 1] = True
    values[is_eos] = tokenizer.eos_id
    values[~is_eos] = np.fromiter(
        (i for ids, k in zip(encoded, keep) if k for i in ids), dtype=np.int32,
        count=int(kept_lengths.sum() - len(kept_lengths)))
    ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
    return (batch.filter(pa.array(keep))
            .append_column(IDS, ids)
            .append_column(LENGTH, pa.array(kept_lengths.astype(np.int32))))


# --------------------------------------------------------------------------- batching


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices, length-bucketed; every index once per epoch.

    shuffle=True: the indices are permuted by a generator seeded with (seed, epoch), cut into
    chunks of batch_size * bucket_batches, each chunk is sorted by length and cut into batches,
    and the order of all batches is shuffled. bucket_batches=1 is plain random batching.
    shuffle=False: consecutive batches in corpus order, so that evaluation and sampling outputs
    line up with the dataset's rows (dataset["text"][i]); evaluation does no backward pass,
    where padding costs most, and `padding_fraction` says what it costs.

    Each `iter()` uses the current epoch and then advances it, so a loop that never calls
    `set_epoch` still sees a new order every epoch; `set_epoch(e)` makes the next pass use
    epoch e's order, and `set_epoch(e, skip_batches=k)` makes it start at that order's batch k
    (a run resumed mid-epoch then sees exactly the batches an uninterrupted run would have).
    The order depends only on (seed, epoch). `len()` is always a whole epoch's batch count.

    Data-parallel runs (`shard(rank, world_size)`): every process computes the same global
    batches and yields its share `batch[rank::world_size]` of each (sorted batches give every
    share similar lengths). A global batch with fewer sentences than processes (only the last
    can be that short) is skipped by all, so every process runs the same number of steps.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, bucket_batches: int,
                 shuffle: bool, seed: int, drop_last: bool = False) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1:
            raise ValueError(f"lengths must be one-dimensional, got shape {lengths.shape}")
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError(f"batch_size ({batch_size}) and bucket_batches ({bucket_batches}) "
                             "must be at least 1")
        self.lengths = lengths
        self.batch_size = batch_size
        self.bucket_batches = bucket_batches
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._skip = 0
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> BucketBatchSampler:
        """Yield this process's share of every global batch from now on (see the class doc)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size
        return self

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """The next pass uses this epoch's order, starting after its first skip_batches."""
        if not 0 <= skip_batches <= len(self):
            raise ValueError(f"skip_batches must be between 0 and {len(self)} (the batches in an "
                             f"epoch), got {skip_batches}")
        self.epoch = epoch
        self._skip = skip_batches

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.drop_last:
            return n // self.batch_size
        short = n % self.batch_size  # the last batch's size when it is short
        too_short = 0 < short < self.world_size  # skipped by every process
        return math.ceil(n / self.batch_size) - too_short

    def __iter__(self) -> Iterator[list[int]]:
        # Computed now, not lazily: the epoch is bound when the DataLoader asks for the iterator.
        order, starts, ends = self.batches(self.epoch)
        skip, self._skip = self._skip, 0  # a skip applies to one pass only
        self.epoch += 1
        rank, size = self.rank, self.world_size
        kept = ends - starts >= size
        starts, ends = starts[kept][skip:].tolist(), ends[kept][skip:].tolist()
        return (order[s:e][rank::size].tolist() for s, e in zip(starts, ends))

    def batches(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(order, starts, ends): batch i is order[starts[i]:ends[i]], in the epoch's order."""
        n = len(self.lengths)
        used = len(self) * self.batch_size if self.drop_last else n
        if not self.shuffle:
            starts = np.arange(0, used, self.batch_size, dtype=np.int64)
            return np.arange(n, dtype=np.int64), starts, np.minimum(starts + self.batch_size, used)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        # Sort by (chunk, length) in one stable argsort; ties keep the random order.
        chunk = np.arange(n, dtype=np.int64) // (self.batch_size * self.bucket_batches)
        key = chunk * (int(self.lengths.max(initial=0)) + 1) + self.lengths[order]
        order = order[np.argsort(key, kind="stable")]
        # Chunks hold whole batches, so cutting every batch_size never straddles two chunks;
        # only the very last batch can be short (dropped with drop_last).
        starts = np.arange(0, used, self.batch_size, dtype=np.int64)
        starts = starts[rng.permutation(len(starts))]
        return order, starts, np.minimum(starts + self.batch_size, used)

    def padding_fraction(self, epoch: int | None = None) -> float:
        """Share of the padded (B, T) positions that are padding over one epoch's batches."""
        order, starts, ends = self.batches(self.epoch if epoch is None else epoch)
        if not len(starts):
            return 0.0
        by_position = np.argsort(starts)  # reduceat needs increasing offsets
        starts, ends = starts[by_position], ends[by_position]
        lengths = self.lengths[order[:ends.max()]]
        longest = np.maximum.reduceat(lengths, starts)
        total = int((longest * (ends - starts)).sum())
        return 1.0 - int(lengths.sum()) / total if total else 0.0


def padding_fraction(source: BucketBatchSampler | DataLoader | Iterable[Sequence[int]],
                     epoch: int | None = None) -> float:
    """Padding share of an epoch: of a sampler, a loader built by `make_loader`, or of the
    lengths of each batch (an iterable of per-batch length lists). Needs no collating."""
    if isinstance(source, DataLoader):
        source = source.batch_sampler
    if isinstance(source, BucketBatchSampler):
        return source.padding_fraction(epoch)
    real = total = 0
    for lengths in source:
        lengths = np.asarray(lengths)
        if len(lengths):
            real += int(lengths.sum())
            total += int(lengths.max()) * len(lengths)
    return 1.0 - real / total if total else 0.0


def dataset_lengths(dataset: datasets.Dataset) -> np.ndarray:
    """The `length` column as an int64 array, read as one column (respects select/shuffle)."""
    column = dataset.select_columns([LENGTH]).with_format("numpy")[:][LENGTH]
    return np.asarray(column, dtype=np.int64)


def fixed_sample(dataset: datasets.Dataset, size: int, seed: int) -> datasets.Dataset:
    """`size` rows of the dataset drawn without replacement, in corpus order; the dataset
    itself when size is 0 or not below its length.

    The rows depend only on (len(dataset), size, seed): every epoch, every resumed run and every
    process of a data-parallel run gets the same ones, so metrics measured on them compare.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0 (0 = every row), got {size}")
    if not size or size >= len(dataset):
        return dataset
    rng = np.random.default_rng([seed, 0x76616C])  # a stream of its own, apart from other seeds
    rows = np.sort(rng.choice(len(dataset), size=size, replace=False))
    return dataset.select(rows)


def make_loader(dataset: datasets.Dataset, tokenizer: Tokenizer,
                attribute_names: Sequence[str], *, batch_size: int, bucket_batches: int,
                shuffle: bool, seed: int, num_workers: int = 0, drop_last: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader of `Batch`es over a split from `tokenize_corpus`.

    Its `batch_sampler` is a `BucketBatchSampler` (set_epoch, padding_fraction).
    """
    missing = [c for c in (IDS, LENGTH, *attribute_names) if c not in dataset.column_names]
    if missing:
        raise CorpusError(f"the dataset lacks column(s) {missing}"
                          + (" (run tokenize_corpus first)" if IDS in missing else ""))
    sampler = BucketBatchSampler(dataset_lengths(dataset), batch_size, bucket_batches,
                                 shuffle=shuffle, seed=seed, drop_last=drop_last)
    # Only ids and labels are read per batch; the text stays on disk. With a batch_sampler the
    # DataLoader fetches a batch by `dataset.__getitems__(indices)`: one arrow query per batch.
    rows = dataset.select_columns([IDS, *attribute_names]).with_format(None)
    # Its own generator: a DataLoader draws a base seed each time an iterator is created, and
    # drawing it from torch's global RNG would shift every later random number, so a run that
    # resumes mid-epoch (new iterator) would diverge from one that never stopped.
    loader = DataLoader(
        rows, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed),
        collate_fn=functools.partial(collate, pad_id=tokenizer.pad_id,
                                     attribute_names=tuple(attribute_names)))
    logger.info("loader: %d sentences in %d batches of %d, bucket_batches=%d, shuffle=%s, "
                "padding %.1f%%", len(dataset), len(sampler), batch_size, bucket_batches,
                shuffle, 100 * sampler.padding_fraction())
    return loader
