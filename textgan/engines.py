"""Process functions and Engine construction for each training stage.

A step does forward, loss, backward and optimizer step, and returns plain floats; everything
else (schedules, checkpoints, validation, logging) is attached by handlers. Randomness in a step
comes only from torch's global generator, which checkpoints save and restore, so a resumed run
draws the same noise as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from ignite.engine import Engine
from torch import nn

from textgan.config import PretrainConfig, TrainConfig
from textgan.data import Batch
from textgan.losses import (
    attribute_accuracy,
    attribute_loss,
    code_combinations,
    code_posterior_weights,
    decomposed_kl_loss,
    free_bits_kl,
    gaussian_kl,
    independence_loss,
    kl_decomposition,
    prediction_entropy,
    reconstruction_loss,
)
from textgan.models import (
    Encoder,
    Generator,
    Memory,
    Posterior,
    SoftSentence,
    drop_memory,
    encode_soft_source,
    encode_source,
    apply_word_dropout,
    fill_missing,
    one_hot_code,
    position_weights,
    reparameterize,
    sample_code,
    select_memory,
    soft_generate,
    unique_parameters,
)
from textgan.models.modes import eval_mode, frozen
from textgan.parallel import average_gradients, mean_over_processes, world_size
from textgan.schedules import HARD_RELAXATION, KL_WEIGHT, TEMPERATURE, WORD_DROPOUT

# Keys of the pretraining step's output, in the order the step computes them.
PRETRAIN_OUTPUTS = ("loss", "rec", "nll", "kl", "kl_term", "grad_norm")


def mixed_precision(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast around a step's forward pass ('bf16'), or a region that changes nothing.

    Only matmuls and convolutions go to bf16: the losses cast their inputs to fp32
    (`losses._at_least_fp32`) and the relaxations switch autocast off (`relaxation.relax`).
    bf16 has fp32's exponent range, so no gradient scaler is needed. Backward runs outside.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def style_labels(batch: Batch, num_classes: Sequence[int], source: str) -> torch.Tensor:
    """(B, A) class indices for c: from the prior, or the label where known ('label')."""
    if source == "label":
        return fill_missing(batch.labels, batch.label_mask, num_classes)
    return sample_code(batch.tokens.shape[0], num_classes, device=batch.tokens.device)


def create_pretrain_trainer(encoder: Encoder, generator: Generator,
                            optimizer: torch.optim.Optimizer, *, cfg: PretrainConfig,
                            num_classes: Sequence[int], unk_id: int, pad_id: int, bos_id: int,
                            dataset_size: int, device: torch.device) -> Engine:
    """The VAE stage: loss = reconstruction + beta(t) * KL (free bits or TC-decomposed)."""
    params = unique_parameters(encoder, generator)
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure the norm, clip nothing

    def step(engine: Engine, batch: Batch) -> dict[str, float]:
        encoder.train()
        generator.train()
        tokens_in_batch = batch.num_tokens  # read on the host: no device sync
        sentences = batch.batch_size
        batch = batch.to(device, non_blocking=True)

        with mixed_precision(device, cfg.precision):
            # the source's memory with model.memory_dropout of its rows forgotten (drawn from
            # the global stream, so a resumed run draws the same rows); None without attention
            posterior, source = encode_source(encoder, generator, batch.tokens, batch.lengths,
                                              batch.host_lengths)
            memory = drop_memory(source, generator.memory_dropout)
            z = reparameterize(posterior)  # (B, Z), noise drawn per sentence
            c = one_hot_code(style_labels(batch, num_classes, cfg.code_source), num_classes)
            inputs = apply_word_dropout(generator.teacher_inputs(batch.tokens),
                                        getattr(engine.state, WORD_DROPOUT),
                                        unk_id=unk_id, pad_id=pad_id, bos_id=bos_id)
            logits = generator(inputs, z, c, memory)  # (B, T, V)

            rec = reconstruction_loss(logits, batch.tokens, batch.lengths)
            kl = free_bits_kl(gaussian_kl(posterior.mean, posterior.logvar), cfg.free_bits)
            if cfg.kl_decomposition:
                terms = kl_decomposition(z, posterior.mean, posterior.logvar, dataset_size)
                kl_term = decomposed_kl_loss(terms, cfg.mi_weight, cfg.tc_weight,
                                             cfg.dim_kl_weight)
            else:
                kl_term = kl.loss_value
            loss = rec.per_sentence + getattr(engine.state, KL_WEIGHT) * kl_term

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(params, sentences)  # data-parallel runs; nothing in one process
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

        scalars = torch.stack([loss.detach(), rec.per_sentence.detach(), rec.per_token.detach(),
                               kl.raw.detach(), kl_term.detach(), grad_norm.detach()])
        per_dim = kl.per_dim_mean.detach()
        values, tokens = reduced_outputs(torch.cat([scalars, per_dim]), sentences, tokens_in_batch)
        output: dict[str, Any] = dict(zip(PRETRAIN_OUTPUTS, values))
        output["tokens"] = tokens
        # Z floats, read by the TensorBoard handlers
        output["kl_per_dim"] = values[len(scalars):]
        return output

    return Engine(step)


def reduced_outputs(values: torch.Tensor, sentences: int,
                    tokens: int) -> tuple[list[float], int]:
    """A step's output values averaged over data-parallel processes, and the tokens all read.

    The values are means over this process's sentences, so their sentence-weighted mean is the
    global batch's; the token count rides along as tokens per sentence. One all-reduce, and one
    host sync for all values instead of one per `.item()`.
    """
    if world_size() == 1:
        return values.tolist(), tokens
    packed = torch.cat([values, values.new_full((1,), tokens / max(sentences, 1))])
    reduced, total = mean_over_processes(packed, sentences)
    *averaged, tokens_per_sentence = reduced.tolist()
    return averaged, round(tokens_per_sentence * total)


# --------------------------------------------------------------------------- adversarial stage

# Keys of the adversarial step's output (floats); warm-up iterations fill only the D part.
TRAIN_OUTPUTS = ("d_loss", "d_real", "d_fake", "d_entropy", "d_acc_real", "d_acc_fake",
                 "g_loss", "rec", "kl", "attr_c", "attr_z", "attr_t", "cycle", "d_grad_norm",
                 "g_grad_norm", "e_grad_norm")


class AdversarialSteps:
    """The D step and the G+E step of one wake-sleep round (Hu et al. 2017, Algorithm 1).

    D step: L_D = L_s + lambda_u * (CE(D(x_hat), c) + beta * H(D(x_hat))) on real labelled
    sentences x and hard samples x_hat ~ G(z, c) from the prior (which end at their first EOS).
    No gradient reaches G: the samples are drawn without one. When the training split has
    unlabelled sentences, lambda_u * beta * H(D(x_u)) on them joins L_D: Hu et al.'s L_u covers
    generated sentences only; the same minimum-entropy term on unlabelled real ones is the usual
    semi-supervised regulariser (Grandvalet and Bengio 2005), so that D commits on real text too.

    G+E step, one backward over L_VAE + lambda_c * L_attr_c + lambda_z * L_attr_z:
    - L_VAE = reconstruction + beta * KL of real sentences, c from the label where known; where
      it is missing, the reconstruction loss is the expectation over D's q_D(c|x) (Hu et al.,
      eq. 5; one generator pass per joint class, `train.unlabelled_code = "expectation"`),
      uses D's argmax ("argmax") or draws c from the prior ("prior", an ablation: D then
      reaches G only through L_attr_c); its gradient trains both E and G (Hu et al.'s E step
      and the VAE part of the G step).
    - L_attr_c = -log q_D(c | G_tau(z, c)) on the soft sentence; D's weights are frozen for it,
      so it trains G alone.
    - L_attr_z = -log q_E(z | G_tau(z, c)) (or a variant, `train.independence_loss`); E is a
      frozen critic for it (weights frozen, eval mode: E learns from L_VAE only), so it trains G
      to write sentences from which z can be read back. Not computed when lambda_z is 0.
    D and E read a soft sentence the same way (`position_weights`).
    Separate optimizers step D, G and E; G owns a shared embedding table.

    `semi_supervised`: whether the training split has sentences with a missing label; known
    when the stage is built, so that no step has to ask the device whether a batch has any.
    """

    def __init__(self, *, encoder: Encoder, generator: Generator, discriminator: nn.Module,
                 optimizers: dict[str, torch.optim.Optimizer], cfg: TrainConfig,
                 num_classes: Sequence[int], max_len: int, class_weights: Sequence[Any],
                 unk_id: int, pad_id: int, bos_id: int, device: torch.device,
                 semi_supervised: bool = False) -> None:
        self.encoder, self.generator, self.discriminator = encoder, generator, discriminator
        self.optimizers, self.cfg = optimizers, cfg
        self.semi_supervised = semi_supervised and bool(num_classes)
        self.num_classes, self.max_len = list(num_classes), max_len
        self.class_weights = list(class_weights)
        self.unk_id, self.pad_id, self.bos_id, self.device = unk_id, pad_id, bos_id, device
        self.clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        self.params = {
            "d": list(discriminator.parameters()),
            "g": list(generator.parameters()),
            # a table shared with G is G's: it is in G's optimizer and clipped with G
            "e": unique_parameters(encoder, exclude=[generator]),
        }

    def prior(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ N(0, I) and class labels ~ the uniform prior, one per sentence."""
        z = torch.randn(batch_size, self.generator.z_dim, device=self.device)
        return z, sample_code(batch_size, self.num_classes, device=self.device)

    def discriminator_step(self, batch: Batch, warm_up: bool) -> dict[str, torch.Tensor]:
        """One D update; its outputs as 0-d tensors, this process's means (`read_outputs`)."""
        cfg, disc = self.cfg, self.discriminator
        disc.train()
        with mixed_precision(self.device, cfg.precision):
            real_logits = disc(batch.tokens, batch.lengths)
            real = attribute_loss(real_logits, batch.labels, batch.label_mask, self.class_weights)
            real_correct, real_counted = attribute_accuracy(real_logits, batch.labels,
                                                            batch.label_mask)
            loss = real.total
            if self.semi_supervised:
                unlabelled = prediction_entropy(real_logits, rows=~batch.label_mask)
                loss = loss + cfg.lambda_u * cfg.entropy_weight * unlabelled
            fake_loss = entropy = fake_acc = torch.zeros((), device=self.device)
            # no sentence is generated for a term weighted 0 (the ablation's lambda_u = 0)
            if not warm_up and cfg.lambda_u > 0:
                z, labels = self.prior(generated_rows(batch.tokens.shape[0],
                                                      cfg.generated_batch_size))
                with torch.no_grad(), eval_mode(self.generator):
                    sample = self.generator.decode(z, one_hot_code(labels, self.num_classes),
                                                   max_len=self.max_len, strategy="sample")
                fake_logits = disc(sample.tokens, sample.lengths)
                fake_loss = attribute_loss(fake_logits, labels).total
                entropy = prediction_entropy(fake_logits)
                loss = loss + cfg.lambda_u * (fake_loss + cfg.entropy_weight * entropy)
                correct, counted = attribute_accuracy(fake_logits, labels)
                fake_acc = correct.sum() / counted.sum().clamp(min=1)
        optimizer = self.optimizers["d"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.params["d"], batch.batch_size)  # data-parallel runs only
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params["d"], self.clip)
        optimizer.step()
        real_acc = real_correct.sum() / real_counted.sum().clamp(min=1)
        return dict(zip(("d_loss", "d_real", "d_fake", "d_entropy", "d_acc_real", "d_acc_fake",
                         "d_grad_norm"),
                        (loss.detach(), real.total.detach(), fake_loss.detach(),
                         entropy.detach(), real_acc, fake_acc, grad_norm)))

    def generator_step(self, batch: Batch, tau: float, hard: bool) -> dict[str, torch.Tensor]:
        """One G+E update; its outputs as 0-d tensors, this process's means (`read_outputs`)."""
        cfg = self.cfg
        encoder, generator, disc = self.encoder, self.generator, self.discriminator
        encoder.train()
        generator.train()
        zero = torch.zeros((), device=self.device)

        with mixed_precision(self.device, cfg.precision):
            # L_VAE on the real sentences, c from the label where known, else from D
            with torch.no_grad(), eval_mode(disc):
                d_logits = disc(batch.tokens, batch.lengths) if self.num_classes else []
            predicted = torch.stack([logits.argmax(-1) for logits in d_logits], dim=1) \
                if self.num_classes else batch.labels
            labels = torch.where(batch.label_mask, batch.labels, predicted)
            # the whole memory is the transfer loss's; the VAE loss forgets some rows of it
            posterior, source = encode_source(encoder, generator, batch.tokens, batch.lengths,
                                              batch.host_lengths)
            memory = drop_memory(source, generator.memory_dropout)
            z = reparameterize(posterior)
            inputs = apply_word_dropout(generator.teacher_inputs(batch.tokens), cfg.word_dropout,
                                        unk_id=self.unk_id, pad_id=self.pad_id, bos_id=self.bos_id)
            if self.semi_supervised and cfg.unlabelled_code == "expectation":
                rec_loss = self.expected_reconstruction(batch, d_logits, inputs, z, memory)
            else:
                code = labels
                if self.semi_supervised and cfg.unlabelled_code == "prior":
                    # D's guess stays the source's style for the transfer losses below
                    code = torch.where(batch.label_mask, batch.labels,
                                       sample_code(z.shape[0], self.num_classes, device=z.device))
                logits = generator(inputs, z, one_hot_code(code, self.num_classes), memory)
                rec_loss = reconstruction_loss(logits, batch.tokens, batch.lengths).per_sentence
            kl = free_bits_kl(gaussian_kl(posterior.mean, posterior.logvar), cfg.free_bits)
            vae_loss = rec_loss + cfg.kl_weight * kl.loss_value

            soft_rows = generated_rows(batch.tokens.shape[0], cfg.generated_batch_size)
            # the soft sentence G_tau(z, c) from the prior, read by a frozen D and a frozen E
            z_prior, c_labels = self.prior(soft_rows)
            soft = soft_generate(generator, z_prior, one_hot_code(c_labels, self.num_classes),
                                 max_len=self.max_len, tau=tau, kind=cfg.relaxation, hard=hard,
                                 compiled=cfg.compile_soft_step)
            weights = position_weights(soft, cfg.soft_mask)  # (B, T)
            with frozen(disc), eval_mode(disc):
                attr_c = attribute_loss(disc.forward_soft(soft.probs, weights), c_labels).total
            attr_z = zero
            if cfg.lambda_z > 0:
                attr_z = self.independence(soft, weights, z_prior)
            attr_t = cycle = zero
            if cfg.lambda_t > 0 or cfg.lambda_cycle > 0:
                attr_t, cycle = self.transfer_losses(batch, posterior, source, labels,
                                                     soft_rows, tau, hard)
            loss = vae_loss + cfg.lambda_c * attr_c + cfg.lambda_z * attr_z \
                + cfg.lambda_t * attr_t + cfg.lambda_cycle * cycle

        for name in ("g", "e"):
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        # data-parallel runs: one all-reduce for both networks
        average_gradients([*self.params["g"], *self.params["e"]], batch.batch_size)
        norms = [torch.nn.utils.clip_grad_norm_(self.params[name], self.clip)
                 for name in ("g", "e")]
        for name in ("g", "e"):
            self.optimizers[name].step()
        return dict(zip(("g_loss", "rec", "kl", "attr_c", "attr_z", "attr_t", "cycle",
                         "g_grad_norm", "e_grad_norm"),
                        (loss.detach(), rec_loss.detach(), kl.raw.detach(),
                         attr_c.detach(), attr_z.detach(), attr_t.detach(), cycle.detach(),
                         *norms)))

    def expected_reconstruction(self, batch: Batch, d_logits: Sequence[torch.Tensor],
                                inputs: torch.Tensor, z: torch.Tensor, memory: Memory | None
                                ) -> torch.Tensor:
        """() mean_b E_{q(c|x_b)}[-log p_G(x_b | z_b, c)]: q is one-hot on the known labels and
        D's prediction (no gradient) on the missing ones (`code_posterior_weights`).

        One teacher-forced pass per joint class assignment (2 for one binary attribute), every
        sentence in each: a fully labelled row then weighs exactly its own pass.
        """
        combinations = code_combinations(self.num_classes, device=z.device)  # (M, A)
        probs = [logits.float().softmax(-1) for logits in d_logits]
        weights = code_posterior_weights(probs, batch.labels, batch.label_mask,
                                         combinations)  # (B, M)
        nll = []
        for combination in combinations:
            labels = combination.expand(z.shape[0], -1)  # (B, A)
            logits = self.generator(inputs, z, one_hot_code(labels, self.num_classes), memory)
            nll.append(reconstruction_loss(logits, batch.tokens, batch.lengths).nll_sum)
        return (weights * torch.stack(nll, dim=1)).sum(dim=1).mean()

    def independence(self, soft: SoftSentence, weights: torch.Tensor,
                     z: torch.Tensor) -> torch.Tensor:
        """() L_attr_z: E, a frozen critic (weights frozen, eval mode), reads the soft sentence
        generated from z; `train.independence_loss` measures how far its posterior is from z.

        E was trained on real sentences read to their end; read to the argmax reading's end, a
        generated one looks like them. Reading all max_len positions (the faded tail too) ran
        the bidirectional GRU through ~10 near-zero inputs into states it never saw:
        q_E(z|x_hat) was noise, L_attr_z stayed ~44 nats and its gradient wore down G's grammar
        (NOTES.md, experiment G).
        """
        encoder = self.encoder
        with frozen(encoder), eval_mode(encoder):
            embedded = encoder.embed_soft(soft.probs) * weights.unsqueeze(-1)
            generated = encoder.encode_embeddings(embedded, soft.lengths)
            return independence_loss(generated.mean, generated.logvar, z,
                                     self.cfg.independence_loss)

    def transfer_losses(self, batch: Batch, posterior: Posterior, memory: Memory | None,
                        labels: torch.Tensor, rows: int, tau: float, hard: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `rows` real sentences x rewritten softly with every attribute changed (c'),
        as `textgan.sampling.transfer` rewrites them (z_x = the posterior mean, x as memory):

        - transfer: -log q_D(c' | x~), D frozen, so it trains G (and E through z_x and x);
        - cycle: -log p(x | z~, c, x~), x read back from its rewrite (x~ encoded as E reads a
          soft sentence, then attended to), so the words of x that are not style must survive
          the rewrite (back-translation); it trains G through x~ and E and G through the read.
        Each is computed only when its weight is above 0 (the other is then 0).
        """
        cfg, generator, encoder = self.cfg, self.generator, self.encoder
        zero = torch.zeros((), device=self.device)
        targets = other_labels(labels[:rows], self.num_classes)
        soft = soft_generate(generator, posterior.mean[:rows],
                             one_hot_code(targets, self.num_classes), max_len=self.max_len,
                             tau=tau, kind=cfg.relaxation, hard=hard,
                             memory=select_memory(memory, slice(0, rows)))
        weights = position_weights(soft, cfg.soft_mask)
        transfer = cycle = zero
        if cfg.lambda_t > 0:
            with frozen(self.discriminator), eval_mode(self.discriminator):
                transfer = attribute_loss(self.discriminator.forward_soft(soft.probs, weights),
                                          targets).total
        if cfg.lambda_cycle > 0:
            embedded = encoder.embed_soft(soft.probs) * weights.unsqueeze(-1)
            back, back_memory = encode_soft_source(encoder, generator, embedded, soft.lengths)
            tokens, lengths = batch.tokens[:rows], batch.lengths[:rows]
            logits = generator(generator.teacher_inputs(tokens), back.mean,
                               one_hot_code(labels[:rows], self.num_classes), back_memory)
            cycle = reconstruction_loss(logits, tokens, lengths).per_sentence
        return transfer, cycle


def generated_rows(batch_size: int, generated_batch_size: int) -> int:
    """How many sentences are generated per batch (train.generated_batch_size; 0 = all)."""
    return batch_size if generated_batch_size == 0 else min(batch_size, generated_batch_size)


def other_labels(labels: torch.Tensor, num_classes: Sequence[int]) -> torch.Tensor:
    """(B, A) class indices with every attribute moved to another class, uniformly among the
    others (the flip for two classes; an attribute with one class stays)."""
    columns = []
    for index, n in enumerate(num_classes):
        if n < 2:
            columns.append(labels[:, index])
            continue
        shift = torch.randint(1, n, labels[:, index].shape, device=labels.device)
        columns.append((labels[:, index] + shift) % n)
    return torch.stack(columns, dim=1) if columns else labels


def read_outputs(values: dict[str, torch.Tensor], sentences: int,
                 tokens: int = 0) -> tuple[dict[str, float], int]:
    """0-d output tensors of one process as floats averaged over all (`reduced_outputs`): the
    adversarial round's single read from the device, after both of its steps."""
    names = list(values)
    floats, tokens = reduced_outputs(torch.stack([values[name].float() for name in names]),
                                     sentences, tokens)
    return dict(zip(names, floats)), tokens


def create_train_trainer(steps: AdversarialSteps, *, d_warmup_steps: int) -> Engine:
    """One Engine for the stage: D warm-up iterations, then wake-sleep rounds."""

    def step(engine: Engine, batch: Batch) -> dict[str, float]:
        tokens_in_batch = batch.num_tokens  # read on the host: no device sync
        batch = batch.to(steps.device, non_blocking=True)
        warm_up = engine.state.iteration <= d_warmup_steps
        values = steps.discriminator_step(batch, warm_up)
        if not warm_up:
            values.update(steps.generator_step(batch, getattr(engine.state, TEMPERATURE),
                                               getattr(engine.state, HARD_RELAXATION) == 1.0))
        # one read (and in data-parallel runs one all-reduce) for every value and the tokens
        floats, tokens = read_outputs(values, batch.batch_size, tokens_in_batch)
        return {**dict.fromkeys(TRAIN_OUTPUTS, 0.0), **floats, "tokens": tokens}

    return Engine(step)
