"""Decoding from a trained model: sampling by style, reconstruction, style transfer,
interpolation, `print_sampled_sentence`.

    model = load_for_inference("checkpoints/tiny")     # a run folder or a .pt file
    print_sampled_sentence(model, "sentiment=positive", n=5, temperature=0.8)
    sentences = sample_by_style(model, n_per_style=3, seed=0)   # every style combination
    texts = reconstruct(model, ["the soup was warm ."])
    moved = transfer(model, ["the soup was warm ."], "sentiment=negative")  # [Transfer(...)]
    path = interpolate(model, "the soup was warm .", "we enjoy every visit .", steps=5)

or, without loading first, `print_sampled_sentence("checkpoints/tiny")`. The command line front
end is `python -m textgan.sample` (sample.py); this module is the library it calls.

The model comes from `textgan.trained_model` (`load_for_inference`: which checkpoint a run folder
gives, EMA weights, the discriminator D of a train-stage checkpoint) and styles are read by
`textgan.styles` ("sentiment=positive,tense=past"; an attribute left out is drawn from the
uniform prior for each sentence, except where reconstruction, transfer and interpolation read
it from the source: below). Both are re-exported here, so that `textgan.sampling` stays the one
import of the inference API; this module itself decodes.

Randomness: every draw comes from a `torch.Generator` seeded with `seed` on the model's device,
in this order -- z ~ N(0, I), the prior class of every attribute for every sentence (drawn even
for the attributes the style fixes, so fixing one attribute does not change the draws of the
others or the z's), then the decoder's token draws. The global torch RNG is never used: training
calls these functions for its sample dumps and must draw the same numbers with or without them.
The same seed therefore gives the same sentences, on the same device and torch version.

Decoding settings, the same for every function: `strategy` ("greedy" or "sample"), `temperature`,
`top_k`, `top_p` (sampling only), `max_len`, and `no_repeat_ngram` (n > 0: no n-gram written twice
in one sentence, as Hugging Face's `no_repeat_ngram_size`; 2 stops the loops a greedy decoder
falls into, "great great great", at the price of the ~1.5% of real Yelp sentences that repeat a
word pair themselves).

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
one warning per call. With more than one style strength (transfer.style_strengths, or the
`style_strengths` argument) a transfer is decoded again, with a stronger code
(`textgan.models.strengthen_code`), for the sentences whose rewrite D does not read as the
requested style with at least `min_confidence`; each keeps the first rewrite D accepts, else
the last. D is the model's own discriminator, never an evaluation judge.

Interpolation (`interpolate`) decodes z_t = (1 - t) mu_a + t mu_b for t
evenly spaced in [0, 1], all with ONE c (the style where given, else D's reading of `a`, else one
prior draw), so only z moves along the path and its endpoints are the reconstructions of a and b
under that c.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from textgan.devices import resolve_device
from textgan.errors import SamplingError
from textgan.models import (Memory, encode_source, fill_missing, one_hot_code, select_memory,
                            strengthen_code)
from textgan.models.generator import check_decoding
from textgan.models.modes import eval_mode
from textgan.styles import (
    StyleSpec,
    all_styles,
    check_style,
    describe_attributes,
    parse_style,
    resolve_style,
    style_label,
)
from textgan.trained_model import (
    PRETRAIN_STAGE,
    TRAIN_STAGE,
    LoadedModel,
    find_checkpoint,
    load_for_inference,
)

log = logging.getLogger(__name__)

# Rows per decoder call: bounds the (B, V) logits and (B, max_len) buffers for large n, while
# staying big enough that the per-step Python overhead is shared by many sentences.
DECODE_BATCH = 512

# The public inference API, wherever each name is defined (README, notebooks and the commands
# import it from here).
__all__ = [
    "DECODE_BATCH", "PRETRAIN_STAGE", "TRAIN_STAGE", "LoadedModel", "SampledSentence",
    "StyleSpec", "Transfer", "all_styles", "check_style", "describe_attributes",
    "find_checkpoint", "format_sentence", "interpolate", "load_for_inference", "parse_style",
    "print_sampled_sentence", "reconstruct", "resolve_device", "resolve_style",
    "sample_by_style", "sample_sentences", "strength_settings", "style_label", "transfer",
]


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
    strength: float = 1.0  # the style strength of the rewrite kept (transfer.style_strengths)


def format_sentence(sentence: SampledSentence) -> str:
    """The line `print_sampled_sentence` writes: '[sentiment=positive, tense=past] text'."""
    if not sentence.style:  # a model without attributes: nothing to label
        return sentence.text
    return f"[{style_label(sentence.style)}] {sentence.text}"


# --------------------------------------------------------------------------- decoding


def sample_sentences(model: LoadedModel, style: StyleSpec = None, n: int = 5, *,
                     strategy: str = "sample", temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0, no_repeat_ngram: int = 0, seed: int = 0,
                     max_len: int | None = None) -> list[SampledSentence]:
    """n sentences from z ~ N(0, I) in `style` (attributes left out: prior, per sentence)."""
    fixed = resolve_style(style, model.attributes)
    _check_count(n, "n")
    decoding = _check_decoding(model, max_len=max_len, strategy=strategy,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               no_repeat_ngram=no_repeat_ngram)
    generator = _seeded(model, seed)
    z = torch.randn((n, model.generator.z_dim), generator=generator,
                    device=model.device)  # (n, Z)
    labels, mask = _style_rows([fixed], model.attributes, model.device)  # (1, A) each
    return _generate(model, z, labels.expand(n, -1), mask.expand(n, -1), generator, decoding)


def sample_by_style(model: LoadedModel, n_per_style: int = 3, *, strategy: str = "sample",
                    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                    no_repeat_ngram: int = 0, seed: int = 0, max_len: int | None = None,
                    same_z: bool = True) -> list[SampledSentence]:
    """n_per_style sentences for every style combination, grouped by style (all_styles order).

    same_z=True: the same n_per_style z's are used for every style, so sentence i of each group
    differs from sentence i of another only by c (and, with sampling, by the token draws): what
    a reader compares is the effect of the style code. same_z=False draws a z for every
    sentence: independent samples, for statistics over the whole set (self-BLEU, distinct-n),
    where sentences written from one z would count as repeats of each other. One batched
    decode for all groups.
    """
    _check_count(n_per_style, "n_per_style")
    decoding = _check_decoding(model, max_len=max_len, strategy=strategy,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               no_repeat_ngram=no_repeat_ngram)
    styles = all_styles(model.attributes)
    generator = _seeded(model, seed)
    rows = n_per_style if same_z else n_per_style * len(styles)
    z = torch.randn((rows, model.generator.z_dim), generator=generator,
                    device=model.device)  # (n, Z) or (S*n, Z)
    labels, mask = _style_rows(styles, model.attributes, model.device)  # (S, A) each
    # Style-major rows: style s owns rows s*n .. s*n+n-1, each group with z[0..n) when shared.
    return _generate(model, z.repeat(len(styles), 1) if same_z else z,
                     labels.repeat_interleave(n_per_style, dim=0),
                     mask.repeat_interleave(n_per_style, dim=0), generator, decoding)


def reconstruct(model: LoadedModel, sentences: Sequence[str], *, style: StyleSpec = None,
                strategy: str = "greedy", temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, no_repeat_ngram: int = 0, seed: int = 0,
                max_len: int | None = None, truncate: bool = False) -> list[str]:
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
    decoding = _check_decoding(model, max_len=max_len, strategy=strategy,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               no_repeat_ngram=no_repeat_ngram)
    tokens, lengths, z, memory = _encode(model, sentences, truncate=truncate)  # z: (N, Z)
    if _untrained_code(model) and fixed:
        log.info("a pretrain-stage model was not trained to follow c; the style given changes "
                 "its reconstructions little")
    generator = _seeded(model, seed)
    # every attribute fixed (given, else as read), so the prior draws _generate still makes are
    # all overridden
    labels, mask = _style_as_read(model, fixed, tokens, lengths)  # (N, A) each
    decoded = _generate(model, z, labels, mask, generator, decoding, memory=memory)
    return [sentence.text for sentence in decoded]


def transfer(model: LoadedModel, sentences: Sequence[str], style: str | Mapping[str, str | int],
             *, strategy: str = "greedy", seed: int = 0, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, no_repeat_ngram: int = 0,
             max_len: int | None = None, truncate: bool = False,
             style_strengths: Sequence[float] | None = None,
             min_confidence: float | None = None) -> list[Transfer]:
    """Rewrite each sentence in `style`, keeping its content (z) and its other attributes.

    z is the posterior mean of the sentence. c: the attributes `style` names take the requested
    class; every other attribute keeps the class the discriminator reads in the source sentence,
    or, for a model without one (pretrain stage), is drawn from the prior (seeded; one warning
    per call). Encoding, D's reading and decoding each run batched over all sentences (chunks of
    DECODE_BATCH rows). Long sentences: as `reconstruct` (refused, or cut with truncate=True).

    `style_strengths` (default: the model's transfer.style_strengths) are tried in turn: the
    sentences whose rewrite D reads as the requested style with probability below
    `min_confidence` (default transfer.min_confidence; every named attribute counts) are
    rewritten at the next strength, the others keep theirs (module docstring). Without D only
    the first strength is used.
    """
    target = _transfer_style(style, model.attributes)
    decoding = _check_decoding(model, max_len=max_len, strategy=strategy,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               no_repeat_ngram=no_repeat_ngram)
    strengths, min_confidence = strength_settings(model, style_strengths, min_confidence)
    sentences = _sentence_list(sentences, "transfer")
    if not sentences:
        return []
    tokens, lengths, z, memory = _encode(model, sentences, truncate=truncate)  # z: (N, Z)
    n = len(sentences)
    requested, mask = _style_rows([target], model.attributes, model.device)  # (1, A) each
    requested, mask = requested.expand(n, -1), mask.expand(n, -1)  # (N, A)
    named = mask  # (N, A): the attributes to change, the only ones a strength pushes
    read = _read_styles(model, tokens, lengths)  # (N, A) or None
    if read is None:
        _warn_no_discriminator(model, target)
        if len(strengths) > 1:
            log.info("no discriminator to check the rewrites (pretrain stage): only the first "
                     "style strength (%g) is used", strengths[0])
        strengths = strengths[:1]
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
    generator = _seeded(model, seed)
    decoded, confidence = _generate_checked(model, z, labels, mask, generator, decoding,
                                            memory=memory, strength=strengths[0],
                                            named=named, check=len(strengths) > 1)
    used = [strengths[0]] * n
    for strength in strengths[1:]:
        # the sentences D does not read as the requested style yet: rewritten more strongly
        rows = torch.nonzero(confidence < min_confidence).flatten()  # (P,)
        if rows.numel() == 0:
            break
        again, again_confidence = _generate_checked(
            model, z[rows], labels[rows], mask[rows], generator, decoding,
            memory=select_memory(memory, rows), strength=strength, named=named[rows],
            check=True)
        confidence[rows] = again_confidence
        for row, out in zip(rows.tolist(), again):
            decoded[row], used[row] = out, strength
    return [Transfer(source=source, text=out.text, source_style=source_style,
                     target_style=out.style, strength=strength)
            for source, out, source_style, strength in zip(sentences, decoded, source_styles,
                                                           used)]


def interpolate(model: LoadedModel, a: str, b: str, *, steps: int, style: StyleSpec = None,
                strategy: str = "greedy", seed: int = 0, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, no_repeat_ngram: int = 0,
                max_len: int | None = None, truncate: bool = False) -> list[str]:
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
    decoding = _check_decoding(model, max_len=max_len, strategy=strategy,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               no_repeat_ngram=no_repeat_ngram)
    sentences = _sentence_list([a, b], "interpolate")
    # no memory: a point between two sentences has no source to read, so a generator with
    # attention writes it from [z; c] alone, as it samples
    tokens, lengths, means, _ = _encode(model, sentences, truncate=truncate)  # (2, Z) means
    labels, mask = _style_as_read(model, fixed, tokens[:1], lengths[:1])  # as D reads a: (1, A)
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
                        torch.ones_like(mask).expand(steps, -1), generator, decoding)
    return [sentence.text for sentence in decoded]


def print_sampled_sentence(model_or_path: LoadedModel | str | Path, style: StyleSpec = None,
                           n: int = 5, *, temperature: float = 1.0, top_k: int = 0,
                           top_p: float = 1.0, no_repeat_ngram: int = 0,
                           strategy: str = "sample", seed: int = 0,
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
                   no_repeat_ngram=no_repeat_ngram, seed=seed, max_len=max_len)
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


class Decoding(NamedTuple):
    """How `_generate` decodes: `Generator.decode`'s settings, checked once per call."""

    max_len: int
    strategy: str
    temperature: float
    top_k: int
    top_p: float
    no_repeat_ngram: int


def _check_decoding(model: LoadedModel, *, max_len: int | None, strategy: str,
                    temperature: float, top_k: int, top_p: float,
                    no_repeat_ngram: int) -> Decoding:
    """The settings to decode with (max_len by default data.max_tokens); impossible ones as
    SamplingError, before any work is done."""
    decoding = Decoding(max_len=model.config.data.max_tokens if max_len is None else max_len,
                        strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p,
                        no_repeat_ngram=no_repeat_ngram)
    try:
        check_decoding(**decoding._asdict())
    except ValueError as error:
        raise SamplingError(str(error)) from None
    return decoding


def _seeded(model: LoadedModel, seed: int) -> torch.Generator:
    # On the model's device: torch draws on a device only from a generator living there.
    return torch.Generator(device=model.device).manual_seed(int(seed))


def _style_as_read(model: LoadedModel, style: Mapping[str, str], tokens: Tensor,
                   lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Class indices (N, A) and mask (N, A) for N sentences: the attributes `style` names as it
    says, every other one as D reads the sentence (all fixed then); without a D (pretrain
    stage) the others stay open, for the prior, with a warning."""
    n = tokens.shape[0]
    labels, mask = _style_rows([style], model.attributes, model.device)  # (1, A) each
    labels, mask = labels.expand(n, -1), mask.expand(n, -1)
    read = _read_styles(model, tokens, lengths)  # (N, A) or None
    if read is None:
        _warn_no_discriminator(model, style)
        return labels, mask
    return torch.where(mask, labels, read), torch.ones_like(mask)


def _style_rows(styles: Sequence[Mapping[str, str]], attributes: Mapping[str, Sequence[str]],
                device: torch.device) -> tuple[Tensor, Tensor]:
    """Class indices (S, A) and a mask (S, A) of the attributes each style fixes."""
    names = list(attributes)
    rows = [[list(attributes[name]).index(style[name]) if name in style else -1
             for name in names] for style in styles]
    labels = torch.tensor(rows, dtype=torch.long, device=device).reshape(len(styles), len(names))
    return labels, labels >= 0


def _generate(model: LoadedModel, z: Tensor, labels: Tensor, mask: Tensor,
              generator: torch.Generator, decoding: Decoding, *,
              memory: Memory | None = None) -> list[SampledSentence]:
    """Decode z (N, Z) with c from labels where mask, else the prior; N rows, batched; `memory`:
    the N source sentences a generator with attention reads (reconstruction, transfer)."""
    return _generate_checked(model, z, labels, mask, generator, decoding, memory=memory)[0]


def _generate_checked(model: LoadedModel, z: Tensor, labels: Tensor, mask: Tensor,
                      generator: torch.Generator, decoding: Decoding, *,
                      memory: Memory | None = None, strength: float = 1.0,
                      named: Tensor | None = None, check: bool = False
                      ) -> tuple[list[SampledSentence], Tensor]:
    """`_generate`, with the code of the attributes `named` (N, A) at `strength`
    (`strengthen_code`) and, with `check`, D's confidence in each sentence (N,): its lowest
    probability of the decoded class over the named attributes, read from the decoded ids
    (ones without `check`)."""
    # The prior is drawn for every row and attribute even where the style fixes it (see the
    # module docstring): fill_missing draws first, then selects.
    labels = fill_missing(labels, mask, model.num_classes, generator=generator)  # (N, A)
    code = one_hot_code(labels, model.num_classes)  # (N, C)
    if named is not None:
        code = strengthen_code(code, named, strength, model.num_classes)
    texts: list[str] = []
    ended: list[bool] = []
    confidence = torch.ones(z.shape[0])  # (N,), on the CPU
    with eval_mode(model.generator, *([model.discriminator] if check else [])):
        for start in range(0, z.shape[0], DECODE_BATCH):
            end = start + DECODE_BATCH
            out = model.generator.decode(z[start:end], code[start:end], **decoding._asdict(),
                                         generator=generator,
                                         memory=select_memory(memory, slice(start, end)))
            texts += model.tokenizer.decode(out.tokens.cpu())
            ended += out.ended.tolist()
            if check:
                confidence[start:end] = _confidence(model, out.tokens, out.lengths,
                                                    labels[start:end], named[start:end])
    sentences = [SampledSentence(text=text, style=_named_style(model.attributes, row),
                                 ended=done)
                 for text, row, done in zip(texts, labels.tolist(), ended)]
    return sentences, confidence


def _confidence(model: LoadedModel, tokens: Tensor, lengths: Tensor, labels: Tensor,
                named: Tensor) -> Tensor:
    """D's lowest probability of `labels` (B, A) over the `named` attributes (B, A) for the
    decoded sentences `tokens` (B, L), EOS included where produced (B,), on the CPU."""
    with torch.no_grad():
        logits = model.discriminator(tokens, lengths)  # A x (B, n_a)
        chosen = torch.stack([block.softmax(-1).gather(1, labels[:, a:a + 1]).squeeze(1)
                              for a, block in enumerate(logits)], dim=1)  # (B, A)
    return torch.where(named, chosen, torch.ones_like(chosen)).amin(dim=1).cpu()


def strength_settings(model: LoadedModel, strengths: Sequence[float] | None,
                       min_confidence: float | None) -> tuple[list[float], float]:
    """The style strengths and D's acceptance level a transfer uses: the arguments, else the
    model's transfer config; impossible values as SamplingError."""
    settings = model.config.transfer
    strengths = list(settings.style_strengths if strengths is None else strengths)
    min_confidence = settings.min_confidence if min_confidence is None else min_confidence
    if not strengths:
        raise SamplingError("no style strength given; give at least one, e.g. 1")
    if not all(float(value) > 0 for value in strengths):
        raise SamplingError(f"style strengths must be > 0, got {strengths}")
    if not 0.0 < float(min_confidence) <= 1.0:
        raise SamplingError(f"min_confidence must be in (0, 1], got {min_confidence}")
    return [float(value) for value in strengths], float(min_confidence)


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
