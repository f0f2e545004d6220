"""Adversarial training, the second stage of Hu et al. 2017 (wake-sleep with a discriminator).

On a CPU, after pretraining the same run folder:

    python -m textgan.pretrain --preset tiny && python -m textgan.train --preset tiny   # seconds
    python -m textgan.pretrain && python -m textgan.train                              # minutes

Starts from the newest pretrain checkpoint of the run folder (where pretraining ended; or
--from CKPT, e.g. the best by validation ELBO or one from another folder) with the config and tokenizer stored there;
this stage's settings (the [train] and [discriminator] sections) are the ones saved in the run
folder when it was created (from its preset), changed by overrides -- or taken afresh from
--preset/--config when one is given (the pretrain sections must still match). First the discriminator D learns the labelled sentences alone (train.d_warmup_steps),
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
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from ignite.utils import manual_seed
from torch import nn

from textgan.checkpoint import (
    RNGStates,
    RunMeta,
    RunPaths,
    check_compatible,
    latest_checkpoint,
    make_checkpointer,
    read_checkpoint,
    restore,
)
from textgan import parallel
from textgan.cli import config_parser, parse_config_args, resolve_run_config, run_main
from textgan.config import STAGE_SECTIONS, config_from_dict, save_config
from textgan.corpora.corpus import MISSING_LABEL
from textgan.engines import TRAIN_OUTPUTS, AdversarialSteps, create_train_trainer
from textgan.errors import CheckpointError, ConfigError, CorpusError
from textgan.handlers import (
    attach_interrupt_checkpoint,
    attach_nan_stop,
    attach_progress,
    attach_sampler_epochs,
    attach_tensorboard,
    attach_time_limit,
    markdown_table,
)
from textgan.losses import class_weights_from_labels
from textgan.models import Discriminator, build_vae, code_dim
from textgan.optim import make_optimizer
from textgan.prepare import prepare_data
from textgan.sampling import LoadedModel, sample_by_style, style_label, transfer
from textgan.schedules import HARD_RELAXATION, TEMPERATURE, attach_schedules, make_train_schedules
from textgan.stage import (
    add_runtime_arguments,
    is_finished,
    log_validation,
    open_run,
    resume,
    run_paths,
    save_unless_nan,
    seed_processes,
    summary,
    validation_loader,
    write_hparams,
)
from textgan.style_validation import create_style_evaluator, style_metric_names
from textgan.tokenizer import Tokenizer
from textgan.validation import VAE_METRICS, create_vae_evaluator

log = logging.getLogger("textgan.train")

STAGE = "train"


def build_parser() -> argparse.ArgumentParser:
    parser = config_parser("python -m textgan.train", __doc__)
    add_runtime_arguments(parser)
    parser.add_argument("--from", dest="from_checkpoint", metavar="CKPT", default=None,
                        help="start from this pretrain checkpoint instead of the run folder's")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, overrides = parse_config_args(build_parser(), argv)
    paths = run_paths(args)
    # mistakes are reported here, once, before any process is started
    if not args.from_checkpoint:
        find_pretrained(paths, None)
        resolve_run_config(args, overrides, paths.config, STAGE_SECTIONS["pretrain"])
    return parallel.launch(run, args, overrides)


def run(args: argparse.Namespace, overrides: Sequence[str]) -> dict[str, Any]:
    """The stage in one process (of one or several: see textgan.parallel)."""
    # --from seeds a new run folder with the checkpoint's config and tokenizer: rank 0 writes
    pretrained = parallel.main_process_first(
        lambda: find_pretrained(run_paths(args), args.from_checkpoint))
    # the pretrain sections must stay as the model was trained; this stage's are free
    paths, cfg, device = open_run(args, overrides, STAGE_SECTIONS["pretrain"])
    main_process = parallel.is_main_process()
    manual_seed(cfg.seed)

    data = prepare_data(cfg, paths, device=device)
    tokenizer, num_classes, attributes = data.tokenizer, data.num_classes, data.corpus.attributes
    if not attributes:
        raise CorpusError("the adversarial stage needs at least one labelled attribute; "
                          f"the corpus {cfg.data.source!r} has none (see data.label_columns)")
    vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size, code_dim=code_dim(num_classes),
                    pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    model = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator}).to(device)
    discriminator = Discriminator(cfg.discriminator, vocab_size=tokenizer.vocab_size,
                                  num_classes=num_classes, pad_id=tokenizer.pad_id).to(device)
    seed_processes(cfg.seed, model, discriminator)
    steps = AdversarialSteps(
        encoder=vae.encoder, generator=vae.generator, discriminator=discriminator,
        optimizers={}, cfg=cfg.train, num_classes=num_classes, max_len=cfg.data.max_tokens,
        class_weights=class_weights_for(data, cfg.train.class_weights, device),
        unk_id=tokenizer.unk_id, pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
        device=device, semi_supervised=has_unlabelled(data))
    t = cfg.train
    optimizers = {
        "d": make_optimizer(steps.params["d"], t.optimizer, lr=t.d_lr, weight_decay=t.weight_decay),
        "g": make_optimizer(steps.params["g"], t.optimizer, lr=t.lr, weight_decay=t.weight_decay),
        "e": make_optimizer(steps.params["e"], t.optimizer, lr=t.lr, weight_decay=t.weight_decay),
    }
    steps.optimizers = optimizers
    schedules = make_train_schedules(cfg.train)
    trainer = create_train_trainer(steps, d_warmup_steps=cfg.train.d_warmup_steps)

    oracle = None
    if cfg.data.source == "synthetic":
        from textgan.corpora.oracle import parse_many

        oracle = parse_many
    # validation metrics by name, for early stopping (filled by the evaluators below)
    validation: dict[str, Any] = {}
    early_stopping = make_early_stopping(cfg.train, trainer, validation,
                                         [*VAE_METRICS, *style_metric_names(attributes,
                                                                            oracle is not None)])

    stage_dir = paths.stage_dir(STAGE)
    to_save: dict[str, Any] = {
        "early_stopping": early_stopping,
        "model": model, "discriminator": discriminator, "optimizer_d": optimizers["d"],
        "optimizer_g": optimizers["g"], "optimizer_e": optimizers["e"], "trainer": trainer,
        **schedules, "rng": RNGStates(),
        "meta": RunMeta(stage=STAGE, config=cfg, tokenizer=tokenizer, attributes=attributes),
    }
    checkpointer = make_checkpointer(to_save, stage_dir, STAGE, keep_last=cfg.train.keep_last)
    resumed_from = resume(STAGE, cfg, tokenizer, stage_dir,
                          {**to_save, "checkpointer": checkpointer})
    if resumed_from is None:
        load_pretrained(model, pretrained, cfg, tokenizer)
    if cfg.train.patience and early_stopping.counter >= cfg.train.patience:
        log.info("adversarial training stopped early at epoch %d (no better %s for %d "
                 "validations); nothing to do", trainer.state.epoch, cfg.train.early_stop_metric,
                 cfg.train.patience)
        return summary(STAGE, paths, trainer, {}, finished=True)
    if is_finished(STAGE, trainer, cfg.train.epochs):
        return summary(STAGE, paths, trainer, {}, finished=True)

    vae_evaluator = create_vae_evaluator(
        vae.encoder, vae.generator, tokenizer=tokenizer, num_classes=num_classes,
        max_len=cfg.data.max_tokens, device=device, seed=cfg.seed)
    style_evaluator = create_style_evaluator(
        vae.generator, discriminator, tokenizer=tokenizer, attributes=attributes,
        max_len=cfg.data.max_tokens, device=device, relaxation=cfg.train.relaxation,
        tau=lambda: getattr(trainer.state, TEMPERATURE) or cfg.train.tau_start, seed=cfg.seed,
        oracle=oracle, encoder=vae.encoder, soft_mask=cfg.train.soft_mask)

    # Order matters: schedules before the step reads them; validation before the epoch-end
    # checkpoint so that a resumed run repeats nothing.
    attach_schedules(trainer, schedules)
    attach_sampler_epochs(trainer, data.train_loader.batch_sampler)
    attach_nan_stop(trainer, "d_loss")
    attach_nan_stop(trainer, "g_loss")

    valid_loader = validation_loader(data, cfg)  # the whole split, or data.valid_sample of it

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate(engine: Engine) -> None:
        vae_evaluator.run(valid_loader)
        style_evaluator.run(valid_loader)
        validation.clear()
        validation.update({**vae_evaluator.state.metrics, **style_evaluator.state.metrics})

    # one line for both: the VAE evaluator has run just before on the same sentences
    style_evaluator.add_event_handler(Events.COMPLETED, log_validation, trainer, vae_evaluator)
    if cfg.train.patience:
        # after _validate (registered first) has collected both evaluators' metrics; before the
        # epoch-end checkpoint, which then holds the updated counter
        trainer.add_event_handler(Events.EPOCH_COMPLETED, early_stopping)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    if cfg.train.checkpoint_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=cfg.train.checkpoint_every),
                                  checkpointer)
    trainer.add_event_handler(Events.COMPLETED, save_unless_nan, checkpointer)
    # after the epoch-end and run-end handlers: see attach_agreed_stop
    attach_time_limit(trainer, cfg.train.time_limit)
    attach_interrupt_checkpoint(trainer, checkpointer)
    attach_progress(trainer, ["d_loss", "d_acc_real", "g_loss", "attr_c", "rec"],
                    state_attributes=[TEMPERATURE], disable=args.no_progress or not main_process)
    if not main_process:  # rank 0 alone writes TensorBoard and sample text
        trainer.run(data.train_loader, max_epochs=cfg.train.epochs)
        return summary(STAGE, paths, trainer, {}, finished=False, resumed_from=resumed_from)
    tb = attach_tensorboard(trainer, style_evaluator, paths.tensorboard_dir(STAGE),
                            output_keys=TRAIN_OUTPUTS,
                            state_attributes=[TEMPERATURE, HARD_RELAXATION],
                            optimizers={"D": optimizers["d"], "G": optimizers["g"],
                                        "E": optimizers["e"]}, every=cfg.train.log_every)

    @vae_evaluator.on(Events.COMPLETED)
    def _vae_scalars(engine: Engine) -> None:
        for name, value in engine.state.metrics.items():
            if isinstance(value, (int, float)):
                tb.writer.add_scalar(f"valid_vae/{name}", value, trainer.state.iteration)

    live = LoadedModel(config=cfg, tokenizer=tokenizer, attributes=attributes,
                       encoder=vae.encoder, generator=vae.generator, stage=STAGE,
                       checkpoint=None, device=device, discriminator=discriminator)
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

    try:
        trainer.run(data.train_loader, max_epochs=cfg.train.epochs)
        metrics = {**(vae_evaluator.state.metrics or {}), **(style_evaluator.state.metrics or {})}
        write_hparams(tb, cfg, metrics)
    finally:
        tb.close()
    return summary(STAGE, paths, trainer, metrics, finished=False, resumed_from=resumed_from)


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


def find_pretrained(paths: RunPaths, from_checkpoint: str | None) -> Path:
    """The pretrain checkpoint to start from; with --from, seed a new run folder from it."""
    if from_checkpoint:
        path = Path(from_checkpoint)
        state = read_checkpoint(path)
        check_compatible(state, path, stages=("pretrain",))
        if not paths.config.is_file():  # a new run folder: the checkpoint's config and tokenizer
            save_config(config_from_dict(state["meta"]["config"], origin=str(path)), paths.config)
            Tokenizer.from_bytes(state["meta"]["tokenizer_model"]).save(paths.root)
        return path
    if not paths.config.is_file():
        raise CheckpointError(f"no pretrained run in {paths.root}: run python -m textgan.pretrain "
                              "with the same --run-dir/--preset first, or pass --from CKPT")
    # Where pretraining ended, not its best validation ELBO: with a KL weight below 1 the ELBO
    # (beta = 1) worsens while reconstruction keeps improving (NOTES.md, experiment D); pass
    # --from <run>/pretrain/best_checkpoint_*.pt to start from the best one instead.
    stage_dir = paths.stage_dir("pretrain")
    path = latest_checkpoint(stage_dir, "pretrain")
    if path is None:
        raise CheckpointError(f"{paths.root} has no pretrain checkpoint in {stage_dir}; run "
                              "python -m textgan.pretrain first")
    return path


def load_pretrained(model: nn.Module, path: Path, cfg: Any, tokenizer: Tokenizer) -> None:
    """The pretrained encoder and generator (their raw weights, not the EMA copy)."""
    state = read_checkpoint(path)
    check_compatible(state, path, config=cfg, tokenizer_sha256=tokenizer.sha256,
                     stages=("pretrain",))
    restore({"model": model}, state)
    log.info("starting from the pretrained VAE %s (iteration %d)", path,
             state["trainer"]["iteration"])


def training_labels(data: Any) -> torch.Tensor:
    """(N, A) int64 labels of the training split, -1 where missing."""
    if not data.attribute_names:
        return torch.zeros(len(data.splits["train"]), 0, dtype=torch.long)
    columns = data.splits["train"].select_columns(data.attribute_names).with_format("numpy")[:]
    return torch.stack([torch.as_tensor(columns[name]) for name in data.attribute_names], 1)


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
