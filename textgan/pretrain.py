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

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping, EMAHandler
from torch import nn

from textgan.checkpoint import RNGStates, RunMeta
from textgan import parallel
from textgan.cli import config_parser, parse_config_args, run_main
from textgan.config import STAGE_SECTIONS, Config
from textgan.engines import create_pretrain_trainer
from textgan.handlers import markdown_table
from textgan.models import Encoder, build_vae, code_dim, vae_parameters
from textgan.models.markers import salient_tokens
from textgan.optim import build_optimizer
from textgan.prepare import PreparedData, prepare_data
from textgan.runs import resolve_config
from textgan.sampling import LoadedModel, sample_by_style, style_label
from textgan.schedules import KL_WEIGHT, WORD_DROPOUT, make_pretrain_schedules
from textgan.stage import (
    StageParts,
    add_runtime_arguments,
    run_paths,
    run_stage,
    seed_processes,
)
from textgan.tokenizer import Tokenizer
from textgan.vae_validation import create_vae_evaluator

log = logging.getLogger("textgan.pretrain")

STAGE = "pretrain"


def build_parser() -> argparse.ArgumentParser:
    parser = config_parser("python -m textgan.pretrain", __doc__)
    add_runtime_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, overrides = parse_config_args(build_parser(), argv)
    # a config mistake is reported here, once, before any process is started
    resolve_config(args, overrides, run_paths(args).config, STAGE_SECTIONS[STAGE])
    return parallel.launch(run, args, overrides)


def run(args: argparse.Namespace, overrides: Sequence[str]) -> dict[str, Any]:
    """The stage in one process (of one or several: see textgan.parallel)."""
    return run_stage(args, overrides, STAGE_SECTIONS[STAGE], prepare_data, build_pretrain)


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


def build_pretrain(cfg: Config, data: PreparedData, device: torch.device) -> StageParts:
    """The VAE stage on freshly built networks (drawn from the global RNG: seed it first):
    what `run_stage` runs, and what the benchmarks time."""
    tokenizer, num_classes = data.tokenizer, data.num_classes
    model = build_model(cfg, data, device)
    optimizer = build_optimizer(vae_parameters((model["encoder"], model["generator"])),
                                cfg.pretrain)
    schedules = make_pretrain_schedules(cfg.pretrain)
    trainer = create_pretrain_trainer(
        model["encoder"], model["generator"], optimizer, cfg=cfg.pretrain,
        num_classes=num_classes, unk_id=tokenizer.unk_id, pad_id=tokenizer.pad_id,
        bos_id=tokenizer.bos_id, dataset_size=len(data.splits["train"]), device=device)
    ema = EMAHandler(model, momentum=cfg.pretrain.ema_momentum) \
        if cfg.pretrain.ema_momentum > 0 else None
    eval_model = ema.ema_model if ema else model  # validation and samples use the EMA weights
    evaluator = create_vae_evaluator(
        eval_model["encoder"], eval_model["generator"], tokenizer=tokenizer,
        num_classes=num_classes, max_len=cfg.data.max_tokens, device=device, seed=cfg.seed)
    early_stopping = make_early_stopping(cfg, trainer)
    to_save: dict[str, Any] = {
        "model": model, "optimizer": optimizer, "trainer": trainer, **schedules,
        "early_stopping": early_stopping, "rng": RNGStates(),
        "meta": RunMeta(stage=STAGE, config=cfg, tokenizer=tokenizer,
                        attributes=data.corpus.attributes),
    }
    if ema:
        to_save["ema_model"] = ema.ema_model
    return StageParts(
        stage=STAGE, title="pretraining", data=data, trainer=trainer, schedules=schedules,
        to_save=to_save, evaluators=(evaluator,), early_stopping=early_stopping,
        score_name="validation ELBO", best_metric="elbo", ema=ema,
        progress_keys=["loss", "rec", "kl", "nll"], progress_attributes=[KL_WEIGHT, WORD_DROPOUT],
        tb_keys=["loss", "rec", "nll", "kl", "kl_term", "grad_norm"],
        tb_attributes=[KL_WEIGHT, WORD_DROPOUT], optimizers={"vae": optimizer},
        per_dim_key="kl_per_dim",
        show_text=lambda tb: show_text(tb, cfg, data, eval_model, trainer, evaluator, device))


def build_model(cfg: Config, data: PreparedData, device: torch.device) -> nn.ModuleDict:
    """The encoder and generator (style markers hidden when asked), equal in every process."""
    tokenizer = data.tokenizer
    vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size,
                    code_dim=code_dim(data.num_classes), pad_id=tokenizer.pad_id,
                    bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    if cfg.model.style_marker_salience > 0:
        hide_style_markers(vae.encoder, data, cfg.model.style_marker_salience, tokenizer)
    model = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator}).to(device)
    seed_processes(cfg.seed, model)
    return model


def make_early_stopping(cfg: Config, trainer: Engine) -> EarlyStopping:
    """ignite's EarlyStopping on the validation ELBO (it runs on the evaluator's end)."""
    early_stopping = EarlyStopping(patience=cfg.pretrain.patience or 1,
                                   score_function=lambda engine: engine.state.metrics["elbo"],
                                   trainer=trainer)
    # ignite gives the handler a logger with its own stderr handler; ours formats and routes it
    early_stopping.logger = log
    return early_stopping


def show_text(tb: Any, cfg: Config, data: PreparedData, eval_model: nn.ModuleDict,
              trainer: Engine, evaluator: Engine, device: torch.device) -> None:
    """Rank 0: each validation's greedy reconstructions and samples of every style as
    TensorBoard text."""
    live = LoadedModel(config=cfg, tokenizer=data.tokenizer, attributes=data.corpus.attributes,
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


if __name__ == "__main__":
    run_main(main)
