"""What data.source names, read into a RawCorpus (raw parts per split, plus unlabelled parts).

- "synthetic": the generated corpus (textgan.corpora.synthetic), read as a folder, with the
  grammar's classes as label_values unless the user set others;
- "tiny": the hand-written corpora/tiny folder shipped with the repository;
- "hf:NAME[:CONFIG]": a Hugging Face dataset (hub.py);
- a file (.txt/.csv/.tsv/.jsonl/.json/.parquet), carved into train/valid/test;
- a folder, in one of two layouts:
    split files     train.EXT, valid.EXT (or dev.EXT, validation.EXT), test.EXT;
    one file/class  ATTRIBUTE.SPLIT.CLASS, e.g. sentiment.train.0 ... sentiment.test.1, plain
                    text, one sentence per line; the class is the suffix, or
                    data.file_labels[file name] when set.
  A split with no file is carved from train. Files that fit neither pattern (README.md) are
  ignored.
Plus data.unlabelled: extra files whose sentences join the training split with no labels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

import textgan
from textgan.config import DataConfig
from textgan.corpora import hub
from textgan.corpora.corpus import CleaningReport
from textgan.corpora.raw import Origins, RawCorpus
from textgan.corpora.readers import SUPPORTED_EXTENSIONS, file_format, read_file
from textgan.errors import CorpusError

logger = logging.getLogger(__name__)

TINY_DIR = Path(textgan.__file__).resolve().parent.parent / "corpora" / "tiny"
SPLIT_ROLES = {"train": "train", "valid": "valid", "dev": "valid", "validation": "valid",
               "test": "test"}


# Corpora that `python -m textgan.corpora NAME --out DIR` fetches: a missing data.source folder
# of that name gets the command in its error
DOWNLOADABLE = ("yelp",)


def resolve_source(cfg: DataConfig, report: CleaningReport) -> RawCorpus:
    origins = Origins()
    source = cfg.source
    label_values = {name: list(values) for name, values in cfg.label_values.items()}
    if source == "synthetic":
        folder, defaults = _synthetic_folder(cfg)
        name = f"synthetic corpus ({folder})"
        splits, attributes = read_folder(folder, cfg, origins, report)
        # the grammar's classes, also where a split lacks one; only for the attributes read
        # (data.label_columns may leave some out)
        label_values = {**{attribute: classes for attribute, classes in defaults.items()
                           if attribute in attributes}, **label_values}
    elif source == "tiny":
        name = f"tiny corpus ({TINY_DIR})"
        splits, attributes = read_folder(TINY_DIR, cfg, origins, report)
    elif source.startswith(hub.PREFIX):
        name = source
        parts, attributes = hub.load_hub_splits(cfg, origins, report)
        splits = {role: [part] for role, part in parts.items()}
    else:
        path = Path(source).expanduser()
        name = source
        if path.is_dir():
            splits, attributes = read_folder(path, cfg, origins, report)
        elif path.is_file():
            dataset, attributes = read_file(path, cfg, origins, report)
            splits = {"train": [dataset]}
        elif path.name in DOWNLOADABLE:
            raise CorpusError(
                f"data.source {source!r}: no such folder; get the corpus with `python -m "
                f"textgan.corpora {path.name} --out {source}` (online), or `... --from COPY` "
                "from an offline copy")
        else:
            raise CorpusError(
                f"data.source {source!r}: no such file or folder (expected 'synthetic', 'tiny', "
                f"'hf:NAME[:CONFIG]', a {'/'.join(SUPPORTED_EXTENSIONS)} file or a folder)")
    unlabelled = [_read_unlabelled(item, cfg, origins, report) for item in cfg.unlabelled]
    return RawCorpus(name=name, splits=splits, unlabelled=unlabelled, attributes=attributes,
                     origins=origins, label_values=label_values)


def _synthetic_folder(cfg: DataConfig) -> tuple[Path, dict[str, list[str]]]:
    # Imported here: the grammar is heavier than the loaders, and only this source needs it.
    from textgan.corpora.grammar import ATTRIBUTES
    from textgan.corpora.synthetic import ensure_corpus

    folder = Path(ensure_corpus(cfg.synthetic_size, cfg.synthetic_seed))
    return folder, {name: list(values) for name, values in ATTRIBUTES.items()}


def _read_unlabelled(item: str, cfg: DataConfig, origins: Origins,
                     report: CleaningReport) -> datasets.Dataset:
    path = Path(item).expanduser()
    if not path.is_file():
        raise CorpusError(f"data.unlabelled: {item}: no such file")
    dataset, _ = read_file(path, cfg, origins, report, labelled=False, role="unlabelled")
    return dataset


def read_folder(folder: Path, cfg: DataConfig, origins: Origins, report: CleaningReport
                ) -> tuple[dict[str, list[datasets.Dataset]], list[str]]:
    """The labelled parts per role of a folder in either layout, and the attributes found."""
    split_files: dict[str, Path] = {}
    class_files: list[tuple[Path, str, str, str]] = []  # path, attribute, role, class
    ignored: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        parts = path.name.split(".")
        if len(parts) == 2 and parts[0].lower() in SPLIT_ROLES:
            role = SPLIT_ROLES[parts[0].lower()]
            file_format(path)  # an unsupported extension is an error, not a file to ignore
            if role in split_files:
                raise CorpusError(f"{folder}: both {split_files[role].name} and {path.name} are "
                                  f"the {role} split; keep one")
            split_files[role] = path
        elif len(parts) == 3 and parts[1].lower() in SPLIT_ROLES and parts[0] and parts[2]:
            role = SPLIT_ROLES[parts[1].lower()]
            class_files.append((path, parts[0], role, cfg.file_labels.get(path.name, parts[2])))
        else:
            ignored.append(path.name)
    if ignored:
        logger.info("%s: ignoring %s (not a split or class file)", folder, ", ".join(ignored))
    _check_file_labels(folder, cfg, class_files)
    if split_files and class_files:
        raise CorpusError(
            f"{folder}: mixes split files ({', '.join(p.name for p in split_files.values())}) "
            f"with one-file-per-class files ({class_files[0][0].name}, ...); use one layout")
    if split_files:
        if "train" not in split_files:
            raise CorpusError(f"{folder}: no train file (train.EXT); found "
                              f"{', '.join(p.name for p in split_files.values())}")
        splits: dict[str, list[datasets.Dataset]] = {}
        attributes: list[str] = []
        for role in ("train", "valid", "test"):
            if role in split_files:
                dataset, found = read_file(split_files[role], cfg, origins, report, role=role)
                splits[role] = [dataset]
                attributes += [name for name in found if name not in attributes]
        return splits, attributes
    if class_files:
        return _read_class_files(folder, cfg, origins, report, class_files)
    raise CorpusError(
        f"{folder}: no corpus files. Expected train.EXT (plus valid.EXT / dev.EXT and test.EXT; "
        f"EXT one of {', '.join(e.lstrip('.') for e in SUPPORTED_EXTENSIONS)}) or one file per "
        f"class named ATTRIBUTE.SPLIT.CLASS (e.g. sentiment.train.0); found "
        f"{', '.join(ignored) or 'no files'}")


def _check_file_labels(folder: Path, cfg: DataConfig,
                       class_files: list[tuple[Path, str, str, str]]) -> None:
    names = {path.name for path, *_ in class_files}
    unknown = [name for name in cfg.file_labels if name not in names]
    if unknown:
        raise CorpusError(
            f"{folder}: data.file_labels names {', '.join(map(repr, unknown))}, which is not a "
            "file of the form ATTRIBUTE.SPLIT.CLASS here "
            f"(found: {', '.join(sorted(names)) or 'none'})")


def _read_class_files(folder: Path, cfg: DataConfig, origins: Origins, report: CleaningReport,
                      class_files: list[tuple[Path, str, str, str]]
                      ) -> tuple[dict[str, list[datasets.Dataset]], list[str]]:
    found = list(dict.fromkeys(attribute for _, attribute, _, _ in class_files))
    if cfg.label_columns == ["auto"]:
        attributes = found
    else:  # [] = unlabelled; a list = these attributes, each of which must have files
        missing = [name for name in cfg.label_columns if name not in found]
        if missing:
            raise CorpusError(f"{folder}: no files for attribute(s) "
                              f"{', '.join(map(repr, missing))} (data.label_columns); the files "
                              f"label {', '.join(map(repr, found))}")
        attributes = list(cfg.label_columns)
    if cfg.label_columns not in (["auto"], []):
        skipped = [path.name for path, attribute, _, _ in class_files
                   if attribute not in attributes]
        if skipped:
            logger.info("%s: ignoring %s (attribute not in data.label_columns)", folder,
                        ", ".join(skipped))
        class_files = [item for item in class_files if item[1] in attributes]
    if not any(role == "train" for _, _, role, _ in class_files):
        raise CorpusError(f"{folder}: no training files (ATTRIBUTE.train.CLASS)")
    splits: dict[str, list[datasets.Dataset]] = {}
    for path, attribute, role, label in class_files:
        fixed = {attribute: label} if attributes else {}
        dataset, _ = read_file(path, cfg, origins, report, fmt="txt", fixed_labels=fixed,
                               role=role)
        splits.setdefault(role, []).append(dataset)
        logger.debug("%s: %s split, %s=%s", path, role, attribute, label)
    return splits, attributes
