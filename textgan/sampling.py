"""Decoding from a trained model: sampling by style, reconstruction, style transfer,
interpolation, `print_sampled_sentence`.

    model = load_for_inference("checkpoints/tiny")     # a run folder or a .pt file
    print_sampled_sentence(model, "sentiment=positive", n=5, temperature=0.8)
    sentences = sample_by_style(model, n_per_style=3, seed=0)   # every style combination
    texts = reconstruct(model, ["the soup was warm ."])
    moved = transfer(model, ["the soup was warm ."], "sentiment=negative")  # [Transfer(...)]
    path = interpolate(model, "the soup was warm .", "we enjoy every visit .", steps=5)

or, without loading first, `print_sampled_sentence("checkpoints/tiny")`. The command line front
end is `python -m textgan.sample`.

Which checkpoint a run folder gives (`find_checkpoint`): the adversarial stage's newest
(`train/train_checkpoint_<it>.pt`), else the pretraining stage's best by validation ELBO, else its
newest. The EMA weights are used when the checkpoint has them (`use_ema=False` for the raw ones).
A train-stage checkpoint also holds the discriminator D (`LoadedModel.discriminator`, None for a
pretrain one), which `reconstruct`, `transfer` and `interpolate` use to read the style of the
given sentences.

Styles: "sentiment=positive,tense=past" names a class per attribute (`parse_style`); an
attribute left out is drawn from the uniform prior for each sentence (reconstruction, transfer
and interpolation read it from the source instead where they can: below). A class may also be
given by its index ("sentiment=1") when no class name of that attribute is itself a number (then
the number is read as the name), and a name matches case-insensitively when that is unambiguous.

Randomness: every draw comes from a `torch.Generator` seeded with `seed` on the model's device,
in this order -- z ~ N(0, I), the prior class of every attribute for every sentence (drawn even
for the attributes the style fixes, so fixing one attribute does not change the draws of the
others or the z's), then the decoder's token draws. The global torch RNG is never used: training
calls these functions for its sample dumps and must draw the same numbers with or without them.
The same seed therefore gives the same sentences, on the same device and torch version.

Decoding is batched: one `Generator.decode` over all sentences (in chunks of `DECODE_BATCH`
rows, to bound memory), never a Python loop over sentences. Every function puts the networks in
eval mode for the call and restores their previous modes, so a training handler can pass its
live modules (see `LoadedModel`).

Reconstruction (`reconstruct`) encodes with the posterior mean and decodes with c from `style`
where given, else with the source's own style as D reads it (a prior draw would flip the
sentiment of half the "reconstructions" of a model that follows c). Without D (a pretrain-stage
model) the source style cannot be read: the unnamed attributes are drawn from the prior, with
one warning per call. A pretrain-stage model was trained with c from the prior (or from the
label, `pretrain.code_source`) and with nothing making the generator listen to c, so its
reconstructions mostly ignore c; the adversarial stage is what makes c control the style.

Style transfer (`transfer`) is a reconstruction whose c changes only what was asked for: the
attributes the style names take the requested class, every other attribute keeps the class D
reads in the source sentence (so "make it negative" does not also flip the tense at random),
as in `reconstruct`; `reconstruct(model, sentences, style=s)` with D decodes exactly
`transfer(model, sentences, s)`. Without D the unnamed attributes are drawn from the prior, with
one warning per call. Interpolation (`interpolate`) decodes z_t = (1 - t) mu_a + t mu_b for t
evenly spaced in [0, 1], all with ONE c (the style where given, else D's reading of `a`, else one
prior draw), so only z moves along the path and its endpoints are the reconstructions of a and b
under that c.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from textgan.checkpoint import (
    Damaged,
    RunPaths,
    best_checkpoint,
    damaged_checkpoints,
    latest_checkpoint,
    read_checkpoint,
    set_aside_damaged,
    warn_damaged,
)
from textgan.config import Config, config_from_dict
from textgan.devices import resolve_device
from textgan.errors import CheckpointError, DamagedCheckpointError, SamplingError, TokenizerError
from textgan.models import (Discriminator, Encoder, Generator, Memory, build_vae, code_dim,
                             encode_source, fill_missing, one_hot_code, select_memory)
from textgan.models.generator import check_decoding
from textgan.tokenizer import Tokenizer
from textgan.models.modes import eval_mode

log = logging.getLogger(__name__)

PRETRAIN_STAGE = "pretrain"
TRAIN_STAGE = "train"
# Rows per decoder call: bounds the (B, V) logits and (B, max_len) buffers for large n, while
# staying big enough that the per-step Python overhead is shared by many sentences.
DECODE_BATCH = 512

StyleSpec = str | Mapping[str, str | int] | None


class SampledSentence(NamedTuple):
    """One generated sentence and the full style it was generated with."""

    text: str
    style: dict[str, str]  # every attribute -> class name, including those drawn from the prior
    ended: bool = True  # False when the decoder hit max_len before producing EOS


class Transfer(NamedTuple):
    """One sentence moved to a target style by `transfer`."""

    source: str  # the sentence as given
    text: str  # its decoding with the target style
    source_style: dict[str, str]  # D's reading of the source, every attribute ({} without D)
    target_style: dict[str, str]  # the full style decoded with: requested + kept (or prior)


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


# --------------------------------------------------------------------------- loading


def find_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint a run folder stands for: train newest > pretrain newest > pretrain best.

    Checkpoints cut short (empty, truncated) are set aside with a warning naming the one used
    instead (`textgan.checkpoint.latest_checkpoint`).
    """
    root = Path(run_dir)
    if not root.exists():
        raise CheckpointError(f"run folder not found: {root}")
    if not root.is_dir():
        raise CheckpointError(f"{root} is a file, not a run folder (pass it as the checkpoint)")
    paths = RunPaths(root)
    train_dir, pretrain_dir = paths.stage_dir(TRAIN_STAGE), paths.stage_dir(PRETRAIN_STAGE)
    # Where training ended, as `python -m textgan.train` starts from: with a KL weight below 1
    # the best validation ELBO (beta = 1) is an early epoch while reconstruction and samples
    # keep improving (NOTES.md, experiment D). Pass a best_checkpoint_*.pt file to use it.
    damaged: list[Damaged] = []  # set aside on the way, named with the file used instead
    found = (latest_checkpoint(train_dir, TRAIN_STAGE, damaged=damaged)
             or latest_checkpoint(pretrain_dir, PRETRAIN_STAGE, damaged=damaged)
             or best_checkpoint(pretrain_dir, damaged=damaged))
    if damaged:
        warn_damaged(damaged, f"using {found}, the newest intact checkpoint" if found else
                     f"no intact checkpoint is left in {root}")
    if found is None:
        unreadable = [path.name for folder, stage in ((train_dir, TRAIN_STAGE),
                                                      (pretrain_dir, PRETRAIN_STAGE))
                      for pattern in (f"{stage}_checkpoint_*", "best_checkpoint_*")
                      for path in damaged_checkpoints(folder, pattern)]
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


def _read_run_folder(run_dir: Path) -> tuple[Path, dict[str, Any]]:
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


def load_for_inference(path: str | Path, *, device: str | torch.device = "cpu",
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
        checkpoint, state = _read_run_folder(path)
        run_dir = path if run_dir is None else run_dir
    else:  # a file asked for by name is that file or an error, never another one
        checkpoint = path
        state = read_checkpoint(checkpoint)
    meta = state["meta"]
    stage = str(meta["stage"])
    if run_dir is None and checkpoint.parent.name in (PRETRAIN_STAGE, TRAIN_STAGE):
        run_dir = checkpoint.parent.parent
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
    model_file = None if run_dir is None else RunPaths(run_dir).tokenizer
    if model_file is not None and model_file.is_file():
        on_disk = hashlib.sha256(model_file.read_bytes()).hexdigest()
        if on_disk != tokenizer.sha256:
            raise TokenizerError(
                f"{model_file} (sha256 {on_disk[:12]}...) is not the tokenizer {checkpoint} was "
                f"trained with (sha256 {tokenizer.sha256[:12]}...); the run folder was changed "
                "after training. Restore its tokenizer.model or pass the checkpoint from its own "
                "run folder")
    return tokenizer


# --------------------------------------------------------------------------- styles


def describe_attributes(attributes: Mapping[str, Sequence[str]]) -> str:
    """'sentiment (negative, positive), tense (past, present)' for messages."""
    return ", ".join(f"{name} ({', '.join(classes)})" for name, classes in attributes.items())


def style_label(style: Mapping[str, str]) -> str:
    """'sentiment=positive, tense=past': how a style is shown next to a sentence."""
    return ", ".join(f"{name}={value}" for name, value in style.items())


def format_sentence(sentence: SampledSentence) -> str:
    """The line `print_sampled_sentence` writes: '[sentiment=positive, tense=past] text'."""
    if not sentence.style:  # a model without attributes: nothing to label
        return sentence.text
    return f"[{style_label(sentence.style)}] {sentence.text}"


def parse_style(text: str, attributes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """'sentiment=positive,tense=past' -> {'sentiment': 'positive', 'tense': 'past'}.

    Empty text (or whitespace) means no attribute fixed: all are drawn from the prior.
    Raises SamplingError naming the valid attributes and classes.
    """
    style: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:  # tolerates a trailing comma and the empty style
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            example = ",".join(f"{n}={c[0]}" for n, c in attributes.items() if c) or "name=class"
            raise SamplingError(f"style item '{item}' is not name=class (e.g. '{example}'); "
                                f"this model knows {describe_attributes(attributes) or 'none'}")
        if name in style:
            raise SamplingError(f"style '{text}' gives the attribute '{name}' twice")
        style[name] = value
    return check_style(style, attributes)


def check_style(style: Mapping[str, str | int], attributes: Mapping[str, Sequence[str]]
                ) -> dict[str, str]:
    """Validate a style mapping (class names or indices); class names in attribute order."""
    if style and not attributes:
        raise SamplingError("this model has no style attributes (it was trained on an "
                            "unlabelled corpus); leave the style out")
    resolved: dict[str, str] = {}
    for name, value in style.items():
        if name not in attributes:
            raise SamplingError(f"unknown style attribute '{name}'; this model knows "
                                f"{describe_attributes(attributes)}")
        resolved[name] = _class_name(name, value, list(attributes[name]))
    return {name: resolved[name] for name in attributes if name in resolved}


def _class_name(attribute: str, value: str | int, classes: list[str]) -> str:
    numeric_names = any(c.strip().isdigit() for c in classes)
    index: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str):
        if value in classes:
            return value
        folded = [c for c in classes if c.casefold() == value.casefold()]
        if len(folded) == 1:
            return folded[0]
        # Digits are read as an index only when no class is named by digits: with classes
        # "1" and "2", "1" must mean the class "1", never the class at index 1.
        if value.isdigit() and not numeric_names:
            index = int(value)
    if index is not None and 0 <= index < len(classes):
        return classes[index]
    hint = "" if numeric_names else f" or an index 0..{len(classes) - 1}"
    raise SamplingError(f"unknown class {value!r} for the style attribute '{attribute}'; use "
                        f"one of {', '.join(classes)}{hint}")


def resolve_style(style: StyleSpec, attributes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """A style given as text, a mapping or None (= every attribute from the prior)."""
    if style is None:
        return {}
    if isinstance(style, str):
        return parse_style(style, attributes)
    if isinstance(style, Mapping):
        return check_style(style, attributes)
    raise SamplingError(f"a style is 'name=class,...' text or a mapping, got "
                        f"{type(style).__name__}")


def all_styles(attributes: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of one class per attribute, first attribute slowest ([{}] if none)."""
    return [dict(zip(attributes, combination))
            for combination in itertools.product(*attributes.values())]


# --------------------------------------------------------------------------- decoding


def sample_sentences(model: LoadedModel, style: StyleSpec = None, n: int = 5, *,
                     strategy: str = "sample", temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0, seed: int = 0,
                     max_len: int | None = None) -> list[SampledSentence]:
    """n sentences from z ~ N(0, I) in `style` (attributes left out: prior, per sentence)."""
    fixed = resolve_style(style, model.attributes)
    _check_count(n, "n")
    max_len = _check_decoding(model, max_len=max_len, strategy=strategy,
                              temperature=temperature, top_k=top_k, top_p=top_p)
    generator = _seeded(model, seed)
    z = torch.randn((n, model.generator.z_dim), generator=generator,
                    device=model.device)  # (n, Z)
    labels, mask = _style_rows([fixed], model.attributes, model.device)  # (1, A) each
    return _generate(model, z, labels.expand(n, -1), mask.expand(n, -1), generator,
                     max_len=max_len, strategy=strategy, temperature=temperature, top_k=top_k,
                     top_p=top_p)


def sample_by_style(model: LoadedModel, n_per_style: int = 3, *, strategy: str = "sample",
                    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                    max_len: int | None = None) -> list[SampledSentence]:
    """n_per_style sentences for every style combination, grouped by style (all_styles order).

    The same n_per_style z's are used for every style, so sentence i of each group differs
    from sentence i of another only by c (and, with sampling, by the token draws): what a
    reader compares is the effect of the style code. One batched decode for all groups.
    """
    _check_count(n_per_style, "n_per_style")
    max_len = _check_decoding(model, max_len=max_len, strategy=strategy,
                              temperature=temperature, top_k=top_k, top_p=top_p)
    styles = all_styles(model.attributes)
    generator = _seeded(model, seed)
    z = torch.randn((n_per_style, model.generator.z_dim), generator=generator,
                    device=model.device)  # (n, Z)
    labels, mask = _style_rows(styles, model.attributes, model.device)  # (S, A) each
    # Style-major rows: style s owns rows s*n .. s*n+n-1, each group with z[0..n).
    return _generate(model, z.repeat(len(styles), 1),
                     labels.repeat_interleave(n_per_style, dim=0),
                     mask.repeat_interleave(n_per_style, dim=0), generator, max_len=max_len,
                     strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p)


def reconstruct(model: LoadedModel, sentences: Sequence[str], *, style: StyleSpec = None,
                strategy: str = "greedy", temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, seed: int = 0, max_len: int | None = None,
                truncate: bool = False) -> list[str]:
    """Encode each sentence (posterior mean) and decode it again, in one batch.

    c keeps the sentence's own style: the attributes `style` names take that class, every other
    one the class the discriminator reads in the sentence, as `transfer` does. A model without
    D (pretrain stage) cannot read it: those attributes are drawn from the prior (seeded), with
    one warning per call; such a model mostly ignores c anyway (module docstring). A sentence
    longer than data.max_tokens (EOS included) -- longer than anything the model was trained
    on -- is refused, or cut to that length with truncate=True.
    """
    sentences = _sentence_list(sentences, "reconstruct")
    if not sentences:
        return []
    fixed = resolve_style(style, model.attributes)
    max_len = _check_decoding(model, max_len=max_len, strategy=strategy,
                              temperature=temperature, top_k=top_k, top_p=top_p)
    tokens, lengths, z, memory = _encode(model, sentences, truncate=truncate)  # z: (N, Z)
    if _untrained_code(model) and fixed:
        log.info("a pretrain-stage model was not trained to follow c; the style given changes "
                 "its reconstructions little")
    generator = _seeded(model, seed)
    n = len(sentences)
    labels, mask = _style_rows([fixed], model.attributes, model.device)  # (1, A) each
    labels, mask = labels.expand(n, -1), mask.expand(n, -1)  # (N, A)
    read = _read_styles(model, tokens, lengths)  # (N, A) or None
    if read is None:
        _warn_no_discriminator(model, fixed)
    else:
        # every attribute fixed (given, else as read), so the prior draws _generate still makes
        # are all overridden
        labels, mask = torch.where(mask, labels, read), torch.ones_like(mask)
    decoded = _generate(model, z, labels, mask, generator,
                        max_len=max_len, strategy=strategy, temperature=temperature,
                        top_k=top_k, top_p=top_p, memory=memory)
    return [sentence.text for sentence in decoded]


def transfer(model: LoadedModel, sentences: Sequence[str], style: str | Mapping[str, str | int],
             *, strategy: str = "greedy", seed: int = 0, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, max_len: int | None = None,
             truncate: bool = False) -> list[Transfer]:
    """Rewrite each sentence in `style`, keeping its content (z) and its other attributes.

    z is the posterior mean of the sentence. c: the attributes `style` names take the requested
    class; every other attribute keeps the class the discriminator reads in the source sentence,
    or, for a model without one (pretrain stage), is drawn from the prior (seeded; one warning
    per call). Encoding, D's reading and decoding each run batched over all sentences (chunks of
    DECODE_BATCH rows). Long sentences: as `reconstruct` (refused, or cut with truncate=True).
    """
    target = _transfer_style(style, model.attributes)
    max_len = _check_decoding(model, max_len=max_len, strategy=strategy,
                              temperature=temperature, top_k=top_k, top_p=top_p)
    sentences = _sentence_list(sentences, "transfer")
    if not sentences:
        return []
    tokens, lengths, z, memory = _encode(model, sentences, truncate=truncate)  # z: (N, Z)
    n = len(sentences)
    requested, mask = _style_rows([target], model.attributes, model.device)  # (1, A) each
    requested, mask = requested.expand(n, -1), mask.expand(n, -1)  # (N, A)
    read = _read_styles(model, tokens, lengths)  # (N, A) or None
    if read is None:
        _warn_no_discriminator(model, target)
        labels = requested
        source_styles: list[dict[str, str]] = [{} for _ in sentences]
    else:
        # Every attribute is now fixed (requested, else as read), so the prior draws that
        # _generate makes are all overridden: with D, only the decoder's draws are random.
        labels, mask = torch.where(mask, requested, read), torch.ones_like(mask)
        source_styles = [_named_style(model.attributes, row) for row in read.tolist()]
    if _untrained_code(model):
        log.info("a pretrain-stage model was not trained to follow c; its transfers will "
                 "mostly reproduce the source sentences")
    decoded = _generate(model, z, labels, mask, _seeded(model, seed), max_len=max_len,
                        strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p,
                        memory=memory)
    return [Transfer(source=source, text=out.text, source_style=source_style,
                     target_style=out.style)
            for source, out, source_style in zip(sentences, decoded, source_styles)]


def interpolate(model: LoadedModel, a: str, b: str, *, steps: int, style: StyleSpec = None,
                strategy: str = "greedy", seed: int = 0, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, max_len: int | None = None,
                truncate: bool = False) -> list[str]:
    """`steps` sentences decoded from z_t = (1 - t) mu_a + t mu_b, t = linspace(0, 1, steps).

    mu_a, mu_b: the posterior means of a and b. One c for the whole path, so that only z moves:
    the attributes `style` names take that class; the others take the class the discriminator
    reads in `a`, or without one (pretrain stage) a single prior draw (seeded). The endpoints are
    therefore the reconstructions of a and b under that c, except for a generator with attention
    (model.attention), which writes every point from [z; c] alone, without reading a or b. One
    batched decode.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise SamplingError(f"steps must be a whole number >= 2 (the two endpoints included), "
                            f"got {steps!r}")
    for name, text in (("a", a), ("b", b)):
        if not isinstance(text, str):
            raise SamplingError(f"interpolate takes two sentences as text; {name} is a "
                                f"{type(text).__name__}")
    fixed = resolve_style(style, model.attributes)
    max_len = _check_decoding(model, max_len=max_len, strategy=strategy,
                              temperature=temperature, top_k=top_k, top_p=top_p)
    sentences = _sentence_list([a, b], "interpolate")
    # no memory: a point between two sentences has no source to read, so a generator with
    # attention writes it from [z; c] alone, as it samples
    tokens, lengths, means, _ = _encode(model, sentences, truncate=truncate)  # (2, Z) means
    labels, mask = _style_rows([fixed], model.attributes, model.device)  # (1, A) each
    read = _read_styles(model, tokens[:1], lengths[:1])  # D's reading of a: (1, A) or None
    if read is None:
        _warn_no_discriminator(model, fixed)
    else:
        labels = torch.where(mask, labels, read)
        mask = torch.ones_like(mask)
    generator = _seeded(model, seed)
    # Drawn once, then shared by every step (a per-row draw would change c along the path).
    labels = fill_missing(labels, mask, model.num_classes, generator=generator)  # (1, A)
    log.info("interpolating with %s", style_label(_named_style(model.attributes,
                                                               labels[0].tolist())) or "no c")
    t = torch.linspace(0.0, 1.0, steps, device=model.device).unsqueeze(1)  # (steps, 1)
    # Exactly mu_a at t = 0 and mu_b at t = 1 (0 * x + y == y), so the endpoints reproduce
    # the reconstructions bit for bit.
    z = (1.0 - t) * means[0] + t * means[1]  # (steps, Z)
    decoded = _generate(model, z, labels.expand(steps, -1),
                        torch.ones_like(mask).expand(steps, -1), generator, max_len=max_len,
                        strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p)
    return [sentence.text for sentence in decoded]


def print_sampled_sentence(model_or_path: LoadedModel | str | Path, style: StyleSpec = None,
                           n: int = 5, *, temperature: float = 1.0, top_k: int = 0,
                           top_p: float = 1.0, strategy: str = "sample", seed: int = 0,
                           max_len: int | None = None,
                           file: IO[str] | None = None) -> list[SampledSentence]:
    """Sample and write one '[style] sentence' line each to `file` (default stdout).

    model_or_path: a LoadedModel, or a run folder / checkpoint file to load (on the CPU).
    style None: n sentences for every style combination (`sample_by_style`); otherwise n in
    that style, attributes left out drawn from the prior (`sample_sentences`).
    """
    model = model_or_path if isinstance(model_or_path, LoadedModel) \
        else load_for_inference(model_or_path)
    options = dict(strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p,
                   seed=seed, max_len=max_len)
    if style is None:
        sentences = sample_by_style(model, n, **options)
    else:
        sentences = sample_sentences(model, style, n, **options)
    # Resolved at call time, not as a default argument: a redirected or captured stdout counts.
    out = sys.stdout if file is None else file
    for sentence in sentences:
        out.write(format_sentence(sentence) + "\n")
    return sentences


# --------------------------------------------------------------------------- internals


def _check_count(n: int, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise SamplingError(f"{name} must be a whole number >= 0, got {n!r}")


def _check_decoding(model: LoadedModel, *, max_len: int | None, strategy: str,
                    temperature: float, top_k: int, top_p: float) -> int:
    """The max_len to use (default data.max_tokens); impossible settings as SamplingError."""
    max_len = model.config.data.max_tokens if max_len is None else max_len
    try:
        check_decoding(max_len=max_len, strategy=strategy, temperature=temperature,
                       top_k=top_k, top_p=top_p)
    except ValueError as error:
        raise SamplingError(str(error)) from None
    return max_len


def _seeded(model: LoadedModel, seed: int) -> torch.Generator:
    # On the model's device: torch draws on a device only from a generator living there.
    return torch.Generator(device=model.device).manual_seed(int(seed))


def _style_rows(styles: Sequence[Mapping[str, str]], attributes: Mapping[str, Sequence[str]],
                device: torch.device) -> tuple[Tensor, Tensor]:
    """Class indices (S, A) and a mask (S, A) of the attributes each style fixes."""
    names = list(attributes)
    rows = [[list(attributes[name]).index(style[name]) if name in style else -1
             for name in names] for style in styles]
    labels = torch.tensor(rows, dtype=torch.long, device=device).reshape(len(styles), len(names))
    return labels, labels >= 0


def _generate(model: LoadedModel, z: Tensor, labels: Tensor, mask: Tensor,
              generator: torch.Generator, *, max_len: int, strategy: str, temperature: float,
              top_k: int, top_p: float, memory: Memory | None = None) -> list[SampledSentence]:
    """Decode z (N, Z) with c from labels where mask, else the prior; N rows, batched; `memory`:
    the N source sentences a generator with attention reads (reconstruction, transfer)."""
    # The prior is drawn for every row and attribute even where the style fixes it (see the
    # module docstring): fill_missing draws first, then selects.
    labels = fill_missing(labels, mask, model.num_classes, generator=generator)  # (N, A)
    code = one_hot_code(labels, model.num_classes)  # (N, C)
    texts: list[str] = []
    ended: list[bool] = []
    with eval_mode(model.generator):
        for start in range(0, z.shape[0], DECODE_BATCH):
            end = start + DECODE_BATCH
            out = model.generator.decode(z[start:end], code[start:end], max_len=max_len,
                                         strategy=strategy, temperature=temperature,
                                         top_k=top_k, top_p=top_p, generator=generator,
                                         memory=select_memory(memory, slice(start, end)))
            texts += model.tokenizer.decode(out.tokens.cpu())
            ended += out.ended.tolist()
    return [SampledSentence(text=text, style=_named_style(model.attributes, row), ended=done)
            for text, row, done in zip(texts, labels.tolist(), ended)]


def _named_style(attributes: Mapping[str, Sequence[str]], row: Sequence[int]) -> dict[str, str]:
    """Class indices of one row (A,) -> {attribute: class name}."""
    return {name: list(classes)[index]
            for (name, classes), index in zip(attributes.items(), row)}


def _untrained_code(model: LoadedModel) -> bool:
    """A pretrain-stage model whose c was drawn from the prior (pretrain.code_source = prior)
    never learnt what c means; with code_source = label it did."""
    return model.stage == PRETRAIN_STAGE and model.config.pretrain.code_source != "label"


def _sentence_list(sentences: Sequence[str], what: str) -> list[str]:
    """The sentences as a list; a bare string or an empty sentence is a SamplingError."""
    # A str is a Sequence of characters: without this check each letter would be a sentence.
    if isinstance(sentences, str):
        raise SamplingError(f"{what} takes a list of sentences; wrap one sentence in a list")
    sentences = list(sentences)
    empty = [i for i, text in enumerate(sentences) if not str(text).strip()]
    if empty:
        raise SamplingError(f"sentence(s) {empty} to {what} are empty; give some text")
    return sentences


def _encode(model: LoadedModel, sentences: list[str], *, truncate: bool
            ) -> tuple[Tensor, Tensor, Tensor, Memory | None]:
    """Token ids (N, T), lengths (N,) (both on the CPU), posterior means (N, Z) and, for a
    generator with attention, the sentences' memory (else None), batched."""
    tokens, lengths = _tokenize(model, sentences, truncate=truncate)  # (N, T), (N,)
    means, memories = [], []
    with torch.no_grad(), eval_mode(model.encoder, model.generator):
        for start in range(0, len(sentences), DECODE_BATCH):
            end = start + DECODE_BATCH
            chunk = tokens[start:end].to(model.device)
            posterior, memory = encode_source(model.encoder, model.generator, chunk,
                                              lengths[start:end].to(model.device),
                                              lengths[start:end])
            # The mean, not a draw: a reconstruction should show what the model encodes, not
            # one sample of noise around it.
            means.append(posterior.mean)
            memories.append(memory)
    z = torch.cat(means) if means else torch.zeros(0, model.generator.z_dim,
                                                   device=model.device)  # (N, Z)
    memory = None
    if memories and memories[0] is not None:  # every chunk has the same width T
        memory = Memory(*(torch.cat(parts) for parts in zip(*memories)))
    return tokens, lengths, z, memory


def _read_styles(model: LoadedModel, tokens: Tensor, lengths: Tensor) -> Tensor | None:
    """D's most likely class of every attribute for each sentence (N, A); None without D."""
    if model.discriminator is None:
        return None
    rows = []
    with torch.no_grad(), eval_mode(model.discriminator):
        for start in range(0, tokens.shape[0], DECODE_BATCH):
            end = start + DECODE_BATCH
            # lengths on the model's device too: the CNN reader builds its position weights
            # from them next to the embeddings.
            logits = model.discriminator(tokens[start:end].to(model.device),
                                         lengths[start:end].to(model.device))
            widths = [int(block.shape[-1]) for block in logits]
            if widths != model.num_classes:
                raise SamplingError(
                    f"the discriminator predicts {widths} classes per attribute, but the "
                    f"model's attributes have {model.num_classes} "
                    f"({describe_attributes(model.attributes)})")
            rows.append(torch.stack([block.argmax(dim=-1) for block in logits], dim=1))
    return torch.cat(rows)  # (N, A)


def _transfer_style(style: object, attributes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The target style of a transfer: at least one attribute named."""
    if not attributes:
        raise SamplingError("this model has no style attributes (it was trained on an "
                            "unlabelled corpus): there is no style to transfer to")
    if style is None:
        raise SamplingError("transfer needs a target style, e.g. "
                            f"'{_style_example(attributes)}'")
    target = resolve_style(style, attributes)  # type: ignore[arg-type]
    if not target:
        # Naming nothing would only reconstruct: most likely an empty --style by mistake.
        raise SamplingError(f"the target style {style!r} names no attribute; name at least one "
                            f"(e.g. '{_style_example(attributes)}'), or use reconstruct")
    return target


def _style_example(attributes: Mapping[str, Sequence[str]]) -> str:
    name, classes = next(iter(attributes.items()))
    return f"{name}={classes[-1]}"


def _warn_no_discriminator(model: LoadedModel, fixed: Mapping[str, str]) -> None:
    """Say once per call that unnamed attributes come from the prior, not the source."""
    unnamed = [name for name in model.attributes if name not in fixed]
    if unnamed:
        log.warning("this %s-stage model has no discriminator to read the style of the given "
                    "sentences: %s %s drawn from the prior instead of kept from the source "
                    "(train the adversarial stage, or name every attribute in the style)",
                    model.stage, ", ".join(unnamed), "is" if len(unnamed) == 1 else "are")


def _tokenize(model: LoadedModel, sentences: list[str], *, truncate: bool
              ) -> tuple[Tensor, Tensor]:
    """Ids + EOS right-padded with pad_id, as textgan.data's collate lays out a Batch.

    Built here rather than through textgan.data, which imports `datasets` (~1 s) for what is
    three lines of work on a handful of sentences.
    """
    tokenizer, limit = model.tokenizer, model.config.data.max_tokens
    encoded = tokenizer.encode(sentences)
    too_long = [(i, len(ids) + 1) for i, ids in enumerate(encoded) if len(ids) + 1 > limit]
    if too_long and not truncate:
        first, count = too_long[0]
        raise SamplingError(
            f"{len(too_long)} sentence(s) are longer than the {limit} tokens (EOS included) this "
            f"model was trained on; e.g. sentence {first} ({sentences[first][:40]!r}...) has "
            f"{count}. Shorten them, or truncate them (truncate=True, --truncate)")
    if too_long:
        log.warning("%d sentence(s) cut to %d tokens (EOS included)", len(too_long), limit)
    unknown = sum(1 for ids in encoded if tokenizer.unk_id in ids)
    if unknown:
        log.warning("%d sentence(s) hold pieces outside the vocabulary (read as <unk>)", unknown)
    rows = [torch.tensor(ids[:limit - 1] + [tokenizer.eos_id], dtype=torch.long)
            for ids in encoded]
    tokens = pad_sequence(rows, batch_first=True, padding_value=tokenizer.pad_id)  # (N, T)
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)  # (N,)
    return tokens, lengths
