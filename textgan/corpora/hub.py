"""Hugging Face hub datasets: data.source = "hf:NAME" or "hf:NAME:CONFIG".

    data.source = "hf:stanfordnlp/imdb"           # a hub repository
    data.source = "hf:/data/mirrors/imdb"         # a local copy (hub snapshot or save_to_disk)

Both go through the one call `datasets.load_dataset(path, config, cache_dir=...)`; `hub_path`
decides what `path` is. A NAME that is an existing local folder is loaded from there, which is how
an offline machine uses a dataset downloaded elsewhere (`huggingface-cli download --repo-type
dataset NAME --local-dir DIR`, or `load_dataset(NAME).save_to_disk(DIR)`), and how the tests
exercise this module without a network.

Splits: data.hf_splits maps the roles train/valid/test to split names; by default train is
"train", valid the first of "validation"/"valid"/"dev" that exists, test "test"; a role with no
split is carved from train. A split name may use the datasets slicing syntax ("train[:10%]").
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from textgan.config import DataConfig
from textgan.corpora.corpus import CleaningReport
from textgan.corpora.raw import ROW_UNIT, Origins
from textgan.corpora.readers import from_arrow
from textgan.errors import CorpusError

logger = logging.getLogger(__name__)

PREFIX = "hf:"
_DEFAULT_SPLITS = {"train": ("train",), "valid": ("validation", "valid", "dev"),
                   "test": ("test",)}


def parse_source(source: str) -> tuple[str, str | None]:
    """'hf:NAME[:CONFIG]' -> (NAME, CONFIG or None). Hub names never contain ':'."""
    name, _, config = source.removeprefix(PREFIX).partition(":")
    if not name:
        raise CorpusError(f"data.source {source!r}: expected 'hf:NAME' or 'hf:NAME:CONFIG'")
    return name, config or None


def hub_path(name: str) -> str:
    """What load_dataset gets for NAME: a local folder if one exists there, else the hub name."""
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return name


def load_hub_splits(cfg: DataConfig, origins: Origins, report: CleaningReport
                    ) -> tuple[dict[str, datasets.Dataset], list[str]]:
    """The labelled raw parts per role (roles with no split are absent), and the attributes."""
    name, config = parse_source(cfg.source)
    path = hub_path(name)
    available = _load(cfg, name, path, config, split=None)
    roles: dict[str, str] = {}
    for role, defaults in _DEFAULT_SPLITS.items():
        found = cfg.hf_splits.get(role) or next((s for s in defaults if s in available), None)
        if found:
            roles[role] = found
        elif role == "train":
            raise CorpusError(f"{cfg.source}: no 'train' split; the splits are "
                              f"{', '.join(available)}. Name one in data.hf_splits.train")

    parts: dict[str, datasets.Dataset] = {}
    attributes: list[str] = []
    for role, split in roles.items():
        if split in available:
            table = available[split]
        elif "[" in split:  # slicing syntax: let datasets cut it from the prepared split
            table = _load(cfg, name, path, config, split=split)
        else:
            raise CorpusError(f"{cfg.source}: no split {split!r} (data.hf_splits.{role}); the "
                              f"splits are {', '.join(available)}")
        where = f"{cfg.source} split {split!r}"
        src = origins.add(where, ROW_UNIT)
        report.read += len(table)
        parts[role], chosen = from_arrow(table, where, cfg.text_column, cfg.label_columns, src)
        attributes += [attribute for attribute in chosen if attribute not in attributes]
        logger.info("%s: %s split %r, %d rows", cfg.source, role, split, len(table))
    return parts, attributes


def _load(cfg: DataConfig, name: str, path: str, config: str | None, split: str | None
          ) -> datasets.DatasetDict | datasets.Dataset:
    try:
        loaded = datasets.load_dataset(path, config, split=split, cache_dir=cfg.cache_dir or None)
    except ConnectionError as error:
        raise CorpusError(_unreachable(cfg.source, name, error)) from None
    except FileNotFoundError as error:  # DatasetNotFoundError, DataFilesNotFoundError
        raise CorpusError(f"{cfg.source}: dataset {name!r} not found ({error}). Check the name "
                          "on https://huggingface.co/datasets, or give a local file or folder "
                          "as data.source") from None
    except ValueError as error:  # an unknown config name or split, with the valid ones listed
        raise CorpusError(f"{cfg.source}: {error}") from None
    if isinstance(loaded, datasets.IterableDatasetDict | datasets.IterableDataset):
        raise CorpusError(f"{cfg.source}: loaded as a streaming dataset, which is not supported")
    return loaded


def _unreachable(source: str, name: str, error: Exception) -> str:
    offline = datasets.config.HF_HUB_OFFLINE
    why = ("offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and it is not in the "
           "datasets cache" if offline else f"network error: {error}")
    go_online = ("unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE and run again, so it is downloaded "
                 "into the cache" if offline else "check the network and run again")
    return (f"data.source {source!r}: could not reach the Hugging Face hub dataset {name!r} "
            f"({why}). Either {go_online}; or download it on a machine with network access "
            f"(huggingface-cli download --repo-type dataset {name} --local-dir DIR) and set "
            "data.source='hf:DIR', or export its splits to files and point data.source at them")
