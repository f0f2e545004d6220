"""Sentencepiece tokenizer: training on the training split, and the `Tokenizer` wrapper.

    tokenizer = train_tokenizer(corpus.splits["train"]["text"], cfg.tokenizer, seed=cfg.seed)
    tokenizer.save(run_dir)                     # tokenizer.model + tokenizer.sha256
    tokenizer = Tokenizer.load(run_dir)         # checks the hash and the special ids

This module is the only place where the special ids are written as numbers. Every other module
reads them from a `Tokenizer` (`tokenizer.pad_id`, ...), so a model trained with other ids can
never be half-used: it is refused when it is loaded.

Determinism: the same sentences, `TokenizerConfig` and seed give a byte-identical model, in any
process. Sentencepiece's own `input_sentence_size` sampling is *not* reproducible across
processes (measured with 0.2.3: a fresh process draws a different sample whatever
`set_random_generator_seed` says), so when the corpus is larger than `input_sentence_size` we
draw the sample here with a seeded numpy generator and hand sentencepiece exactly that.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from textgan.config import TokenizerConfig
from textgan.errors import TokenizerError

logger = logging.getLogger(__name__)

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}

MODEL_FILE = "tokenizer.model"
HASH_FILE = "tokenizer.sha256"
TEXT_COLUMN = "text"  # textgan.corpora.corpus.TEXT; not imported, to keep this module light

# Sentences are pulled from a Dataset in chunks of this many: one arrow->Python conversion per
# chunk instead of per row, while only one chunk of Python strings exists at a time.
_CHUNK = 10_000


# --------------------------------------------------------------------------- the wrapper


class Tokenizer:
    """A sentencepiece model whose special ids are textgan's, with its bytes and their sha256."""

    def __init__(self, model_bytes: bytes) -> None:
        if isinstance(model_bytes, (str, Path)):
            raise TypeError("Tokenizer takes the model's bytes; use Tokenizer.load(path) for a "
                            "file or folder")
        model_bytes = bytes(model_bytes)  # bytearray/memoryview from a checkpoint
        try:
            processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        except (RuntimeError, OSError, TypeError) as error:
            raise TokenizerError(f"not a sentencepiece model ({error})") from None
        _check_special_ids(processor)
        self._bytes = model_bytes
        self._sha256 = hashlib.sha256(self._bytes).hexdigest()
        self._sp = processor

    @classmethod
    def from_bytes(cls, model_bytes: bytes) -> Tokenizer:
        """The tokenizer stored in a checkpoint (special ids checked, as for `load`)."""
        return cls(model_bytes)

    # Pickle as the model bytes: DataLoader workers and `datasets` fingerprinting then see a
    # small, stable state instead of a C++ object.
    def __getstate__(self) -> dict[str, Any]:
        return {"model_bytes": self._bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_bytes"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and other._sha256 == self._sha256

    def __hash__(self) -> int:
        return hash(self._sha256)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, sha256={self._sha256[:12]}...)"

    # ------------------------------------------------------------------ properties

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    @property
    def sha256(self) -> str:
        """Hex sha256 of the model bytes: the tokenizer's identity in checkpoints and reports."""
        return self._sha256

    @property
    def vocab_size(self) -> int:
        return self._sp.vocab_size()

    @property
    def pad_id(self) -> int:
        return self._sp.pad_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    @property
    def processor(self) -> spm.SentencePieceProcessor:
        """The underlying processor, for what this wrapper does not cover (pieces, sampling)."""
        return self._sp

    # ------------------------------------------------------------------ encode / decode

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Ids of each text, without BOS or EOS (the data pipeline appends EOS itself)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        return self._sp.encode(list(texts), add_bos=False, add_eos=False)

    def decode(self, ids: Sequence[Sequence[int]] | Any) -> list[str]:
        """Texts of a batch of id rows (lists, or a (B, T) tensor/array).

        Each row stops at its first EOS; padding, BOS and EOS never show in the text.
        """
        rows = _rows(ids)
        eos = self.eos_id
        cut = []
        for row in rows:
            try:
                cut.append(row[: row.index(eos)])
            except ValueError:  # no EOS: the generator ran out of steps first
                cut.append(row)
        # sentencepiece drops control ids (pad, bos) itself when decoding.
        return self._sp.decode(cut) if cut else []

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write `tokenizer.model` and `tokenizer.sha256` (sha256sum format) into folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        _write_atomic(path, self._bytes)
        # `sha256sum -c tokenizer.sha256` checks the model by hand, too.
        _write_atomic(folder / HASH_FILE, f"{self._sha256}  {MODEL_FILE}\n".encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a run folder's tokenizer or a `.model` file; verify the sha256 file if present."""
        path = Path(path)
        model_path = path / MODEL_FILE if path.is_dir() else path
        if not model_path.is_file():
            raise TokenizerError(f"tokenizer model not found: {model_path}")
        model_bytes = model_path.read_bytes()
        hash_path = model_path.with_suffix(".sha256")
        if hash_path.is_file():
            expected = _read_hash(hash_path)
            actual = hashlib.sha256(model_bytes).hexdigest()
            if actual != expected:
                raise TokenizerError(
                    f"{model_path} does not match {hash_path}: sha256 is {actual}, the hash file "
                    f"says {expected}; the model file was changed or truncated")
        try:
            return cls(model_bytes)
        except TokenizerError as error:
            raise TokenizerError(f"{model_path}: {error}") from None

    def check_compatible(self, sha256: str | None = None, vocab_size: int | None = None, *,
                         what: str = "the checkpoint") -> None:
        """Raise TokenizerError if `what` was built with another tokenizer or vocabulary size."""
        if sha256 is not None and sha256 != self._sha256:
            raise TokenizerError(
                f"{what} was made with another tokenizer (sha256 {sha256[:12]}...) than this one "
                f"({self._sha256[:12]}...); use the tokenizer stored with it")
        if vocab_size is not None and vocab_size != self.vocab_size:
            raise TokenizerError(
                f"{what} expects a vocabulary of {vocab_size} pieces, this tokenizer has "
                f"{self.vocab_size}")


def _rows(ids: Any) -> list[list[int]]:
    """A (B, T) tensor or array, or a list of rows, as a list of lists of Python ints."""
    if hasattr(ids, "tolist") and not isinstance(ids, list):  # torch.Tensor or np.ndarray
        if ids.ndim != 2:
            raise ValueError(f"decode expects a (B, T) batch of ids, got shape {tuple(ids.shape)}")
        return ids.tolist()
    rows = []
    for row in ids:
        if isinstance(row, (int, np.integer)):
            raise ValueError("decode expects a batch (a list of id lists); wrap one sentence "
                             "in a list")
        rows.append(row.tolist() if hasattr(row, "tolist") else list(row))
    return rows


def _check_special_ids(processor: spm.SentencePieceProcessor) -> None:
    actual = {"pad": processor.pad_id(), "unk": processor.unk_id(),
              "bos": processor.bos_id(), "eos": processor.eos_id()}
    wrong = [f"{name} id is {actual[name]} (textgan needs {wanted})"
             for name, wanted in SPECIAL_IDS.items() if actual[name] != wanted]
    if wrong:
        raise TokenizerError(
            "the sentencepiece model was trained with other special ids: " + "; ".join(wrong)
            + ". Train it with textgan (or with pad_id=0 unk_id=1 bos_id=2 eos_id=3)")


def _read_hash(path: Path) -> str:
    text = path.read_text(encoding="utf-8").split()
    if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
        raise TokenizerError(f"{path} does not hold a sha256 hex digest")
    return text[0]


def _write_atomic(path: Path, data: bytes) -> None:
    # A run killed mid-write must not leave a truncated model that a resume would then refuse.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- training


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, seed: int = 0) -> Tokenizer:
    """Train a sentencepiece model in memory on texts (e.g. `corpus.splits["train"]["text"]`).

    texts may be a list, a `datasets.Dataset` (its "text" column), a dataset column, or any
    iterable of strings; datasets are read in chunks, never converted to one big list.
    """
    sample, total = _sample(texts, cfg.input_sentence_size, seed)
    counter = _Counter(sample)
    writer = io.BytesIO()
    # Seeds whatever randomness the trainer itself still uses; the sentence sample is ours.
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(counter),
            model_writer=writer,
            model_type=cfg.model_type,
            vocab_size=cfg.vocab_size,
            character_coverage=cfg.character_coverage,
            byte_fallback=cfg.byte_fallback,
            hard_vocab_limit=cfg.hard_vocab_limit,
            # 0 = use every sentence given: the sampling was done above, reproducibly.
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=cfg.num_threads,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            minloglevel=2,  # the trainer logs hundreds of INFO lines to stderr otherwise
        )
    except RuntimeError as error:
        if counter.bad:
            raise TokenizerError(counter.bad) from None
        if counter.count == 0:
            raise TokenizerError("no sentences to train the tokenizer on (empty training "
                                 "split?)") from None
        raise TokenizerError(_explain(str(error), cfg, counter.count)) from None
    if counter.bad:
        raise TokenizerError(counter.bad)
    tokenizer = Tokenizer(writer.getvalue())
    sampled = f" (a seeded sample of {total})" if total > counter.count else ""
    logger.info("trained a %s tokenizer on %d sentences%s: %d pieces (asked for %d), sha256 %s",
                cfg.model_type, counter.count, sampled, tokenizer.vocab_size, cfg.vocab_size,
                tokenizer.sha256[:12])
    return tokenizer


class _Counter:
    """Passes the sentences through, counting them and stopping at the first non-string.

    An exception raised inside the iterator would reach us as sentencepiece's RuntimeError
    with a C++ traceback in its text, so the problem is recorded here and reported after.
    """

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.count = 0
        self.bad: str = ""

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not isinstance(text, str):
                self.bad = (f"tokenizer training texts must be strings; sentence {self.count} is "
                            f"{type(text).__name__} {text!r:.60}")
                return
            self.count += 1
            yield text


def _explain(message: str, cfg: TokenizerConfig, count: int) -> str:
    """Turn sentencepiece's trainer error into advice in textgan's terms."""
    too_high = re.search(r"Please set it to a value <= (\d+)", message)
    if too_high:
        return (f"the training split ({count} sentences) supports at most {too_high.group(1)} "
                f"{cfg.model_type} pieces, but tokenizer.vocab_size is {cfg.vocab_size}; lower "
                f"it to <= {too_high.group(1)} or set tokenizer.hard_vocab_limit=false to use "
                "what the corpus supports")
    too_low = re.search(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        fallback = " (byte_fallback adds 256 byte pieces)" if cfg.byte_fallback else ""
        return (f"tokenizer.vocab_size ({cfg.vocab_size}) is too small for the characters of the "
                f"training split: it needs more than {too_low.group(2)} pieces{fallback}; raise "
                "tokenizer.vocab_size or lower tokenizer.character_coverage")
    return f"sentencepiece could not train on the training split ({count} sentences): {message}"


# --------------------------------------------------------------------------- reading the texts


def _sample(texts: Iterable[str], limit: int, seed: int) -> tuple[Iterable[str], int]:
    """The sentences to train on (at most `limit`, a seeded sample) and how many there were.

    The sample is the one a seeded reservoir (Algorithm R) keeps from the sentences in order,
    whatever holds them. For sized inputs (a Dataset, a column, a list) the reservoir runs on
    row numbers and the chosen rows are then read lazily, in corpus order, so no string is held
    twice; an unsized iterable goes through a reservoir of (row number, string) pairs. Both hand
    sentencepiece the same sentences in corpus order, hence the same model (a test checks it).
    """
    rng = np.random.default_rng([seed, 0x746F6B])  # a stream of its own, apart from other seeds
    # Not imported at module level: training from a list need not pay ~1 s for `datasets`, and
    # if it was never imported, texts cannot be one of its objects.
    datasets = sys.modules.get("datasets")
    source = None
    if datasets is not None:
        if isinstance(texts, datasets.Dataset):
            column, source = TEXT_COLUMN, texts
        elif isinstance(texts, datasets.arrow_dataset.Column) and isinstance(
                texts.source, datasets.Dataset):
            column, source = texts.column_name, texts.source
        elif isinstance(texts, datasets.IterableDataset):
            texts = (row[TEXT_COLUMN] for row in texts)
    if source is not None:
        if column not in source.column_names:
            raise TokenizerError(f"the dataset has no '{column}' column to train the tokenizer on")
        total = len(source)
        source = source.select_columns([column])
        if total > limit:
            source = source.select(_sampled_rows(total, limit, rng))
        return _iter_column(source, column), total
    if isinstance(texts, Sequence) and not isinstance(texts, str):
        total = len(texts)
        if total <= limit:
            return texts, total
        return (texts[i] for i in _sampled_rows(total, limit, rng).tolist()), total
    # Row numbers travel with the strings so that the sample goes to sentencepiece in corpus
    # order, as for sized inputs: the trainer's result depends on sentence order (measured).
    numbered = enumerate(texts)
    chunks = iter(lambda: [item for _, item in zip(range(_CHUNK), numbered)], [])
    kept, total = _reservoir(chunks, limit, rng)
    kept.sort(key=lambda item: item[0])
    return [text for _, text in kept], total


def _sampled_rows(total: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Row numbers the reservoir keeps from `total` rows, sorted."""
    chunks = (range(start, min(start + _CHUNK, total)) for start in range(0, total, _CHUNK))
    rows, _ = _reservoir(chunks, limit, rng)
    return np.sort(np.asarray(rows, dtype=np.int64))


def _iter_column(dataset: Any, column: str) -> Iterator[str]:
    for chunk in dataset.with_format("arrow").iter(batch_size=_CHUNK):
        yield from chunk.column(column).to_pylist()


def _reservoir(chunks: Iterable[Sequence[Any]], limit: int, rng: np.random.Generator
               ) -> tuple[list[Any], int]:
    """Algorithm R (Vitter 1985) over a stream given in chunks, random draws vectorised per chunk.

    Returns the kept items and the number seen. The draws depend only on the chunk sizes, so
    a stream of strings and the stream of their row numbers, chunked alike, keep the same rows.
    """
    reservoir: list[Any] = []
    seen = 0
    for chunk in chunks:
        take = min(len(chunk), max(limit - seen, 0))
        reservoir.extend(chunk[:take])
        rest = len(chunk) - take
        if rest:
            # Item number t (0-based) replaces slot j ~ U{0..t} when j < limit; in order, so a
            # later item overwriting the same slot wins, exactly as the sequential algorithm.
            positions = np.arange(seen + take, seen + len(chunk))
            slots = rng.integers(0, positions + 1)
            for offset in np.flatnonzero(slots < limit).tolist():
                reservoir[int(slots[offset])] = chunk[take + offset]
        seen += len(chunk)
    return reservoir, seen
