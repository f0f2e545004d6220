"""Read one source (a local file, or a split of a hub dataset) into the raw shape of raw.py.

Line-based files go through textfiles.py (a checking scan, then `Dataset.from_generator`);
parquet files through `load_dataset("parquet")`; both end memory-mapped in the datasets cache,
so a corpus larger than memory can be read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from textgan.config import DataConfig
from textgan.corpora.corpus import TEXT, CleaningReport
from textgan.corpora.bars import datasets_bars
from textgan.corpora.raw import (LINE, LINE_UNIT, ROW_UNIT, SRC, Origins, label_text, raw_features,
                                 select_label_columns)
from textgan.corpora.textfiles import READER_VERSION, TEXT_FORMATS, Scan, generate_rows, scan
from textgan.errors import CorpusError

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (*TEXT_FORMATS, ".parquet")
_MAX_SKIPPED_LINES = 20  # line numbers kept in the report across all files


def file_format(path: Path) -> str:
    """'txt', 'csv', 'tsv', 'jsonl' or 'parquet', from the extension."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in TEXT_FORMATS:
        return TEXT_FORMATS[suffix]
    shown = repr(suffix) if suffix else "(no extension)"
    raise CorpusError(f"{path}: unsupported file type {shown}; textgan reads "
                      f"{', '.join(SUPPORTED_EXTENSIONS)} files, or a folder of them")


def read_file(path: Path, cfg: DataConfig, origins: Origins, report: CleaningReport, *,
              labelled: bool = True, fmt: str | None = None,
              fixed_labels: Mapping[str, str] | None = None,
              role: str = "train") -> tuple[datasets.Dataset, list[str]]:
    """A file as a raw dataset, and the attributes it labels.

    `labelled=False` reads only the text (semi-supervised extra files: their labels are ignored).
    `fixed_labels` labels every line (the one-file-per-class layout). `role` (train, valid, test,
    unlabelled) names the split in datasets' progress bar. A file with no rows is an error.
    """
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder; expected a file here")
    fmt = fmt or file_format(path)
    label_columns = list(cfg.label_columns) if labelled else []
    if fmt == "parquet":
        return _read_parquet(path, cfg, origins, report, label_columns)

    result = scan(path, fmt, cfg.text_column, cfg.on_decode_error)
    if fmt == "txt":
        if label_columns not in (["auto"], []) and not fixed_labels:
            raise CorpusError(f"{path}: a .txt file has no columns, so data.label_columns "
                              f"{label_columns} cannot be read from it; label sentences with a "
                              "csv/tsv/jsonl/parquet file or the one-file-per-class layout")
        chosen: list[str] = []
    elif result.rows == 0:
        chosen = []  # nothing to check columns against; the empty file is refused below
    else:
        chosen = select_label_columns(result.columns, cfg.text_column, label_columns, str(path))
        result.check_labels(chosen)
    fixed = dict(fixed_labels or {})
    attributes = chosen + [name for name in fixed if name not in chosen]
    src = origins.add(str(path), LINE_UNIT)

    report.read += result.rows + result.undecodable
    if result.undecodable:
        report.dropped["undecodable"] = report.dropped.get("undecodable", 0) + result.undecodable
        room = _MAX_SKIPPED_LINES - len(report.skipped_lines)
        report.skipped_lines.extend(result.undecodable_lines[:max(room, 0)])
        logger.warning("%s: skipped %d line(s) that are not valid UTF-8 (first: %s)", path,
                       result.undecodable, ", ".join(map(str, result.undecodable_lines)))
    if result.rows == 0:
        raise CorpusError(_no_rows_message(path, fmt, result, role, labelled, bool(fixed_labels)))
    with datasets_bars(result.rows):
        dataset = datasets.Dataset.from_generator(
            generate_rows, features=raw_features(attributes), cache_dir=cfg.cache_dir or None,
            # the bar says "Generating <split> split": the file's own role, not always train
            split=datasets.NamedSplit(role),
            gen_kwargs={"path": str(path.resolve()), "fmt": fmt, "text_column": cfg.text_column,
                        # a tuple, never a list: from_generator treats a list in gen_kwargs as
                        # shards and calls the generator once per item (one column each)
                        "label_columns": tuple(chosen), "fixed_labels": fixed, "src": src,
                        # content and reader version: without them a changed file hits a stale
                        # cache
                        "digest": result.digest, "version": READER_VERSION})
    return dataset, attributes


def _no_rows_message(path: Path, fmt: str, result: Scan, role: str, labelled: bool,
                     class_file: bool) -> str:
    """Why a text file gave no rows, and the fix. An empty corpus file is a mistake (a failed
    export, the wrong file) that would otherwise surface steps later as an empty split."""
    rows = {"txt": "one sentence per line", "csv": "one row per sentence under the header",
            "tsv": "one row per sentence under the header",
            "jsonl": 'one object per line, e.g. {"text": "the soup was warm ."}'}[fmt]
    if result.undecodable:
        what = (f"every line that held a sentence was skipped, {result.undecodable} in all, as "
                "not valid UTF-8 (data.on_decode_error='skip')")
        fix = "re-encode it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE)"
    else:
        if fmt in ("csv", "tsv"):
            what = f"it holds only its header line ({', '.join(result.columns)})"
        elif path.stat().st_size:
            what = "it holds only blank lines"
        else:
            what = "it is empty"
        if not labelled:
            fix = f"add sentences ({rows}), or remove it from data.unlabelled"
        elif class_file:
            fix = f"add sentences ({rows}), or delete it if its class has no {role} sentences"
        elif role in ("valid", "test"):
            fix = (f"add sentences ({rows}), or delete it to have the {role} split carved from "
                   "train")
        else:
            fix = f"add sentences ({rows}), or set data.source to the file that holds them"
    return f"{path}: no sentences to read: {what}; {fix}"


def _read_parquet(path: Path, cfg: DataConfig, origins: Origins, report: CleaningReport,
                  label_columns: list[str]) -> tuple[datasets.Dataset, list[str]]:
    try:
        footer = pq.read_metadata(path)  # the footer only: the row count, without the data
    except (pa.ArrowException, OSError):
        footer = None  # not parquet: load_dataset below says so
    if footer is not None and footer.num_rows == 0:
        # refused here: load_dataset would fail on it with "corresponds to no data"
        raise CorpusError(f"{path}: no sentences to read: the parquet file has no rows "
                          f"(columns {', '.join(footer.schema.names)}); write the corpus into "
                          "it or set data.source to the file that holds it")
    rows = footer.num_rows if footer is not None else 0
    try:
        with datasets_bars(rows):
            table = datasets.load_dataset("parquet", data_files=str(path.resolve()),
                                          split="train", cache_dir=cfg.cache_dir or None)
    except (datasets.exceptions.DatasetGenerationError, pa.ArrowException, OSError) as error:
        cause = error.__cause__ or error
        raise CorpusError(f"{path}: not a readable parquet file ({cause})") from None
    src = origins.add(str(path), ROW_UNIT)
    report.read += len(table)
    return from_arrow(table, str(path), cfg.text_column, label_columns, src)


def from_arrow(table: datasets.Dataset, where: str, text_column: str,
               label_columns: Sequence[str], src: int) -> tuple[datasets.Dataset, list[str]]:
    """A dataset with typed columns (parquet, hub) in the raw shape, labels turned to strings.

    A ClassLabel column contributes its class *names* ("neg"/"pos", not 0/1), so the classes read
    the same whether data.label_values is set or inferred.
    """
    chosen = select_label_columns(table.column_names, text_column, label_columns, where)
    text_feature = table.features[text_column]
    if not (isinstance(text_feature, datasets.Value)
            and text_feature.dtype in ("string", "large_string")):
        raise CorpusError(f"{where}: the text column {text_column!r} holds {text_feature}, "
                          "not strings")
    names: dict[str, list[str] | None] = {}
    for name in chosen:
        feature = table.features[name]
        if isinstance(feature, datasets.ClassLabel):
            names[name] = list(feature.names)
        elif isinstance(feature, datasets.Value):
            names[name] = None
        else:
            raise CorpusError(f"{where}: column {name!r} holds {feature}, which cannot be a label; "
                              "list the label columns in data.label_columns")

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {TEXT: batch[text_column]}
        for name, classes in names.items():
            if classes is None:
                out[name] = [label_text(value) for value in batch[name]]
            else:  # ClassLabel uses -1 for "no label"
                out[name] = [classes[value] if value is not None and value >= 0 else None
                             for value in batch[name]]
        out[SRC] = [src] * len(indices)
        out[LINE] = [index + 1 for index in indices]
        return out

    with datasets_bars(len(table)):
        converted = table.map(convert, batched=True, with_indices=True,
                              remove_columns=table.column_names, features=raw_features(chosen),
                              desc="textgan: reading columns")
    return converted, chosen
