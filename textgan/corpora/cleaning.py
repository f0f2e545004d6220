"""Cleaning raw sentences: normalise, optionally split, filter by length, dedupe; with counts.

For every sentence, in this order:

1. whitespace normalisation: runs of whitespace (any Unicode space, tabs, newlines) become one
   space, and the ends are stripped; then lowercasing if data.lowercase;
2. sentence splitting if data.split_sentences (see `split_sentences`); each piece keeps the
   labels of its text;
3. filters: "empty" (nothing left), "too_short" (fewer than data.min_words whitespace words),
   "too_long" (more than data.max_words; 0 = no limit);
4. deduplication if data.dedupe: the first occurrence of a sentence is kept. The Cleaner remembers
   what it has seen across calls, and the loader cleans train, then valid, then test, then the
   extra unlabelled files, so a test sentence never also appears in train and an unlabelled copy
   never displaces a labelled one.

Everything runs through `Dataset.map(batched=True)`, so it streams over arrow files that may be
larger than memory; rows are dropped inside the map, not with `filter` (see raw.keep_rows).
Counts are read from the results (a column of drop reasons, lengths before and after), never
from side effects of the mapped function, because datasets may answer a map from its cache
without calling the function. Dedupe keeps 8-byte blake2b digests, not strings (a collision,
about n^2 / 2^65, would drop one sentence wrongly), in sorted numpy arrays (`digests`): 8 bytes
of memory a sentence.
"""

from __future__ import annotations

import hashlib
import logging
import re

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from textgan.config import DataConfig
from textgan.corpora.bars import datasets_bars
from textgan.corpora.corpus import TEXT, CleaningReport
from textgan.corpora.digests import SeenDigests
from textgan.corpora.raw import keep_rows, value_counts

logger = logging.getLogger(__name__)

DROP = "__textgan_drop__"  # why a row goes: one of the codes below (KEEP stays)
KEEP, EMPTY, TOO_SHORT, TOO_LONG = 0, 1, 2, 3
REASONS = {EMPTY: "empty", TOO_SHORT: "too_short", TOO_LONG: "too_long"}
DUPLICATE = "duplicate"

# A sentence ends at '.', '!' or '?', optionally followed by one closing quote or bracket, when
# whitespace follows. Works on raw and on tokenised text ("it was good . i liked it ."). Known
# limit of so simple a rule: abbreviations ("Mr. Smith", "e.g. this") are split too.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")


def normalise(text: str | None, lowercase: bool) -> str:
    text = " ".join((text or "").split())
    return text.lower() if lowercase else text


def split_sentences(text: str) -> list[str]:
    """'I came. It rained!  Bye' -> ['I came.', 'It rained!', 'Bye'] (see _SENTENCE_BREAK)."""
    return [piece for piece in _SENTENCE_BREAK.split(text) if piece]


def drop_reason(text: str, min_words: int, max_words: int) -> int:
    if not text:
        return EMPTY
    words = text.count(" ") + 1  # normalised text: exactly one space between words
    if words < min_words:
        return TOO_SHORT
    if max_words and words > max_words:
        return TOO_LONG
    return KEEP


def _normalise_batch(batch: dict[str, list], lowercase: bool, split: bool, min_words: int,
                     max_words: int) -> dict[str, list]:
    """Normalised (and split) rows, each with its drop reason; other columns copied along."""
    out: dict[str, list] = {name: [] for name in batch}
    out[DROP] = []
    others = [name for name in batch if name != TEXT]
    for row, raw in enumerate(batch[TEXT]):
        text = normalise(raw, lowercase)
        pieces = split_sentences(text) if split and text else [text]
        for piece in pieces:
            out[TEXT].append(piece)
            out[DROP].append(drop_reason(piece, min_words, max_words))
            for name in others:
                out[name].append(batch[name][row])
    return out


def _drop_marked(batch: dict[str, list]) -> dict[str, list]:
    kept = keep_rows(batch, [code == KEEP for code in batch[DROP]])
    del kept[DROP]
    return kept


class Cleaner:
    """Cleans raw datasets one after another, sharing the dedupe memory and the report."""

    def __init__(self, cfg: DataConfig, report: CleaningReport) -> None:
        self.cfg = cfg
        self.report = report
        self._seen = SeenDigests()
        # fingerprints of what was deduped before: the result of deduping a dataset depends on
        # them, so they go into the fingerprint of the result (and of everything derived from it)
        self._history: list[str] = []

    def clean(self, ds: datasets.Dataset, name: str) -> datasets.Dataset:
        """The cleaned rows of `ds`; `name` (e.g. "train") labels progress bars and logs."""
        cfg = self.cfg
        before = len(ds)
        if before == 0:
            # nothing to clean, and datasets never calls a map's function on no rows, so the
            # DROP column the next steps read would not exist
            return ds
        with datasets_bars(before):
            marked = ds.map(
                _normalise_batch, batched=True, desc=f"textgan: cleaning {name}",
                fn_kwargs={"lowercase": cfg.lowercase, "split": cfg.split_sentences,
                           "min_words": cfg.min_words, "max_words": cfg.max_words},
                features=datasets.Features({**ds.features, DROP: datasets.Value("int8")}))
            if len(marked) != before:
                self.report.added += len(marked) - before
                logger.info("%s: sentence splitting turned %d texts into %d sentences", name,
                            before, len(marked))
            for code, count in value_counts(marked, DROP).items():
                if code != KEEP:
                    self._count(REASONS[code], count)
            kept = marked.map(_drop_marked, batched=True, remove_columns=marked.column_names,
                              features=ds.features, desc=f"textgan: filtering {name}")
            if cfg.dedupe:
                kept = self._dedupe(kept, name)
        return kept

    def _dedupe(self, ds: datasets.Dataset, name: str) -> datasets.Dataset:
        # ds._fingerprint is private but stable, and datasets offers no public accessor
        fingerprint = Hasher.hash(["textgan-dedupe-v1", ds._fingerprint, self._history])
        self._history.append(ds._fingerprint)
        before = len(ds)
        # load_from_cache_file=False: the function must run to fill self._seen for later splits;
        # new_fingerprint: hashing the method would pickle the whole set of seen digests
        kept = ds.map(self._first_seen, batched=True, remove_columns=ds.column_names,
                      features=ds.features, load_from_cache_file=False,
                      new_fingerprint=fingerprint, desc=f"textgan: deduplicating {name}")
        self._count(DUPLICATE, before - len(kept))
        return kept

    def _first_seen(self, batch: dict[str, list]) -> dict[str, list]:
        digests = np.frombuffer(b"".join(
            hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
            for text in batch[TEXT]), dtype="<u8")
        return keep_rows(batch, self._seen.first_seen(digests).tolist())

    def _count(self, reason: str, count: int) -> None:
        if count:
            self.report.dropped[reason] = self.report.dropped.get(reason, 0) + count


def describe_drops(report: CleaningReport, cfg: DataConfig) -> str:
    """'4 empty, 6 too_long (max_words=5)': which filters removed what, with their settings."""
    settings = {"too_short": f"min_words={cfg.min_words}", "too_long": f"max_words={cfg.max_words}",
                "undecodable": "on_decode_error='skip'", DUPLICATE: "dedupe=true"}
    parts = [f"{count} {reason}" + (f" ({settings[reason]})" if reason in settings else "")
             for reason, count in sorted(report.dropped.items()) if count]
    return ", ".join(parts) or "nothing"
