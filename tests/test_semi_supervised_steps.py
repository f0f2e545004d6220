"""The adversarial step with unlabelled sentences (Hu et al. 2017's semi-supervised setting), the
independence critic's reading, and the weights of the expectation over D's prediction."""

from __future__ import annotations

import math

import pytest
import torch

import textgan.engines as engines
from textgan.config import load_config
from textgan.data import Batch
from textgan.losses import (code_combinations, code_posterior_weights, prediction_entropy,
                            reconstruction_loss)
from textgan.models import one_hot_code
from tiny_models import EOS, NUM_CLASSES, PAD, adversarial_steps


def make_steps(semi_supervised: bool = False, **overrides):
    cfg = load_config("tiny", overrides=[f"train.{k}={v}" for k, v in overrides.items()])
    steps, vae, disc = adversarial_steps(cfg)
    steps.semi_supervised = semi_supervised
    return steps, vae, disc


def batch(labels: list[list[int]]) -> Batch:
    tokens = torch.tensor([[5, 6, 7, EOS, PAD], [8, 9, EOS, PAD, PAD], [10, 11, 12, 13, EOS]])
    labels = torch.tensor(labels)
    return Batch(tokens=tokens, lengths=torch.tensor([4, 3, 5]), labels=labels,
                 label_mask=labels >= 0)


# --------------------------------------------------------------------------- pure weights


def test_code_combinations_enumerate_every_joint_class():
    assert code_combinations([2, 3]).tolist() == [[0, 0], [0, 1], [0, 2],
                                                  [1, 0], [1, 1], [1, 2]]
    assert code_combinations([2]).tolist() == [[0], [1]]


def test_code_posterior_weights_hand_case():
    combinations = code_combinations([2, 2])  # (0,0) (0,1) (1,0) (1,1)
    probs = [torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]]),
             torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])]
    labels = torch.tensor([[1, 0], [-1, 1], [-1, -1]])
    weights = code_posterior_weights(probs, labels, labels >= 0, combinations)
    expected = torch.tensor([
        [0.0, 0.0, 1.0, 0.0],          # both known: one-hot on (1, 0), D ignored
        [0.0, 0.3, 0.0, 0.7],          # sentiment from D, tense known = 1
        [0.25, 0.25, 0.25, 0.25],      # both from D
    ])
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))


def test_prediction_entropy_over_chosen_rows_only():
    logits = [torch.tensor([[0.0, 0.0], [10.0, -10.0]])]  # uniform, then near-certain
    rows = torch.tensor([[True], [False]])
    assert prediction_entropy(logits, rows).item() == pytest.approx(math.log(2), abs=1e-6)
    assert prediction_entropy(logits, torch.zeros(2, 1, dtype=torch.bool)).item() == 0.0
    assert prediction_entropy(logits).item() == pytest.approx(math.log(2) / 2, abs=1e-6)


# --------------------------------------------------------------------------- the G+E step


def _rec_per_row(steps, data, labels, seed):
    """Per-row reconstruction NLL with the given codes, the step's z and inputs (same seed)."""
    gen, enc = steps.generator, steps.encoder
    torch.manual_seed(seed)
    posterior, source = engines.encode_source(enc, gen, data.tokens, data.lengths,
                                              data.host_lengths)
    memory = engines.drop_memory(source, gen.memory_dropout)
    z = engines.reparameterize(posterior)
    inputs = engines.apply_word_dropout(gen.teacher_inputs(data.tokens),
                                        steps.cfg.word_dropout, unk_id=steps.unk_id,
                                        pad_id=steps.pad_id, bos_id=steps.bos_id)
    return inputs, z, memory


def test_unlabelled_rows_reconstruct_by_expectation_over_d():
    steps, vae, disc = make_steps(semi_supervised=True)
    for module in (vae.encoder, vae.generator):
        module.eval()  # no dropout: each pass of the step is then reproducible by hand
    data = batch([[0, 1], [-1, 1], [-1, -1]])
    inputs, z, memory = _rec_per_row(steps, data, None, seed=3)
    with torch.no_grad():
        d_logits = disc.eval()(data.tokens, data.lengths)
        got = steps.expected_reconstruction(data, d_logits, inputs, z, memory)
        probs = [logits.softmax(-1) for logits in d_logits]

        def nll(codes):
            labels = torch.tensor(codes)
            logits = steps.generator(inputs, z, one_hot_code(labels, NUM_CLASSES), memory)
            return reconstruction_loss(logits, data.tokens, data.lengths).nll_sum

        by_code = {(a, b): nll([[a, b]] * 3) for a in (0, 1) for b in (0, 1)}
        row0 = by_code[(0, 1)][0]
        row1 = sum(probs[0][1, a] * by_code[(a, 1)][1] for a in (0, 1))
        row2 = sum(probs[0][2, a] * probs[1][2, b] * by_code[(a, b)][2]
                   for a in (0, 1) for b in (0, 1))
    torch.testing.assert_close(got, (row0 + row1 + row2) / 3)


@pytest.mark.parametrize("code", ["expectation", "argmax"])
def test_a_step_with_unlabelled_sentences_trains_and_d_gets_their_entropy(code):
    steps, vae, disc = make_steps(semi_supervised=True, unlabelled_code=code)
    data = batch([[0, 1], [-1, 1], [-1, -1]])
    out = steps.generator_step(data, tau=0.5, hard=False)
    assert math.isfinite(out["rec"]) and out["rec"] > 0
    assert all(p.grad is not None for p in vae.generator.parameters())
    # D's loss: the same step with and without the entropy of its unlabelled real sentences
    disc.dropout.p = 0.0
    weights = {k: v.clone() for k, v in disc.state_dict().items()}
    with_term = steps.discriminator_step(data, warm_up=True)["d_loss"]
    steps.semi_supervised = False
    disc.load_state_dict(weights)
    without = steps.discriminator_step(data, warm_up=True)["d_loss"]
    disc.load_state_dict(weights)
    with torch.no_grad():
        logits = disc(data.tokens, data.lengths)
        entropy = prediction_entropy(logits, ~data.label_mask)
    expected = steps.cfg.lambda_u * steps.cfg.entropy_weight * entropy.item()
    assert with_term - without == pytest.approx(expected, rel=1e-3, abs=1e-6)



def test_prior_code_reconstructs_unlabelled_rows_with_a_drawn_code_not_ds_guess(monkeypatch):
    steps, vae, disc = make_steps(semi_supervised=True, unlabelled_code="prior")
    data = batch([[0, 1], [-1, 1], [-1, -1]])
    with torch.no_grad():
        guess = torch.stack([x.argmax(-1) for x in disc.eval()(data.tokens, data.lengths)], 1)
    drawn = 1 - guess  # the prior's draw, chosen to differ from D's guess on every attribute
    real_sample_code = engines.sample_code
    draws = []

    def sample_code(batch_size, num_classes, **kwargs):  # the step's first draw is the VAE's
        draws.append(batch_size)
        return drawn if len(draws) == 1 else real_sample_code(batch_size, num_classes, **kwargs)

    monkeypatch.setattr(engines, "sample_code", sample_code)
    codes = []
    vae.generator.register_forward_hook(lambda module, args, out: codes.append(args[2]))
    steps.generator_step(data, tau=0.5, hard=False)
    assert len(codes) == 1 and draws[0] == 3  # one teacher-forced pass, one code per row
    expected = torch.where(data.label_mask, data.labels, drawn)
    torch.testing.assert_close(codes[0], one_hot_code(expected, NUM_CLASSES).to(codes[0].dtype))


def test_fully_labelled_batches_take_one_reconstruction_pass():
    steps, vae, _ = make_steps(semi_supervised=False)
    calls = []
    vae.generator.register_forward_hook(lambda *args: calls.append(1))
    steps.generator_step(batch([[0, 1], [1, 0], [1, 1]]), tau=0.5, hard=False)
    assert len(calls) == 1  # teacher forcing once; soft generation steps, not forward()
    steps.semi_supervised = True
    calls.clear()
    steps.generator_step(batch([[0, 1], [-1, 0], [1, 1]]), tau=0.5, hard=False)
    assert len(calls) == math.prod(NUM_CLASSES)


# --------------------------------------------------------------------------- independence


def test_no_encoder_pass_on_soft_sentences_when_lambda_z_is_0(monkeypatch):
    steps, vae, _ = make_steps(lambda_z=0.0)
    read = []
    monkeypatch.setattr(vae.encoder, "embed_soft",
                        lambda *args, **kwargs: read.append(1) or pytest.fail("E read"))
    out = steps.generator_step(batch([[0, 1], [1, 0], [1, 1]]), tau=0.5, hard=False)
    assert out["attr_z"] == 0.0 and not read


@pytest.mark.parametrize("lambda_u", [0.0, 0.1])
def test_d_generates_sentences_only_when_lambda_u_weighs_them(monkeypatch, lambda_u):
    steps, vae, _ = make_steps(lambda_u=lambda_u)
    decode, decoded = vae.generator.decode, []
    monkeypatch.setattr(vae.generator, "decode",
                        lambda *args, **kwargs: decoded.append(1) or decode(*args, **kwargs))
    out = steps.discriminator_step(batch([[0, 1], [1, 0], [1, 1]]), warm_up=False)
    assert len(decoded) == (1 if lambda_u > 0 else 0)
    assert (out["d_fake"] > 0) == (lambda_u > 0)


@pytest.mark.parametrize("kind", ["nll", "nll_detached_var", "nll_fixed_var", "mse"])
def test_the_independence_critic_reads_in_eval_mode_and_is_not_trained(kind):
    steps, vae, _ = make_steps(lambda_z=1.0, independence_loss=kind)
    modes = []
    real = vae.encoder.embed_soft  # only soft sentences are read through it

    def spy(*args, **kwargs):
        modes.append(vae.encoder.training)
        return real(*args, **kwargs)

    vae.encoder.embed_soft = spy
    out = steps.generator_step(batch([[0, 1], [1, 0], [1, 1]]), tau=0.5, hard=False)
    assert modes == [False] and out["attr_z"] > 0
    assert vae.encoder.training  # restored for the rest of the step
