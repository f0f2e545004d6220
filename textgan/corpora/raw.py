"""The raw shape every reader produces, before cleaning and label mapping.

A raw dataset has a string column "text", one *string* column per attribute (None where the
sentence has no label) and two bookkeeping columns, SRC and LINE, that say where each sentence came
from. Labels stay strings until the classes are known (file labels "0" and 0 must agree), and the
bookkeeping columns let a later step (an unknown label, say) name the file and line of the culprit
even after rows were dropped or reordered. Both are removed before the Corpus is returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import datasets
import pyarrow as pa

from textgan.corpora.corpus import TEXT
from textgan.errors import CorpusError

SRC = "__textgan_src__"    # index into Origins: which file or hub split the row came from
LINE = "__textgan_line__"  # 1-based line (text formats) or row (parquet, hub) in that source
BOOKKEEPING = (SRC, LINE)

LINE_UNIT = "line"
ROW_UNIT = "row"


class Origins:
    """The sources of a corpus, numbered, so rows can carry a small int instead of a path."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._units: list[str] = []

    def add(self, name: str, unit: str) -> int:
        self._names.append(name)
        self._units.append(unit)
        return len(self._names) - 1

    def where(self, src: int, line: int) -> str:
        """'reviews.csv, line 7': the place a user can open in an editor."""
        return f"{self._names[src]}, {self._units[src]} {line}"


@dataclass
class RawCorpus:
    """Everything a source resolved to, before cleaning.

    `splits` maps a role (train/valid/test) to its labelled parts; a role that is absent is carved
    from train later. `unlabelled` parts go to the training split with every label missing.
    """

    name: str
    splits: dict[str, list[datasets.Dataset]]
    unlabelled: list[datasets.Dataset]
    attributes: list[str]
    origins: Origins
    label_values: dict[str, list[str]] = field(default_factory=dict)


def raw_features(attributes: Sequence[str]) -> datasets.Features:
    columns = {TEXT: datasets.Value("string")}
    columns.update({name: datasets.Value("string") for name in attributes})
    columns[SRC] = datasets.Value("int32")
    columns[LINE] = datasets.Value("int64")
    return datasets.Features(columns)


def empty_raw(attributes: Sequence[str]) -> datasets.Dataset:
    """A raw dataset with no rows (from_generator refuses a generator that yields nothing)."""
    features = raw_features(attributes)
    return datasets.Dataset.from_dict({name: [] for name in features}, features=features)


def label_text(value: object) -> str | None:
    """A label cell as a string, None where it is missing; so "0", 0 and 0.0 all read "0".

    Raises ValueError for values that cannot be a class (lists, objects).
    """
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int subclass; JSON spelling
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):  # pandas writes a missing cell of a number column as NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None  # an empty cell is a missing label, never a class
    raise ValueError(f"{value!r} ({type(value).__name__}) is not a label")


def select_label_columns(available: Sequence[str], text_column: str,
                         label_columns: Sequence[str], where: str) -> list[str]:
    """The attribute columns to read, from data.label_columns (['auto'] = all but the text)."""
    if text_column not in available:
        raise CorpusError(
            f"{where}: no text column {text_column!r}; the columns are "
            f"{', '.join(map(repr, available)) or '(none)'}. Set data.text_column to one of them")
    if list(label_columns) == ["auto"]:
        chosen = [name for name in available if name != text_column]
    else:
        missing = [name for name in label_columns if name not in available]
        if missing:
            raise CorpusError(
                f"{where}: no label column {', '.join(map(repr, missing))} (data.label_columns); "
                f"the columns are {', '.join(map(repr, available))}")
        chosen = list(label_columns)
    for name in chosen:
        if name == TEXT or name.startswith("__textgan_"):
            raise CorpusError(
                f"{where}: column {name!r} cannot be an attribute (the name is taken by textgan); "
                "rename it or list the attributes in data.label_columns")
    return chosen


def align(parts: Sequence[datasets.Dataset], attributes: Sequence[str]) -> datasets.Dataset:
    """Concatenate raw parts, giving each part a null column for the attributes it lacks."""
    aligned = []
    for part in parts:
        for name in attributes:
            if name not in part.column_names:
                # pa.nulls is a validity bitmap, not a Python list: cheap for large unlabelled files
                part = part.add_column(name, pa.nulls(len(part), pa.string()),
                                       feature=datasets.Value("string"))
        aligned.append(part.select_columns([TEXT, *attributes, *BOOKKEEPING]))
    if not aligned:
        return empty_raw(attributes)
    if len(aligned) == 1:
        return aligned[0]
    return datasets.concatenate_datasets(aligned)


def keep_rows(batch: dict[str, list], keep: Sequence[bool]) -> dict[str, list]:
    """The rows of a batch where `keep` is true.

    Dropping rows inside a batched `map` (which writes a fresh arrow table) rather than with
    `filter` or `select` (which add an indices mapping): datasets reads an indices-mapped dataset
    one row slice at a time, about 100x slower for every later map over it [measured].
    """
    return {name: [value for value, wanted in zip(values, keep) if wanted]
            for name, values in batch.items()}


def iter_columns(ds: datasets.Dataset, columns: Sequence[str],
                 batch_size: int = 10_000) -> Iterator[dict[str, list]]:
    """Batches of plain lists, streaming (the dataset may be larger than memory)."""
    for batch in ds.select_columns(list(columns)).iter(batch_size=batch_size):
        yield batch


def value_counts(ds: datasets.Dataset, column: str) -> dict:
    """Distinct values of a column and how often each occurs, None included, in one pass."""
    counts: dict = {}
    for batch in ds.select_columns([column]).with_format("arrow").iter(batch_size=100_000):
        for item in batch.column(column).value_counts().to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def first_rows(ds: datasets.Dataset, column: str, wanted: Mapping | set, origins: Origins,
               limit: int = 3) -> list[str]:
    """Where the first rows whose `column` value is in `wanted` come from (for error messages)."""
    places = []
    for batch in iter_columns(ds, [column, SRC, LINE]):
        for value, src, line in zip(batch[column], batch[SRC], batch[LINE]):
            if value in wanted:
                places.append(f"{origins.where(src, line)}: {value!r}")
                if len(places) >= limit:
                    return places
    return places
