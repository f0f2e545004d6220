"""A trained run's model for inference: its networks rebuilt from a checkpoint.

    model = load_for_inference("checkpoints/tiny")     # a run folder or a .pt file
    model = load_for_inference("checkpoints/tiny", device="auto", use_ema=False)

Which checkpoint a run folder gives is `textgan.runs.find_checkpoint`: where the adversarial stage
ended (`train/train_checkpoint_<it>.pt`), else where pretraining ended, else its best by
validation ELBO. The EMA weights are used when the checkpoint has them (`use_ema=False` for the
raw ones). A train-stage checkpoint also holds the discriminator D (`LoadedModel.discriminator`,
None for a pretrain one), which `sampling.reconstruct`, `transfer` and `interpolate` use to read
the style of the given sentences. The config, tokenizer and attribute classes come from the
checkpoint itself; a run folder whose tokenizer.model is not the checkpoint's is refused.

Decoding from the model is `textgan.sampling`; the command line front end is
`python -m textgan.sample`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from textgan.checkpoint import read_checkpoint
from textgan.config import Config, config_from_dict
from textgan.devices import DEFAULT_DEVICE, resolve_device
from textgan.errors import CheckpointError, SamplingError, TokenizerError
from textgan.models import Discriminator, Encoder, Generator, build_vae, code_dim
from textgan.runs import (
    PRETRAIN_STAGE,
    TRAIN_STAGE,
    RunFolder,
    find_checkpoint,
    read_found_checkpoint,
    stage_home,
)
from textgan.styles import describe_attributes
from textgan.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# find_checkpoint and the stage names are textgan.runs'; importable from here (and sampling)
__all__ = ["PRETRAIN_STAGE", "TRAIN_STAGE", "LoadedModel", "find_checkpoint",
           "load_for_inference"]


@dataclass
class LoadedModel:
    """Everything decoding needs. `load_for_inference` builds it from a checkpoint; a training
    handler may build it from its live modules (checkpoint=None) to dump samples."""

    config: Config
    tokenizer: Tokenizer
    attributes: dict[str, list[str]]  # attribute -> class names in index order
    encoder: Encoder
    generator: Generator
    stage: str
    checkpoint: Path | None
    device: torch.device
    weights: str = "model"  # the checkpoint entry the weights came from: "model" or "ema_model"
    # The adversarial stage's attribute classifier, used to read the style of given sentences;
    # None for a pretrain-stage model (no D exists yet).
    discriminator: nn.Module | None = None

    @property
    def num_classes(self) -> list[int]:
        return [len(classes) for classes in self.attributes.values()]


def load_for_inference(path: str | Path, *, device: str | torch.device = DEFAULT_DEVICE,
                       use_ema: bool = True, run_dir: str | Path | None = None) -> LoadedModel:
    """Rebuild the encoder and generator of a run folder's checkpoint (or of a .pt file).

    The config, tokenizer and attribute classes come from the checkpoint itself. When the run
    folder (`run_dir`, or the folder the checkpoint sits in) has a tokenizer.model, it must be
    the one the checkpoint was trained with: a replaced tokenizer would decode every id to the
    wrong word without any error, so it is refused.
    """
    path = Path(path)
    # A missing path that is not a .pt file was meant as a run folder: say so in the error.
    if path.is_dir() or (not path.exists() and path.suffix != ".pt"):
        checkpoint, state = read_found_checkpoint(path)
        run_dir = path if run_dir is None else run_dir
    else:  # a file asked for by name is that file or an error, never another one
        checkpoint = path
        state = read_checkpoint(checkpoint)
    meta = state["meta"]
    stage = str(meta["stage"])
    if run_dir is None:
        run_dir = stage_home(checkpoint)
    tokenizer = _checkpoint_tokenizer(meta, checkpoint, None if run_dir is None else Path(run_dir))
    cfg = config_from_dict(dict(meta["config"]), origin=f"the config saved in {checkpoint}")
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in meta["attributes"].items()}
    target = resolve_device(device, error=SamplingError)

    vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size,
                    code_dim=code_dim([len(c) for c in attributes.values()]),
                    pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    key = "ema_model" if use_ema and "ema_model" in state else "model"
    if key not in state:
        raise CheckpointError(f"{checkpoint} holds no model weights (no 'model' entry)")
    # The stages save the pair under this ModuleDict layout ("encoder.*", "generator.*").
    modules = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator})
    try:
        modules.load_state_dict(state[key], strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{checkpoint}: the '{key}' weights do not fit the model its own config describes "
            f"({str(error).splitlines()[0]} ...)") from None
    modules.to(target).eval()
    discriminator = None
    if "discriminator" in state:
        discriminator = _load_discriminator(state["discriminator"], cfg, tokenizer, attributes,
                                            checkpoint)
        discriminator.to(target).eval()
    log.info("loaded %s (%s stage, %s weights%s) on %s; attributes: %s", checkpoint, stage,
             "EMA" if key == "ema_model" else "raw",
             ", with discriminator" if discriminator is not None else "", target,
             describe_attributes(attributes) or "none")
    return LoadedModel(config=cfg, tokenizer=tokenizer, attributes=attributes,
                       encoder=vae.encoder, generator=vae.generator, stage=stage,
                       checkpoint=checkpoint, device=target, weights=key,
                       discriminator=discriminator)


def _load_discriminator(weights: object, cfg: Config, tokenizer: Tokenizer,
                        attributes: Mapping[str, Sequence[str]],
                        checkpoint: Path) -> Discriminator:
    """D rebuilt from the checkpoint's own config section and loaded strictly."""
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{checkpoint}: its 'discriminator' entry is a "
                              f"{type(weights).__name__}, not a state dict")
    try:
        discriminator = Discriminator(cfg.discriminator, vocab_size=tokenizer.vocab_size,
                                      num_classes=[len(c) for c in attributes.values()],
                                      pad_id=tokenizer.pad_id)
    except ValueError as error:  # e.g. no attributes: a D has nothing to predict
        raise CheckpointError(f"{checkpoint}: its discriminator cannot be rebuilt: {error}") \
            from None
    try:
        discriminator.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{checkpoint}: the 'discriminator' weights do not fit the discriminator its own "
            f"config describes ({str(error).splitlines()[0]} ...)") from None
    return discriminator


def _checkpoint_tokenizer(meta: Mapping[str, object], checkpoint: Path,
                          run_dir: Path | None) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_bytes(meta["tokenizer_model"])  # type: ignore[arg-type]
    except TokenizerError as error:
        raise TokenizerError(f"{checkpoint}: its stored tokenizer: {error}") from None
    if tokenizer.sha256 != meta["tokenizer_sha256"]:
        raise CheckpointError(f"{checkpoint} is damaged: its tokenizer bytes do not match the "
                              "sha256 recorded beside them")
    folder = None if run_dir is None else RunFolder(run_dir)
    on_disk = None if folder is None else folder.tokenizer_sha256()
    if on_disk is not None and on_disk != tokenizer.sha256:
        model_file = folder.paths.tokenizer
        raise TokenizerError(
            f"{model_file} (sha256 {on_disk[:12]}...) is not the tokenizer {checkpoint} was "
            f"trained with (sha256 {tokenizer.sha256[:12]}...); the run folder was changed "
            "after training. Restore its tokenizer.model or pass the checkpoint from its own "
            "run folder")
    return tokenizer
