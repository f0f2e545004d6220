"""Adversarial training, the second stage of Hu et al. 2017 (wake-sleep with a discriminator).

On a CPU, after pretraining the same run folder:

    python -m textgan.pretrain --preset tiny && python -m textgan.train --preset tiny   # seconds
    python -m textgan.pretrain && python -m textgan.train                              # minutes

Starts from the newest pretrain checkpoint of the run folder (where pretraining ended), with the
config and tokenizer stored there; or --from CKPT (e.g. the best by validation ELBO) or --from
RUN_DIR (where that folder's pretraining ended), which seeds a new run folder with that
checkpoint's config and tokenizer, so several adversarial stages can share one pretraining
(such a folder resumes with --run-dir alone, from its own checkpoints).
This stage's settings (the [train] and [discriminator] sections) are the ones saved in the run
folder when it was created (from its preset), changed by overrides -- or taken afresh from
--preset/--config when one is given (the pretrain sections must still match).

First the discriminator D learns the labelled sentences alone (train.d_warmup_steps),
then every iteration is a wake-sleep round: a D step on real and generated sentences, and one
G+E step (VAE loss, attribute loss through D on the soft generated sentence, independence
loss through the encoder). Checkpoints go to <run>/train, TensorBoard to <run>/tb/train.

Running the same command again resumes; a finished stage says so (raise --train.epochs to
extend). Ctrl-C saves a checkpoint first.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # a mistyped config key fails at once, before the imports below (torch, datasets, ignite)
    from textgan.cli import check_config_args_early

    check_config_args_early(sys.argv[1:])

import argparse
import difflib
import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from torch import nn

from textgan.checkpoint import (
    RNGStates,
    RunMeta,
    check_compatible,
    read_checkpoint,
    restore,
)
from textgan import parallel
from textgan.cli import config_parser, parse_config_args, run_main
from textgan.config import STAGE_SECTIONS, Config, config_from_dict, save_config
from textgan.corpora.corpus import MISSING_LABEL
from textgan.engines import TRAIN_OUTPUTS, AdversarialSteps, create_train_trainer
from textgan.errors import CheckpointError, ConfigError, CorpusError
from textgan.handlers import markdown_table
from textgan.losses import class_weights_from_labels
from textgan.models import Discriminator, build_vae, code_dim
from textgan.optim import build_optimizer
from textgan.prepare import PreparedData, prepare_data
from textgan.runs import PRETRAIN_STAGE, RunFolder, RunPaths, resolve_config
from textgan.sampling import LoadedModel, sample_by_style, style_label, transfer
from textgan.schedules import (
    HARD_RELAXATION,
    TEMPERATURE,
    make_kl_schedule,
    make_train_schedules,
    make_word_dropout_schedule,
)
from textgan.stage import (
    StageParts,
    add_runtime_arguments,
    run_paths,
    run_stage,
    seed_processes,
)
from textgan.style_validation import create_style_evaluator, style_metric_names
from textgan.tokenizer import Tokenizer
from textgan.vae_validation import VAE_METRICS, create_vae_evaluator

log = logging.getLogger("textgan.train")

STAGE = "train"


def build_parser() -> argparse.ArgumentParser:
    parser = config_parser("python -m textgan.train", __doc__)
    add_runtime_arguments(parser)
    parser.add_argument("--from", dest="from_checkpoint", metavar="CKPT", default=None,
                        help="start from this pretrain checkpoint instead of the run folder's, "
                             "or from where another run folder's pretraining ended (one "
                             "pretraining shared by several adversarial stages)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, overrides = parse_config_args(build_parser(), argv)
    paths = run_paths(args)
    # mistakes are reported here, once, before any process is started
    if not args.from_checkpoint:
        find_pretrained(paths, None)
        resolve_config(args, overrides, paths.config, STAGE_SECTIONS["pretrain"])
    return parallel.launch(run, args, overrides)


def run(args: argparse.Namespace, overrides: Sequence[str]) -> dict[str, Any]:
    """The stage in one process (of one or several: see textgan.parallel)."""
    # --from seeds a new run folder with the checkpoint's config and tokenizer: rank 0 writes
    pretrained = parallel.main_process_first(
        lambda: find_pretrained(run_paths(args), args.from_checkpoint))
    # the pretrain sections must stay as the model was trained; this stage's are free
    return run_stage(args, overrides, STAGE_SECTIONS["pretrain"], prepare_data,
                     functools.partial(build_train, pretrained=pretrained))


class Networks:
    """The adversarial stage's networks: encoder and generator (as `model`, the checkpoint's
    name for them) and the discriminator, equal in every process."""

    def __init__(self, cfg: Config, data: PreparedData, device: torch.device) -> None:
        tokenizer = data.tokenizer
        vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size,
                        code_dim=code_dim(data.num_classes), pad_id=tokenizer.pad_id,
                        bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
        self.encoder, self.generator = vae.encoder, vae.generator
        self.model = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator}).to(device)
        self.discriminator = Discriminator(
            cfg.discriminator, vocab_size=tokenizer.vocab_size, num_classes=data.num_classes,
            pad_id=tokenizer.pad_id).to(device)
        seed_processes(cfg.seed, self.model, self.discriminator)


def build_train(cfg: Config, data: PreparedData, device: torch.device, *,
                pretrained: Path | None = None) -> StageParts:
    """The adversarial stage on freshly built networks (drawn from the global RNG: seed it
    first), started from `pretrained` unless it resumes: what `run_stage` runs, and what the
    benchmarks time (without `pretrained`)."""
    if not data.corpus.attributes:
        raise CorpusError("the adversarial stage needs at least one labelled attribute; "
                          f"the corpus {cfg.data.source!r} has none (see data.label_columns)")
    nets = Networks(cfg, data, device)
    steps = adversarial_steps(cfg, data, nets, device)
    schedules = make_train_schedules(cfg.train)
    trainer = create_train_trainer(steps, d_warmup_steps=cfg.train.d_warmup_steps)
    evaluators, oracle = validation_evaluators(cfg, data, nets, trainer, device)
    # validation metrics by name, for early stopping (filled after each validation)
    validation: dict[str, Any] = {}
    early_stopping = make_early_stopping(
        cfg.train, trainer, validation,
        [*VAE_METRICS, *style_metric_names(data.corpus.attributes, oracle)])
    o = steps.optimizers
    to_save: dict[str, Any] = {
        "early_stopping": early_stopping,
        "model": nets.model, "discriminator": nets.discriminator, "optimizer_d": o["d"],
        "optimizer_g": o["g"], "optimizer_e": o["e"], "trainer": trainer,
        **schedules, "rng": RNGStates(),
        "meta": RunMeta(stage=STAGE, config=cfg, tokenizer=data.tokenizer,
                        attributes=data.corpus.attributes),
    }
    return StageParts(
        stage=STAGE, title="adversarial training", data=data, trainer=trainer,
        schedules=schedules, to_save=to_save, evaluators=evaluators,
        early_stopping=early_stopping, score_name=cfg.train.early_stop_metric,
        nan_keys=("d_loss", "g_loss"), validation=validation,
        progress_keys=["d_loss", "d_acc_real", "g_loss", "attr_c", "rec"],
        progress_attributes=[TEMPERATURE], tb_keys=TRAIN_OUTPUTS,
        tb_attributes=[TEMPERATURE, HARD_RELAXATION],
        optimizers={"D": o["d"], "G": o["g"], "E": o["e"]},
        fresh_start=(lambda: load_pretrained(nets.model, pretrained, cfg, data.tokenizer))
        if pretrained else None,
        show_text=lambda tb: show_text(tb, cfg, data, nets, trainer, evaluators, device))


def adversarial_steps(cfg: Config, data: PreparedData, nets: Networks,
                      device: torch.device) -> AdversarialSteps:
    """The D and G+E steps with their three optimizers (D's, G's, E's)."""
    tokenizer, t = data.tokenizer, cfg.train
    steps = AdversarialSteps(
        encoder=nets.encoder, generator=nets.generator, discriminator=nets.discriminator,
        optimizers={}, cfg=t, num_classes=data.num_classes, max_len=cfg.data.max_tokens,
        class_weights=class_weights_for(data, t.class_weights, device),
        unk_id=tokenizer.unk_id, pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
        device=device, semi_supervised=has_unlabelled(data))
    steps.optimizers = {
        "d": build_optimizer(steps.params["d"], t, lr=t.d_lr),
        "g": build_optimizer(steps.params["g"], t),
        "e": build_optimizer(steps.params["e"], t),
    }
    return steps


def validation_evaluators(cfg: Config, data: PreparedData, nets: Networks, trainer: Engine,
                          device: torch.device) -> tuple[tuple[Engine, Engine], bool]:
    """The VAE evaluator, then the style evaluator (D's accuracy, code usage, and on the
    synthetic corpus the oracle's scores); and whether the oracle is used."""
    oracle = None
    if cfg.data.source == "synthetic":
        from textgan.corpora.oracle import parse_many

        oracle = parse_many
    vae_evaluator = create_vae_evaluator(
        nets.encoder, nets.generator, tokenizer=data.tokenizer, num_classes=data.num_classes,
        max_len=cfg.data.max_tokens, device=device, seed=cfg.seed)
    style_evaluator = create_style_evaluator(
        nets.generator, nets.discriminator, tokenizer=data.tokenizer,
        attributes=data.corpus.attributes, max_len=cfg.data.max_tokens, device=device,
        relaxation=cfg.train.relaxation,
        tau=lambda: getattr(trainer.state, TEMPERATURE) or cfg.train.tau_start, seed=cfg.seed,
        oracle=oracle, encoder=nets.encoder, soft_mask=cfg.train.soft_mask)
    return (vae_evaluator, style_evaluator), oracle is not None


def show_text(tb: Any, cfg: Config, data: PreparedData, nets: Networks, trainer: Engine,
              evaluators: tuple[Engine, Engine], device: torch.device) -> None:
    """Rank 0: the VAE evaluator's scalars, and after each validation samples of every style
    and transfers of a few validation sentences, as TensorBoard text."""
    vae_evaluator, style_evaluator = evaluators

    @vae_evaluator.on(Events.COMPLETED)
    def _vae_scalars(engine: Engine) -> None:
        for name, value in engine.state.metrics.items():
            if isinstance(value, (int, float)):
                tb.writer.add_scalar(f"valid_vae/{name}", value, trainer.state.iteration)

    live = LoadedModel(config=cfg, tokenizer=data.tokenizer, attributes=data.corpus.attributes,
                       encoder=nets.encoder, generator=nets.generator, stage=STAGE,
                       checkpoint=None, device=device, discriminator=nets.discriminator)
    transfer_sources = data.corpus.splits["valid"]["text"][:cfg.train.transfer_examples]

    @style_evaluator.on(Events.COMPLETED)
    def _text_tables(engine: Engine) -> None:
        step = trainer.state.iteration
        if cfg.train.samples_per_style:
            sentences = sample_by_style(live, cfg.train.samples_per_style, seed=cfg.seed)
            tb.writer.add_text("samples", markdown_table(
                ["style", "sentence"], [(style_label(s.style), s.text) for s in sentences]), step)
        if transfer_sources:
            tb.writer.add_text("transfers", markdown_table(
                ["source", "target style", "transfer"], transfer_rows(live, transfer_sources)),
                step)


def make_early_stopping(cfg: Any, trainer: Engine, validation: dict[str, Any],
                        known: list[str]) -> EarlyStopping:
    """ignite's EarlyStopping on one validation metric of the stage (train.early_stop_metric)."""
    name = cfg.early_stop_metric
    if cfg.patience and name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        raise ConfigError(f"train.early_stop_metric={name!r} is not a validation metric of this "
                          f"run" + (f"; close: {', '.join(close)}" if close else "")
                          + f". Known: {', '.join(known)}")
    sign = 1.0 if cfg.early_stop_mode == "max" else -1.0
    stopping = EarlyStopping(patience=cfg.patience or 1, trainer=trainer,
                             score_function=lambda _: sign * float(validation[name]))
    # ignite gives the handler a logger with its own stderr handler; ours formats and routes it
    stopping.logger = log
    return stopping


def find_pretrained(paths: RunPaths, from_checkpoint: str | None) -> Path | None:
    """The pretrain checkpoint to start from; with --from, seed a new run folder from it.

    None for a folder seeded by --from whose stage has checkpoints of its own: it resumes from
    them, and its pretraining lives in the folder it came from."""
    if from_checkpoint:
        path = Path(from_checkpoint)
        if path.is_dir():
            ended = RunFolder(path).stage_end(PRETRAIN_STAGE)
            if ended is None:
                raise CheckpointError(f"--from {path}: that run folder has no pretrain "
                                      f"checkpoint in {RunPaths(path).stage_dir(PRETRAIN_STAGE)}"
                                      f"; run python -m textgan.pretrain --run-dir {path} first")
            path = ended
        state = read_checkpoint(path)
        check_compatible(state, path, stages=("pretrain",))
        if not paths.config.is_file():  # a new run folder: the checkpoint's config and tokenizer
            save_config(config_from_dict(state["meta"]["config"], origin=str(path)), paths.config)
            Tokenizer.from_bytes(state["meta"]["tokenizer_model"]).save(paths.root)
        return path
    if not paths.config.is_file():
        raise CheckpointError(f"no pretrained run in {paths.root}: run python -m textgan.pretrain "
                              "with the same --run-dir/--preset first, or pass --from CKPT")
    # where pretraining ended (runs.RunFolder.stage_end says why not its best); pass
    # --from <run>/pretrain/best_checkpoint_*.pt to start from the best one instead
    folder = RunFolder(paths.root)
    path = folder.stage_end(PRETRAIN_STAGE)
    if path is None and folder.stage_end(STAGE) is not None:
        return None
    if path is None:
        raise CheckpointError(f"{paths.root} has no pretrain checkpoint in "
                              f"{paths.stage_dir(PRETRAIN_STAGE)}; run python -m textgan.pretrain "
                              "first")
    return path


def load_pretrained(model: nn.Module, path: Path, cfg: Any, tokenizer: Tokenizer) -> None:
    """The pretrained encoder and generator (their raw weights, not the EMA copy)."""
    state = read_checkpoint(path)
    check_compatible(state, path, config=cfg, tokenizer_sha256=tokenizer.sha256,
                     stages=("pretrain",))
    restore({"model": model}, state)
    iterations = state["trainer"]["iteration"]
    log.info("starting from the pretrained VAE %s (iteration %d)", path, iterations)
    log_stage_differences(cfg, iterations)


def training_labels(data: Any) -> torch.Tensor:
    """(N, A) int64 labels of the training split, -1 where missing."""
    if not data.attribute_names:
        return torch.zeros(len(data.splits["train"]), 0, dtype=torch.long)
    columns = data.splits["train"].select_columns(data.attribute_names).with_format("numpy")[:]
    return torch.stack([torch.as_tensor(columns[name]) for name in data.attribute_names], 1)


def log_stage_differences(cfg: Config, pretrained_iterations: int) -> None:
    """Say when the VAE loss of this stage is not the one pretraining ended with: its beta and
    word dropout are settings of their own here (`train.kl_weight`, `train.word_dropout`), and
    a change between the stages is easy to miss.

    "Ended with" is the schedules' value at pretraining's last iteration
    (`pretrained_iterations` done), not their final value: a KL ramp longer than the
    pretraining stops short of kl_max (the yelp preset's 1,500-step ramp over an 865-iteration
    epoch ended at 0.173, not 0.3: NOTES.md, Y12).
    """
    pre, train_cfg = cfg.pretrain, cfg.train
    last = max(pretrained_iterations - 1, 0)
    final_beta = make_kl_schedule(pre).value_at(last)
    final_dropout = make_word_dropout_schedule(pre).value_at(last)
    changes = [f"{name} {before:.3g} -> {after:.3g}" for name, before, after in (
        ("KL weight", final_beta, train_cfg.kl_weight),
        ("word dropout", final_dropout, train_cfg.word_dropout))
        if not math.isclose(before, after, abs_tol=1e-9)]
    if changes:
        log.info("the VAE loss changes from pretraining's end: %s (train.kl_weight, "
                 "train.word_dropout)", ", ".join(changes))


def has_unlabelled(data: Any) -> bool:
    """Whether some training sentence lacks a label (semi-supervised training)."""
    return bool((training_labels(data) == MISSING_LABEL).any())


def class_weights_for(data: Any, kind: str, device: Any) -> list[Any]:
    """Per-attribute class weights from the training split's labels (None for 'none')."""
    if kind == "none":
        return [None] * len(data.num_classes)
    labels = training_labels(data)
    try:  # -1 (missing) labels are not counted
        weights = class_weights_from_labels(labels, data.num_classes, kind)
    except ValueError as error:
        raise CorpusError(f"train.class_weights={kind}: {error}") from None
    return [w.to(device) if w is not None else None for w in weights]


def transfer_rows(live: LoadedModel, sources: list[str]) -> list[tuple[str, str, str]]:
    """(source, target style, transfer) for every source and every single-attribute flip."""
    rows = []
    for attribute, values in live.attributes.items():
        for value in values:
            for item in transfer(live, sources, {attribute: value}):
                rows.append((item.source, f"{attribute}={value}", item.text))
    return rows


if __name__ == "__main__":
    run_main(main)
