"""VAE pretraining, the first stage of Hu et al. 2017 (Algorithm 1, line 1).

On a CPU:

    python -m textgan.pretrain --preset tiny     # seconds: the whole stage on a tiny model
    python -m textgan.pretrain                   # the default preset: minutes on 2 cores

Trains the encoder q(z|x) and the generator p(x|z,c) with an EOS-aware reconstruction loss and
beta(t) * KL (KL annealing, free bits, word dropout) on all sentences, labelled or not. The run
folder (checkpoints/<preset>, or --run-dir) receives config.toml, the tokenizer, checkpoints
(the last few and the best by validation ELBO) and TensorBoard logs in tb/pretrain.

Running the same command again resumes from the newest checkpoint. A finished stage is not
restarted: it says so; raise --pretrain.epochs to extend it. Ctrl-C saves a checkpoint first.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # a mistyped config key fails at once, before the imports below (torch, datasets, ignite)
    from textgan.cli import check_config_args_early

    check_config_args_early(sys.argv[1:])

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping, EMAHandler
from ignite.utils import manual_seed
from torch import nn

from textgan.checkpoint import (
    RNGStates,
    RunMeta,
    make_best_checkpointer,
    make_checkpointer,
)
from textgan import parallel
from textgan.cli import config_parser, parse_config_args, resolve_run_config, run_main
from textgan.config import STAGE_SECTIONS
from textgan.engines import create_pretrain_trainer
from textgan.handlers import (
    attach_interrupt_checkpoint,
    attach_nan_stop,
    attach_progress,
    attach_sampler_epochs,
    attach_tensorboard,
    attach_time_limit,
    markdown_table,
)
from textgan.models import Encoder, build_vae, code_dim, vae_parameters
from textgan.models.markers import salient_tokens
from textgan.optim import build_optimizer
from textgan.prepare import PreparedData, prepare_data
from textgan.sampling import LoadedModel, sample_by_style, style_label
from textgan.schedules import (
    KL_WEIGHT,
    WORD_DROPOUT,
    attach_schedules,
    make_pretrain_schedules,
)
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
from textgan.tokenizer import Tokenizer
from textgan.validation import create_vae_evaluator

log = logging.getLogger("textgan.pretrain")

STAGE = "pretrain"


def build_parser() -> argparse.ArgumentParser:
    parser = config_parser("python -m textgan.pretrain", __doc__)
    add_runtime_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, overrides = parse_config_args(build_parser(), argv)
    # a config mistake is reported here, once, before any process is started
    resolve_run_config(args, overrides, run_paths(args).config, STAGE_SECTIONS[STAGE])
    return parallel.launch(run, args, overrides)


def hide_style_markers(encoder: Encoder, data: PreparedData, threshold: float,
                       tokenizer: Tokenizer) -> None:
    """Choose the encoder's style markers from the labelled training sentences (a resumed run
    then restores the same ones from its checkpoint) and say which they are."""
    markers = salient_tokens(data.splits["train"], data.attribute_names, data.num_classes,
                             vocab_size=tokenizer.vocab_size, threshold=threshold)
    encoder.set_style_markers(markers)
    hidden = markers.nonzero().flatten().tolist()
    log.info("style markers: %d of %d tokens hidden from the encoder (salience >= %g), e.g. %s",
             len(hidden), tokenizer.vocab_size, threshold,
             " ".join(tokenizer.id_to_piece(i) for i in hidden[:12]) or "none")


def run(args: argparse.Namespace, overrides: Sequence[str]) -> dict[str, Any]:
    """The stage in one process (of one or several: see textgan.parallel)."""
    paths, cfg, device = open_run(args, overrides, STAGE_SECTIONS[STAGE])
    main_process = parallel.is_main_process()
    manual_seed(cfg.seed)

    data = prepare_data(cfg, paths, device=device)
    tokenizer, num_classes = data.tokenizer, data.num_classes
    vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size, code_dim=code_dim(num_classes),
                    pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    if cfg.model.style_marker_salience > 0:
        hide_style_markers(vae.encoder, data, cfg.model.style_marker_salience, tokenizer)
    model = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator}).to(device)
    seed_processes(cfg.seed, model)
    optimizer = build_optimizer(vae_parameters(vae), cfg.pretrain)
    schedules = make_pretrain_schedules(cfg.pretrain)
    trainer = create_pretrain_trainer(
        vae.encoder, vae.generator, optimizer, cfg=cfg.pretrain, num_classes=num_classes,
        unk_id=tokenizer.unk_id, pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
        dataset_size=len(data.splits["train"]), device=device)

    ema = EMAHandler(model, momentum=cfg.pretrain.ema_momentum) \
        if cfg.pretrain.ema_momentum > 0 else None
    eval_model = ema.ema_model if ema else model  # validation and samples use the EMA weights
    evaluator = create_vae_evaluator(
        eval_model["encoder"], eval_model["generator"], tokenizer=tokenizer,
        num_classes=num_classes, max_len=cfg.data.max_tokens, device=device, seed=cfg.seed)
    early_stopping = EarlyStopping(patience=cfg.pretrain.patience or 1,
                                   score_function=lambda engine: engine.state.metrics["elbo"],
                                   trainer=trainer)
    # ignite gives the handler a logger with its own stderr handler; ours formats and routes it
    early_stopping.logger = log

    stage_dir = paths.stage_dir(STAGE)
    to_save: dict[str, Any] = {
        "model": model, "optimizer": optimizer, "trainer": trainer, **schedules,
        "early_stopping": early_stopping, "rng": RNGStates(),
        "meta": RunMeta(stage=STAGE, config=cfg, tokenizer=tokenizer,
                        attributes=data.corpus.attributes),
    }
    if ema:
        to_save["ema_model"] = ema.ema_model
    best = make_best_checkpointer(to_save, stage_dir, trainer, "elbo", 1.0)
    checkpointer = make_checkpointer({**to_save, "best_checkpointer": best}, stage_dir, STAGE,
                                     keep_last=cfg.pretrain.keep_last)

    resumed_from = resume(STAGE, cfg, tokenizer, stage_dir,
                          {**to_save, "best_checkpointer": best, "checkpointer": checkpointer})
    if cfg.pretrain.patience and early_stopping.counter >= cfg.pretrain.patience:
        log.info("pretraining stopped early at epoch %d (no better validation ELBO for %d "
                 "validations); nothing to do", trainer.state.epoch, cfg.pretrain.patience)
        return summary(STAGE, paths, trainer, {}, finished=True)
    if is_finished(STAGE, trainer, cfg.pretrain.epochs):
        return summary(STAGE, paths, trainer, {}, finished=True)

    # Order matters: schedules before the step reads them; validation before the epoch-end
    # checkpoint, so the checkpoint holds the updated best score and early-stopping counter.
    attach_schedules(trainer, schedules)
    attach_sampler_epochs(trainer, data.train_loader.batch_sampler)
    if ema:
        ema.attach(trainer)
    attach_nan_stop(trainer)
    valid_loader = validation_loader(data, cfg)  # the whole split, or data.valid_sample of it
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda: evaluator.run(valid_loader))
    evaluator.add_event_handler(Events.COMPLETED, best)
    if cfg.pretrain.patience:
        evaluator.add_event_handler(Events.COMPLETED, early_stopping)
    evaluator.add_event_handler(Events.COMPLETED, log_validation, trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    if cfg.pretrain.checkpoint_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=cfg.pretrain.checkpoint_every),
                                  checkpointer)
    trainer.add_event_handler(Events.COMPLETED, save_unless_nan, checkpointer)
    # after the epoch-end and run-end handlers: see attach_agreed_stop
    attach_time_limit(trainer, cfg.pretrain.time_limit)
    attach_interrupt_checkpoint(trainer, checkpointer)
    attach_progress(trainer, ["loss", "rec", "kl", "nll"], state_attributes=[KL_WEIGHT,
                                                                             WORD_DROPOUT],
                    disable=args.no_progress or not main_process)
    if not main_process:  # rank 0 alone writes TensorBoard and sample text
        trainer.run(data.train_loader, max_epochs=cfg.pretrain.epochs)
        return summary(STAGE, paths, trainer, evaluator.state.metrics or {}, finished=False,
                       resumed_from=resumed_from)
    tb = attach_tensorboard(trainer, evaluator, paths.tensorboard_dir(STAGE),
                            output_keys=["loss", "rec", "nll", "kl", "kl_term", "grad_norm"],
                            state_attributes=[KL_WEIGHT, WORD_DROPOUT],
                            optimizers={"vae": optimizer}, every=cfg.pretrain.log_every,
                            per_dim_key="kl_per_dim")

    live = LoadedModel(config=cfg, tokenizer=tokenizer, attributes=data.corpus.attributes,
                       encoder=eval_model["encoder"], generator=eval_model["generator"],
                       stage=STAGE, checkpoint=None, device=device)

    @evaluator.on(Events.COMPLETED)
    def _text_samples(engine: Engine) -> None:
        step = trainer.state.iteration
        tb.writer.add_text("valid/reconstructions",
                           markdown_table(["sentence", "greedy reconstruction"],
                                          engine.state.examples), step)
        if cfg.pretrain.samples_per_style:
            sentences = sample_by_style(live, cfg.pretrain.samples_per_style, seed=cfg.seed)
            tb.writer.add_text("samples", markdown_table(
                ["style", "sentence"], [(style_label(s.style), s.text) for s in sentences]), step)

    try:
        trainer.run(data.train_loader, max_epochs=cfg.pretrain.epochs)
        write_hparams(tb, cfg, evaluator.state.metrics if evaluator.state else {})
    finally:
        tb.close()
    return summary(STAGE, paths, trainer, evaluator.state.metrics or {}, finished=False,
                   resumed_from=resumed_from)


if __name__ == "__main__":
    run_main(main)
