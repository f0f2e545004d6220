"""Validation of the VAE pretraining stage: an ignite evaluator with every metric attached.

    evaluator = create_vae_evaluator(encoder, generator, tokenizer=tokenizer,
                                     num_classes=[len(v) for v in corpus.attributes.values()],
                                     max_len=cfg.data.max_tokens,
                                     device=device, code_source=cfg.pretrain.code_source,
                                     seed=cfg.seed)
    state = evaluator.run(valid_loader)          # Batch(tokens, lengths, labels, label_mask)
    state.metrics["elbo"], state.metrics["bleu"], ...   # names in VAE_METRICS
    state.bleu_signature                         # sacrebleu signature of state.metrics["bleu"]
    state.examples                               # first `num_examples` (reference, reconstruction)

What each metric sees (one step per batch, under no_grad, networks in eval mode):

- z_mean = the posterior mean E_q[z|x]. It drives the reconstruction metrics, which should
  describe the model, not one draw of noise: teacher-forced `nll` (per token, EOS included) and
  `ppl` = exp(nll), `token_acc` (argmax, real tokens except EOS), and the greedy decode behind
  `eos_rate` and `bleu` (reconstruction vs the input, both decoded to text by the tokenizer).
  `active_units` reads the means too (Burda et al.).
- z_sample = mean + std * eps with eps from the evaluator's own seeded generator. It drives
  the two quantities that are expectations over q(z|x): the reconstruction term of `elbo`
  (-[NLL(x | z_sample) summed over the sentence + KL], per sentence, the best-checkpoint
  score, higher is better) and `mi` (He et al. 2019, per-batch estimator, batch-size dependent).
- `kl` (mean per-sentence KL, summed over dimensions) and `kl_per_dim` ((Z,) tensor) are in
  closed form from (mean, logvar), no sampling.
- c: the true class where the label is known and a prior draw where it is missing
  (code_source="label"), or a prior draw for every sentence (code_source="prior"), also from
  the seeded generator. The same c is used for teacher forcing and for the greedy decode.

Reproducibility and the training RNG: the evaluator's noise comes from a `torch.Generator`
seeded with `seed` at every run's STARTED, so each validation run (every epoch, and after a
resume) sees the same noise given the same batches in the same order -- the validation loader
must not shuffle. Nothing in the step touches the global RNG. Iterating a `DataLoader` built
without `generator=` does (it draws a base seed from the global stream at `iter()`), so the
evaluator also saves the CPU global RNG state at STARTED and restores it when the run completes
or is terminated: running validation, or not, never changes what training draws next, which
exact resume needs. (CUDA global RNG state is neither used nor saved.)

Train/eval mode: every step puts both networks (every submodule) in eval mode and restores each
submodule's previous mode in a `finally`, so the caller's modes survive normal runs, exceptions
and interrupts alike; the cost is a walk over a dozen submodules per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from ignite.engine import Engine, Events

from textgan.losses import reconstruction_loss
from textgan.metrics import (ELBO, ActiveUnits, CorpusBLEU, EOSRate, KLPerDim, MutualInformation,
                             ReconstructionNLL, TokenAccuracy, perplexity_of, total_kl_of)
from textgan.models import Encoder, Generator, code_dim, fill_missing, one_hot_code, sample_code
from textgan.models.attention import encode_source
from textgan.models.encoder import reparameterize
from textgan.models.modes import eval_mode

logger = logging.getLogger(__name__)

CODE_SOURCES = ("label", "prior")

# Every key `evaluator.state.metrics` holds after a run. All are Python floats/ints except
# kl_per_dim, a (Z,) float32 CPU tensor (ignite's TensorBoard OutputHandler writes it as one
# scalar per dimension).
VAE_METRICS = ("nll", "ppl", "kl", "kl_per_dim", "elbo", "active_units", "mi", "token_acc",
               "eos_rate", "bleu")


class TextDecoder(Protocol):
    """What the evaluator needs of a tokenizer (`textgan.tokenizer.Tokenizer` is one)."""

    def decode(self, ids: Any) -> list[str]:
        """(B, T) ids -> B texts, each cut at its first EOS, without PAD/BOS/EOS."""
        ...


def create_vae_evaluator(encoder: Encoder, generator: Generator, *, tokenizer: TextDecoder,
                         num_classes: Sequence[int], max_len: int,
                         device: torch.device | str, code_source: str = "label", seed: int = 0,
                         num_examples: int = 5, bleu_tokenize: str = "13a") -> Engine:
    """An ignite Engine that validates the VAE on batches of `textgan.data.Batch`.

    encoder, generator: the plain modules (not DDP wrappers: the step calls
    `generator.teacher_inputs` and `generator.decode`), already on `device`.
    tokenizer: anything with `decode((B, T) ids) -> list[str]` that stops at the first EOS
    (`textgan.tokenizer.Tokenizer`). num_classes: classes per attribute ([] if unlabelled).
    max_len: the greedy decode's step limit (sentence length budget incl. EOS). device: where
    batches go (`batch.to(device)`) and where metric state lives. code_source: "label" or
    "prior" (see the module docstring). seed: of the evaluator's noise generator. num_examples:
    how many (reference, reconstruction) pairs to keep in `state.examples`. bleu_tokenize:
    sacrebleu tokenizer ("13a" for detokenized text, "none" for pre-tokenized corpora).

    The step returns a dict: logits (B, T, V) teacher-forced from the posterior mean, targets
    (B, T), lengths (B,), mean / logvar / z (B, Z), sampled_nll (B,) from z, ended (B,) bool,
    hypotheses / references (lists of B strings); the attached metrics read it by key.

    An empty validation set is an error: a sized one is refused by `Engine.run` ("Input data
    has zero size"), an unsized one that yields no batch raises ValueError at the end of the
    epoch, before any metric is computed.
    """
    if code_source not in CODE_SOURCES:
        raise ValueError(f"code_source must be one of {CODE_SOURCES}, got '{code_source}'")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    if code_dim(num_classes) != generator.code_dim:
        raise ValueError(f"num_classes {list(num_classes)} gives a code of width "
                         f"{code_dim(num_classes)}, the generator expects {generator.code_dim}")
    device = torch.device(device)
    num_classes = [int(n) for n in num_classes]
    # Created (and re-seeded) at STARTED of every run; a one-element holder so the step and the
    # handler share it without putting a generator object into engine.state.
    noise: dict[str, torch.Generator] = {}

    def _step(engine: Engine, batch: Any) -> dict[str, Any]:
        batch = batch.to(device)
        with torch.no_grad(), eval_mode(encoder, generator):
            # the source's memory, for a generator with attention: the greedy reconstruction
            # reads it, as transfer does; the teacher-forced metrics and the ELBO do not, so
            # that they stay those of the VAE p(x | z, c) that samples from the prior
            posterior, memory = encode_source(encoder, generator, batch.tokens, batch.lengths,
                                              batch.host_lengths)  # (B, Z) each
            rng = noise["generator"]
            # Draw order is fixed (c, then z) and independent of which labels are known
            # (fill_missing draws the prior for every entry), so a batch always gets the same
            # numbers.
            if code_source == "label":
                labels = fill_missing(batch.labels, batch.label_mask, num_classes, generator=rng)
            else:
                labels = sample_code(batch.tokens.shape[0], num_classes, generator=rng,
                                     device=batch.tokens.device)
            c = one_hot_code(labels, num_classes)  # (B, C)
            z = reparameterize(posterior, generator=rng)  # (B, Z)
            inputs = generator.teacher_inputs(batch.tokens)  # (B, T)
            logits = generator(inputs, posterior.mean, c)  # (B, T, V)
            sampled_nll = reconstruction_loss(generator(inputs, z, c), batch.tokens,
                                              batch.lengths).nll_sum  # (B,)
            decoded = generator.decode(posterior.mean, c, max_len=max_len, strategy="greedy",
                                       memory=memory)
        hypotheses = tokenizer.decode(decoded.tokens.cpu())
        references = tokenizer.decode(batch.tokens.cpu())
        room = num_examples - len(engine.state.examples)
        if room > 0:
            engine.state.examples.extend(zip(references[:room], hypotheses[:room]))
        return {"logits": logits, "targets": batch.tokens, "lengths": batch.lengths,
                "mean": posterior.mean, "logvar": posterior.logvar, "z": z,
                "sampled_nll": sampled_nll, "ended": decoded.ended,
                "hypotheses": hypotheses, "references": references}

    evaluator = Engine(_step)
    saved_rng: dict[str, torch.Tensor] = {}

    @evaluator.on(Events.STARTED)
    def _start(engine: Engine) -> None:
        saved_rng["cpu"] = torch.get_rng_state()
        noise["generator"] = torch.Generator(device=device).manual_seed(seed)
        engine.state.examples = []
        engine.state.bleu_signature = None

    @evaluator.on(Events.EPOCH_STARTED)
    def _count_from_zero(engine: Engine) -> None:
        engine.state.validation_batches = 0

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _count(engine: Engine) -> None:
        engine.state.validation_batches += 1

    # Metrics compute at EPOCH_COMPLETED; registered before them, so an empty run fails with
    # this message rather than with the first metric's NotComputableError.
    @evaluator.on(Events.EPOCH_COMPLETED)
    def _check_not_empty(engine: Engine) -> None:
        if engine.state.validation_batches == 0:
            raise ValueError("the validation set yielded no batch: check the validation split "
                             "(empty after cleaning or max_tokens filtering?)")

    z_dim = generator.z_dim
    nll = ReconstructionNLL(device=device)
    kl_per_dim = KLPerDim(z_dim, device=device)
    bleu = CorpusBLEU(tokenize=bleu_tokenize, device=device)
    nll.attach(evaluator, "nll")
    perplexity_of(nll).attach(evaluator, "ppl")
    kl_per_dim.attach(evaluator, "kl_per_dim")
    total_kl_of(kl_per_dim).attach(evaluator, "kl")
    ELBO(z_dim, device=device).attach(evaluator, "elbo")
    ActiveUnits(z_dim, device=device).attach(evaluator, "active_units")
    MutualInformation(z_dim, device=device).attach(evaluator, "mi")
    TokenAccuracy(device=device).attach(evaluator, "token_acc")
    EOSRate(device=device).attach(evaluator, "eos_rate")
    bleu.attach(evaluator, "bleu")

    logged_signature: list[str] = []

    @evaluator.on(Events.EPOCH_COMPLETED)
    def _record_signature(engine: Engine) -> None:
        # After bleu's own EPOCH_COMPLETED handler (registered above), which sets it.
        engine.state.bleu_signature = bleu.signature
        if bleu.signature is not None and not logged_signature:
            # Once per evaluator: every reported BLEU must name its signature.
            logger.info("validation BLEU (reconstruction vs input): %s", bleu.signature)
            logged_signature.append(bleu.signature)

    @evaluator.on(Events.COMPLETED | Events.TERMINATE)
    def _restore_rng(_: Engine) -> None:
        if "cpu" in saved_rng:
            torch.set_rng_state(saved_rng.pop("cpu"))

    return evaluator
