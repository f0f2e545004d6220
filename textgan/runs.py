"""The run folder, and the one place that reads it: its layout, its resolved config, its
tokenizer, its corpus as the stages tokenise it, and which checkpoint stands for each use.

    folder = RunFolder("checkpoints/tiny")
    folder.config()            # config.toml
    folder.tokenizer()         # tokenizer.model, checked against its sha256
    load_tokenised_corpus(folder.config().data, folder.tokenizer())   # every label kept
    folder.stage_end("pretrain")   # where a stage ended: what the adversarial stage starts from
    find_checkpoint(folder.root)   # what inference loads: train end > pretrain end > pretrain best

A run folder (`checkpoints/<preset>/` by default, or --run-dir) holds

    config.toml          the resolved config of the run (`resolve_config` reads it on resume)
    tokenizer.model      the sentencepiece model, with tokenizer.sha256 beside it
    pretrain/ train/     checkpoints of each stage: <stage>_checkpoint_<iteration>.pt (the last k)
                         and best_checkpoint_<iteration>_<score>.pt (`textgan.checkpoint`)
    tb/<stage>/          TensorBoard events (tb/evaluate/ for the evaluation report)
    judges/              the evaluation's classifier and language model (`evaluation.judges`)
    run.lock             while a stage runs: the pid and host of the process running it

The stages write it (`stage.open_run`, `checkpoint`); everything that reads it afterwards (the
adversarial stage's start, sampling, the judges, the evaluation) goes through this module.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from textgan.checkpoint import (
    Damaged,
    best_checkpoint,
    damaged_checkpoints,
    latest_checkpoint,
    read_checkpoint,
    set_aside_damaged,
    warn_damaged,
)
from textgan.config import (
    Config,
    DataConfig,
    apply_override,
    config_differences,
    config_to_dict,
    keys_pretraining_ignores,
    load_config,
    read_config,
    runtime_keys,
    validate,
)
from textgan.corpora import Corpus, load_corpus
from textgan.data import tokenize_corpus
from textgan.errors import CheckpointError, ConfigError, DamagedCheckpointError
from textgan.tokenizer import MODEL_FILE as TOKENIZER_MODEL_FILE
from textgan.tokenizer import Tokenizer

PRETRAIN_STAGE = "pretrain"
TRAIN_STAGE = "train"
STAGES = (PRETRAIN_STAGE, TRAIN_STAGE)
DEFAULT_RUNS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG_FILE = "config.toml"
LOCK_FILE = "run.lock"
JUDGES_DIR = "judges"


class RunPaths:
    """The files of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / CONFIG_FILE
        self.tokenizer = self.root / TOKENIZER_MODEL_FILE
        self.lock = self.root / LOCK_FILE
        self.judges = self.root / JUDGES_DIR

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def tensorboard_dir(self, stage: str) -> Path:
        return self.root / "tb" / stage


def default_run_dir(preset: str) -> Path:
    """`checkpoints/<preset>`: running the same command twice resumes the same run."""
    return DEFAULT_RUNS_DIR / preset


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class LoadedCorpus:
    """A run's corpus as loaded (`data`) and tokenised with the tokenizer of `tokenizer_sha256`,
    every label kept; a caller that has one passes it on instead of reading, and logging, the
    corpus a second time."""

    data: DataConfig
    tokenizer_sha256: str
    corpus: Corpus
    splits: datasets.DatasetDict

    def serves(self, data: DataConfig, tokenizer: Tokenizer) -> bool:
        """Whether it is the corpus `data` describes, tokenised by `tokenizer`. Runtime keys
        (the cache folder, the validation sample) change no sentence and are not compared."""
        return (self.tokenizer_sha256 == tokenizer.sha256
                and _corpus_fields(self.data) == _corpus_fields(data))


def _corpus_fields(data: DataConfig) -> dict[str, Any]:
    return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
            if not f.metadata.get("runtime")}


def tokenise_corpus(corpus: Corpus, tokenizer: Tokenizer, data: DataConfig) -> LoadedCorpus:
    """`corpus` tokenised as every stage and judge reads it: cut at data.max_tokens."""
    splits, _ = tokenize_corpus(corpus, tokenizer, data.max_tokens)
    return LoadedCorpus(data=data, tokenizer_sha256=tokenizer.sha256, corpus=corpus,
                        splits=splits)


def load_tokenised_corpus(data: DataConfig, tokenizer: Tokenizer) -> LoadedCorpus:
    """The corpus `data` names, loaded and tokenised (`tokenise_corpus`)."""
    return tokenise_corpus(load_corpus(data), tokenizer, data)


# --------------------------------------------------------------------------- reading a folder


class RunFolder:
    """Reading a run folder that a stage created."""

    def __init__(self, root: str | Path) -> None:
        self.paths = RunPaths(root)
        self.root = self.paths.root

    def config(self) -> Config:
        """The run's resolved config (config.toml)."""
        if not self.paths.config.is_file():
            raise CheckpointError(f"{self.root} has no {CONFIG_FILE}: not a run folder (start "
                                  f"one with `python -m textgan.pretrain --run-dir {self.root}`)")
        return read_config(self.paths.config)

    def tokenizer(self) -> Tokenizer:
        """The run's tokenizer, checked against its recorded sha256."""
        return Tokenizer.load(self.root)

    def tokenizer_sha256(self) -> str | None:
        """sha256 of tokenizer.model as it is on disk (as Tokenizer.sha256), None without one;
        what a checkpoint's or judge's own tokenizer is compared with."""
        path = self.paths.tokenizer
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

    def stage_end(self, stage: str, *, damaged: list[Damaged] | None = None) -> Path | None:
        """Where a stage ended: its newest intact `<stage>_checkpoint_<it>.pt`, None if none.

        Not its best validation ELBO: with a KL weight below 1 the ELBO (beta = 1) peaks at an
        early epoch while reconstruction and samples keep improving (NOTES.md, experiment D).
        A best_checkpoint_*.pt passed by name is used when a user wants it.
        """
        return latest_checkpoint(self.paths.stage_dir(stage), stage, damaged=damaged)


def find_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint a run folder stands for: where the adversarial stage ended, else where
    pretraining ended, else pretraining's best (`RunFolder.stage_end`).

    Checkpoints cut short (empty, truncated) are set aside with a warning naming the one used
    instead (`textgan.checkpoint.latest_checkpoint`).
    """
    root = Path(run_dir)
    if not root.exists():
        raise CheckpointError(f"run folder not found: {root}")
    if not root.is_dir():
        raise CheckpointError(f"{root} is a file, not a run folder (pass it as the checkpoint)")
    folder = RunFolder(root)
    pretrain_dir = folder.paths.stage_dir(PRETRAIN_STAGE)
    damaged: list[Damaged] = []  # set aside on the way, named with the file used instead
    found = (folder.stage_end(TRAIN_STAGE, damaged=damaged)
             or folder.stage_end(PRETRAIN_STAGE, damaged=damaged)
             or best_checkpoint(pretrain_dir, damaged=damaged))
    if damaged:
        warn_damaged(damaged, f"using {found}, the newest intact checkpoint" if found else
                     f"no intact checkpoint is left in {root}")
    if found is None:
        unreadable = [path.name for stage in STAGES
                      for pattern in (f"{stage}_checkpoint_*", "best_checkpoint_*")
                      for path in damaged_checkpoints(folder.paths.stage_dir(stage), pattern)]
        if unreadable:
            raise CheckpointError(
                f"no intact checkpoint in the run folder {root}: {', '.join(unreadable)} "
                "cannot be read; train again with the same --run-dir after moving them away")
        raise CheckpointError(
            f"no checkpoint in the run folder {root}: looked for "
            f"{TRAIN_STAGE}/{TRAIN_STAGE}_checkpoint_*.pt, "
            f"{PRETRAIN_STAGE}/{PRETRAIN_STAGE}_checkpoint_*.pt and "
            f"{PRETRAIN_STAGE}/best_checkpoint_*.pt (train one with "
            f"`python -m textgan.pretrain --run-dir {root}`)")
    return found


def read_found_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `find_checkpoint` picks and its state; one that looks whole but does not
    load is set aside like a truncated one, and the next is tried."""
    damaged: Damaged | None = None
    while True:
        checkpoint = find_checkpoint(run_dir)
        if damaged is not None:
            warn_damaged([damaged], f"using {checkpoint}, the newest intact checkpoint")
        try:
            return checkpoint, read_checkpoint(checkpoint)
        except DamagedCheckpointError as error:
            damaged = set_aside_damaged(checkpoint, error.problem)


def named_checkpoint(given: str | Path, run_dir: str | Path | None) -> Path:
    """A checkpoint the user named: the path as given, else the same path inside the run
    folder (`--checkpoint train/train_checkpoint_68.pt --run-dir R`); the path as given when
    neither exists, for the loader to refuse."""
    path = Path(given)
    if not path.exists() and run_dir is not None and (Path(run_dir) / path).exists():
        return Path(run_dir) / path
    return path


def stage_home(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint sits in (`<run>/<stage>/<file>.pt`), None elsewhere."""
    return checkpoint.parent.parent if checkpoint.parent.name in STAGES else None


# --------------------------------------------------------------------------- the config


def resolve_config(args: argparse.Namespace, overrides: Sequence[str], saved_path: Path,
                   sections: Sequence[str] | None = None, *,
                   seeded_from: str | None = None) -> tuple[Config, bool]:
    """The config of a run; (config, resumed). A run folder's saved config is the base.

    Without a saved config: preset -> --config -> overrides. With one, the saved config plus the
    overrides, or the explicitly given preset/--config; either way only runtime keys (epochs,
    time limits, caches) may differ from what the folder was created with, within `sections`
    (the sections the calling stage is built from; None = all). `seeded_from`: the saved config
    was copied just now from this checkpoint (train --from into a new folder), which is what
    a refusal then names.
    """
    if not saved_path.is_file():
        return load_config(args.preset or "default", args.config, overrides), False
    saved = read_config(saved_path)
    if args.preset or args.config:
        candidate = load_config(args.preset or "default", args.config, overrides)
    else:
        candidate = copy.deepcopy(saved)
        for item in overrides:
            apply_override(candidate, item)
        validate(candidate)
    ignore = runtime_keys()
    if sections is not None and "train" not in sections:  # compared as a pretraining
        ignore |= keys_pretraining_ignores(saved)
    differences = config_differences(config_to_dict(saved), config_to_dict(candidate),
                                     ignore=ignore, sections=sections)
    if differences and seeded_from:
        raise ConfigError(
            f"{seeded_from} was pretrained with another config than the one given here:\n  "
            + "\n  ".join(differences)
            + "\nwith --from, the checkpoint's config is used: leave out --preset and --config "
              "(overrides of runtime keys and of the train section may stay)")
    if differences:
        raise ConfigError(
            f"the run folder {saved_path.parent} was created with another config:\n  "
            + "\n  ".join(differences)
            + "\nonly runtime keys (" + ", ".join(sorted(runtime_keys()))
            + ") may change on resume; use a new --run-dir for a different run")
    return candidate, True
