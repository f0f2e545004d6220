"""Line-based files (.txt, .csv, .tsv, .jsonl/.json): a checking scan, then rows for datasets.

Each file is read twice, streaming, never whole:

1. `scan` reads the raw bytes line by line: it finds the lines that are not UTF-8, parses every
   line (JSON, CSV) so a malformed one is reported with its line number, collects the column names
   and hashes the bytes. Errors surface here, as CorpusError, before datasets is involved (an
   exception inside a datasets generator would arrive wrapped in a builder traceback).
2. `generate_rows` is the generator handed to `datasets.Dataset.from_generator`, which writes the
   rows to a memory-mapped arrow file in the cache. It parses the same way and skips the same
   undecodable lines, so the line numbers it records are the file's own.

Why our own parsing rather than load_dataset("csv"/"json"/"text"): exact line numbers for every
row (pyarrow's JSON reader and pandas give none, or none that survive blank lines and multi-line
CSV fields) and one place that handles undecodable lines for every format. Undecodable lines are
*left out* by the generator, which is how on_decode_error='skip' works; the file is never copied.

Formats: UTF-8 (a leading BOM is ignored). .txt is one sentence per line, blank lines included
(cleaning drops them and counts them). .csv has a header row and standard quoting. .tsv has a
header row and no quoting at all (quotes are literal text, as in most sentence corpora; a field
cannot contain a tab). .jsonl/.json hold one JSON object per line; blank lines are ignored.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textgan.corpora.corpus import TEXT
from textgan.corpora.raw import LINE, SRC, label_text
from textgan.errors import CorpusError

TEXT_FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
# Bump when generate_rows changes what it yields for the same file: the version is part of the
# from_generator cache key, which otherwise only sees the generator's arguments.
READER_VERSION = 1
_REPORTED_LINES = 5  # line numbers quoted in a message or kept in the report


@dataclass
class Scan:
    """What the checking pass learned about one file."""

    digest: str                     # blake2b of the bytes: the cache key follows the content
    columns: list[str]              # header (csv/tsv), keys in order of appearance (jsonl), []
    rows: int = 0                   # rows the generator will yield
    undecodable: int = 0
    undecodable_lines: list[int] = field(default_factory=list)  # the first few
    # column -> the first cell that cannot be a label (a list, an object). Only an error for the
    # columns actually read as attributes, which 'auto' decides after the scan.
    bad_labels: dict[str, str] = field(default_factory=dict)

    def check_labels(self, label_columns: Sequence[str]) -> None:
        for name in label_columns:
            if name in self.bad_labels:
                raise CorpusError(self.bad_labels[name])


class _Lines:
    """Decoded lines of a file as (line number, text), leaving out the undecodable ones.

    Hashes and counts as it goes, so the scan gets the digest and the bad lines in the same pass.
    """

    def __init__(self, path: Path, hasher: hashlib.blake2b | None = None) -> None:
        self.path = path
        self.hasher = hasher
        self.undecodable = 0
        self.undecodable_lines: list[int] = []
        self.line = 0  # number of the line last read

    def __iter__(self) -> Iterator[tuple[int, str]]:
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                self.line = number
                if self.hasher is not None:
                    self.hasher.update(raw)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.undecodable += 1
                    if len(self.undecodable_lines) < _REPORTED_LINES:
                        self.undecodable_lines.append(number)
                    continue
                if number == 1:
                    text = text.removeprefix("\ufeff")  # a BOM (Windows editors) is not text
                yield number, text.rstrip("\r\n")


def records(path: Path, fmt: str, lines: _Lines, header: list[str]
            ) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, {column: value}) for every row of the file, in order.

    For csv/tsv the header row is not a record: it is stored into `header` when read.
    """
    if fmt == "txt":
        for number, text in lines:
            yield number, {TEXT: text}
    elif fmt == "jsonl":
        yield from _json_records(path, lines)
    else:
        yield from _delimited_records(path, fmt, lines, header)


def _json_records(path: Path, lines: _Lines) -> Iterator[tuple[int, dict[str, object]]]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            hint = " (.json files are read as JSON Lines: one object per line)" if number == 1 \
                else ""
            raise CorpusError(f"{path}, line {number}: malformed JSON: {error.msg} at column "
                              f"{error.colno}{hint}") from None
        except ValueError as error:  # valid JSON Python will not read: an integer too long
            raise CorpusError(f"{path}, line {number}: unreadable JSON: "
                              f"{str(error).split(';')[0]}") from None
        except RecursionError:  # valid JSON nested deeper than Python's recursion limit
            raise CorpusError(f"{path}, line {number}: unreadable JSON: nested too deeply "
                              "(a corpus line holds one flat object)") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path}, line {number}: expected a JSON object, found "
                              f"{type(record).__name__}")
        if "\\u" in text:  # only an escape can smuggle in a lone UTF-16 surrogate
            _refuse_surrogates(path, number, record)
        yield number, record


def _refuse_surrogates(path: Path, number: int, record: dict[str, object]) -> None:
    """A lone surrogate escape ("\\ud800") is valid JSON but no character: Python keeps it in
    the str, and arrow could not write it, deep inside datasets. Keys and string values are what
    reach arrow (a nested value is refused as a label, never written)."""
    for value in (*record, *record.values()):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                code = ord(value[error.start])
                raise CorpusError(
                    f"{path}, line {number}: not valid Unicode: the escape \\u{code:04x} is "
                    "half of a UTF-16 surrogate pair; write the character itself, or both "
                    "halves of its pair") from None


def _delimited_records(path: Path, fmt: str, lines: _Lines, header: list[str]
                       ) -> Iterator[tuple[int, dict[str, object]]]:
    first_line: list[int] = []  # line where the record being parsed starts (records may span lines)

    def feed() -> Iterator[str]:
        for number, text in lines:
            if not first_line:
                first_line.append(number)
            yield text + "\n"  # csv needs the newline to keep it inside a quoted field

    if fmt == "tsv":
        reader = csv.reader(feed(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(feed())
    while True:
        first_line.clear()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise CorpusError(f"{path}, line {lines.line}: malformed {fmt.upper()}: {error}") \
                from None
        number = first_line[0] if first_line else lines.line
        if not any(cell.strip() for cell in row):
            continue  # a blank line is not a row
        if not header:
            if lines.undecodable_lines[:1] == [1]:  # skipping it would promote a data row
                raise CorpusError(f"{path}, line 1: the header line is not valid UTF-8")
            header.extend(cell.strip() for cell in row)
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise CorpusError(f"{path}, line {number}: the header repeats column "
                                  f"{', '.join(map(repr, repeated))}")
            continue
        if len(row) != len(header):
            hint = ("; a field containing a comma must be in double quotes" if fmt == "csv"
                    else "; a field cannot contain a tab")
            raise CorpusError(
                f"{path}, line {number}: expected {len(header)} fields "
                f"({', '.join(header)}), found {len(row)}{hint}")
        yield number, dict(zip(header, row))


def scan(path: Path, fmt: str, text_column: str, on_decode_error: str) -> Scan:
    """Check a file end to end (see the module docstring); raises CorpusError naming the line.

    With on_decode_error='fail' any undecodable line is an error, reported with the first few line
    numbers after the whole file was read (so the count is complete); with 'skip' they are counted
    in the Scan and left out.
    """
    hasher = hashlib.blake2b(digest_size=16)
    lines = _Lines(path, hasher)
    header: list[str] = []
    keys: dict[str, None] = {}  # JSON keys in order of appearance (an ordered set)
    rows = 0
    bad_labels: dict[str, str] = {}
    text_key = TEXT if fmt == "txt" else text_column
    try:
        for number, record in records(path, fmt, lines, header):
            rows += 1
            if fmt == "jsonl":
                keys.update(dict.fromkeys(record))
            for name, value in record.items():
                if name == text_key:
                    if value is not None and not isinstance(value, str):
                        raise CorpusError(
                            f"{path}, line {number}: the text column {name!r} holds "
                            f"{value!r}, not a string")
                elif not isinstance(value, str | int | float | None) and name not in bad_labels:
                    try:
                        label_text(value)
                    except ValueError as error:
                        bad_labels[name] = f"{path}, line {number}: column {name!r}: {error}"
    except CorpusError:
        if lines.undecodable and on_decode_error == "fail":
            raise CorpusError(_undecodable_message(path, lines)) from None  # the root problem
        raise
    if lines.undecodable and on_decode_error == "fail":
        raise CorpusError(_undecodable_message(path, lines))
    if fmt in ("csv", "tsv") and not header:
        raise CorpusError(f"{path}: the file is empty; a {fmt.upper()} file needs a header line")
    return Scan(digest=hasher.hexdigest(), columns=header or list(keys), rows=rows,
                undecodable=lines.undecodable, undecodable_lines=lines.undecodable_lines,
                bad_labels=bad_labels)


def _undecodable_message(path: Path, lines: _Lines) -> str:
    shown = ", ".join(map(str, lines.undecodable_lines))
    more = " and more" if lines.undecodable > len(lines.undecodable_lines) else ""
    return (f"{path}: {lines.undecodable} line(s) are not valid UTF-8, at line {shown}{more}. "
            "Re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or set "
            "data.on_decode_error='skip' to leave those lines out")


def generate_rows(path: str, fmt: str, text_column: str, label_columns: Sequence[str],
                  fixed_labels: dict[str, str], src: int, digest: str,
                  version: int) -> Iterator[dict[str, object]]:
    """Raw rows for `datasets.Dataset.from_generator`.

    `digest` and `version` are unused in the body on purpose: from_generator keys its cache on the
    generator's arguments only, so they are what makes a changed file or reader miss the cache.
    """
    del digest, version
    text_key = TEXT if fmt == "txt" else text_column
    for number, record in records(Path(path), fmt, _Lines(Path(path)), header=[]):
        row: dict[str, object] = {TEXT: record.get(text_key)}
        for name in label_columns:
            row[name] = label_text(record.get(name))
        row.update(fixed_labels)
        row[SRC] = src
        row[LINE] = number
        yield row
