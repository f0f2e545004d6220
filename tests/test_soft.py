"""Relaxations (softmax, Gumbel-softmax, straight-through, ReinMax) and the soft generated
sentence: values checked by hand, EOS-aware weights on a rigged generator, gradients to the
generator, z and c, fp32 under autocast. Tiny sizes, CPU only."""

from __future__ import annotations

import itertools

import pytest
import torch

from textgan.config import ModelConfig
from textgan.models import (RELAXATIONS, SOFT_MASKS, Generator, SoftSentence, Step,
                            alive_weights, gumbel_noise, position_weights, relax, soft_generate,
                            straight_through)

# Deliberately not 0/1/2/3, so a hard-coded special id shows up.
PAD, BOS, EOS = 5, 2, 7
VOCAB, Z_DIM, CODE_DIM = 20, 4, 3
WORD_A, WORD_B = 11, 13


def make_generator(seed: int = 0, dropout: float = 0.0) -> Generator:
    torch.manual_seed(seed)
    cfg = ModelConfig(embedding_dim=8, hidden_dim=12, z_dim=Z_DIM, encoder_layers=1,
                      generator_layers=1, dropout=dropout)
    return Generator(cfg, vocab_size=VOCAB, code_dim=CODE_DIM, pad_id=PAD, bos_id=BOS,
                     eos_id=EOS)


def condition(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, Z_DIM, generator=g)
    c = torch.nn.functional.one_hot(torch.randint(CODE_DIM, (batch,), generator=g),
                                    CODE_DIM).float()
    return z, c


def entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


def softmax_jacobian_vjp(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """J(p)^T g with J(p) = diag(p) - p p^T, the softmax's Jacobian at value p."""
    return p * g - p * (p * g).sum(-1, keepdim=True)


def is_one_hot(y: torch.Tensor) -> bool:
    return bool(((y == 0) | (y == 1)).all()) and bool((y.sum(-1) == 1).all())


# --------------------------------------------------------------------------- relax


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_softmax_relaxation_is_the_tempered_softmax_in_fp32(dtype):
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(0)).to(dtype)
    for tau in (0.3, 1.0, 2.5):
        y = relax(logits, tau, "softmax")
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, torch.softmax(logits.float() / tau, dim=-1))


def test_lower_temperature_sharpens_the_softmax():
    logits = torch.randn(5, 9, generator=torch.Generator().manual_seed(1))
    entropies = [entropy(relax(logits, tau, "softmax")) for tau in (2.0, 1.0, 0.5, 0.1)]
    for higher, lower in itertools.pairwise(entropies):
        assert bool((lower < higher).all())


def test_gumbel_is_the_softmax_of_noisy_logits_drawn_from_the_given_generator():
    logits = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    y = relax(logits, 0.7, "gumbel", generator=torch.Generator().manual_seed(5))
    uniform = torch.rand(3, 6, generator=torch.Generator().manual_seed(5))
    expected = torch.softmax((logits - torch.log(-torch.log(uniform))) / 0.7, dim=-1)
    torch.testing.assert_close(y, expected)
    assert y.dtype == torch.float32


def test_gumbel_is_seeded_and_leaves_the_global_rng_alone():
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(3))
    before = torch.get_rng_state()
    for kind in ("gumbel", "st_gumbel", "reinmax"):
        first = relax(logits, 0.5, kind, generator=torch.Generator().manual_seed(11))
        again = relax(logits, 0.5, kind, generator=torch.Generator().manual_seed(11))
        other = relax(logits, 0.5, kind, generator=torch.Generator().manual_seed(12))
        assert torch.equal(first, again)
        assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), before)


def test_gumbel_noise_is_finite_even_at_the_edges_of_uniform():
    noise = gumbel_noise((20000,), generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(noise).all())
    # Standard Gumbel: mean = Euler-Mascheroni constant, variance = pi^2 / 6.
    assert noise.mean().item() == pytest.approx(0.5772, abs=0.03)
    assert noise.var().item() == pytest.approx(torch.pi ** 2 / 6, abs=0.06)


def test_gumbel_noise_survives_a_uniform_draw_of_exactly_zero(monkeypatch):
    # rand returns 0 with probability 2**-24 per draw in fp32: rare, but a training run makes
    # billions of draws. Force it (and the largest value below 1) instead of waiting for it.
    edges = torch.tensor([0.0, 0.5, 1.0 - 2.0 ** -24])
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: edges.clone())
    noise = gumbel_noise((3,))
    assert bool(torch.isfinite(noise).all())
    logits = torch.tensor([0.0, 0.0, 0.0])
    assert bool(torch.isfinite(relax(logits.unsqueeze(0), 0.5, "gumbel")).all())


@pytest.mark.parametrize("kind", ["gumbel", "st_gumbel", "reinmax"])
def test_hard_samples_follow_the_untempered_softmax(kind):
    # Gumbel-max and ReinMax's multinomial both draw from softmax(logits), whatever tau.
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = probs.log().expand(30000, 3)
    y = relax(logits, 0.5, kind, hard=True, generator=torch.Generator().manual_seed(0))
    assert is_one_hot(y)
    torch.testing.assert_close(y.mean(0), probs, atol=0.015, rtol=0)


@pytest.mark.parametrize("kind", ["gumbel", "st_gumbel"])
def test_straight_through_gumbel_is_one_hot_forward_with_the_soft_gradient(kind):
    base = torch.randn(4, 6, generator=torch.Generator().manual_seed(4))
    upstream = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))

    logits = base.clone().requires_grad_(True)
    hard = relax(logits, 0.5, kind, hard=True, generator=torch.Generator().manual_seed(9))
    (hard * upstream).sum().backward()

    soft_logits = base.clone().requires_grad_(True)
    soft = relax(soft_logits, 0.5, kind, generator=torch.Generator().manual_seed(9))
    (soft * upstream).sum().backward()

    assert is_one_hot(hard)
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))  # the one-hot of the soft sample
    assert logits.grad.abs().sum() > 0
    torch.testing.assert_close(logits.grad, soft_logits.grad)


def test_hard_softmax_is_straight_through_argmax():
    base = torch.randn(3, 5, generator=torch.Generator().manual_seed(6))
    logits = base.clone().requires_grad_(True)
    y = relax(logits, 0.4, "softmax", hard=True)
    assert is_one_hot(y) and torch.equal(y.argmax(-1), base.argmax(-1))
    y[:, 2].sum().backward()
    p = torch.softmax(base / 0.4, dim=-1)
    g = torch.zeros(3, 5)
    g[:, 2] = 1.0
    torch.testing.assert_close(logits.grad, softmax_jacobian_vjp(p, g) / 0.4)


def test_straight_through_forward_is_bit_exact():
    soft = torch.tensor([[0.1, 0.7, 0.2], [1 / 3, 1 / 3, 1 / 3]], requires_grad=True)
    hard = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y = straight_through(hard, soft)
    assert torch.equal(y, hard)
    y[:, 0].sum().backward()
    assert torch.equal(soft.grad, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_reinmax_forward_is_one_hot_and_its_gradient_matches_algorithm_2_by_hand():
    theta = torch.tensor([[0.5, -0.3, 1.2]])
    tau = 2.0
    upstream = torch.tensor([[0.7, -1.1, 0.4]])
    logits = theta.clone().requires_grad_(True)
    d = relax(logits, tau, "reinmax", generator=torch.Generator().manual_seed(3))
    (d * upstream).sum().backward()

    assert is_one_hot(d)
    # Hand computation (Liu et al. 2023, Algorithm 2): with D the sample drawn above,
    # pi0 = softmax(theta), pi1 = (D + softmax(theta / tau)) / 2, and the gradient of
    # 2 pi1 - pi0 / 2 w.r.t. theta (pi1 carrying the softmax Jacobian at its own value).
    pi0 = torch.softmax(theta, dim=-1)
    pi1 = (d.detach() + torch.softmax(theta / tau, dim=-1)) / 2
    expected = (2 * softmax_jacobian_vjp(pi1, upstream)
                - 0.5 * softmax_jacobian_vjp(pi0, upstream))
    torch.testing.assert_close(logits.grad, expected)
    assert bool(torch.isfinite(logits.grad).all()) and logits.grad.abs().sum() > 0
    # Unlike plain straight-through (J(pi0)^T g), the estimate depends on tau and the sample.
    assert not torch.allclose(logits.grad, softmax_jacobian_vjp(pi0, upstream))


@pytest.mark.parametrize("kind", RELAXATIONS)
@pytest.mark.parametrize("hard", [False, True])
def test_forbidden_logits_stay_at_zero_probability_without_nans(kind, hard):
    base = torch.randn(64, 6, generator=torch.Generator().manual_seed(7)) * 3
    base[:, [1, 4]] = float("-inf")  # as forbid_special leaves PAD and BOS
    logits = base.clone().requires_grad_(True)
    y = relax(logits, 0.3, kind, hard=hard, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(y).all())
    assert bool((y[:, [1, 4]] == 0).all())
    (y * torch.arange(6.0)).sum().backward()
    assert bool(torch.isfinite(logits.grad).all())
    assert bool((logits.grad[:, [1, 4]] == 0).all())
    assert logits.grad.abs().sum() > 0


def test_relax_rejects_unknown_kinds_and_non_positive_temperatures():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown relaxation"):
        relax(logits, 1.0, "sparsemax")
    for tau in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            relax(logits, tau, "softmax")


@pytest.mark.parametrize("kind", RELAXATIONS)
def test_relax_stays_fp32_under_bf16_autocast(kind):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.nn.Linear(6, 9)(torch.randn(4, 6))
        assert logits.dtype == torch.bfloat16  # the premise: autocast is really on
        y = relax(logits, 0.5, kind, hard=True, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32


# --------------------------------------------------------------------------- soft_generate


def test_the_temperature_reaches_the_soft_path():
    generator = make_generator().eval()
    z, c = condition(3)
    hot = soft_generate(generator, z, c, max_len=4, tau=1.0, kind="softmax")
    cold = soft_generate(generator, z, c, max_len=4, tau=0.3, kind="softmax")
    assert not torch.allclose(hot.probs, cold.probs)
    # Step 0 sees the same input (BOS) either way: the only difference is tau.
    assert bool((entropy(cold.probs[:, 0]) < entropy(hot.probs[:, 0])).all())
    assert entropy(cold.probs).mean() < entropy(hot.probs).mean()

    with torch.no_grad():
        zc = generator.conditioning(z, c)
        first = generator.step(generator.embed(generator.start_tokens(3)),
                               generator.initial_state(z, c), zc)
        logits0 = generator.forbid_special(first.logits)
    for tau, out in ((1.0, hot), (0.3, cold)):
        torch.testing.assert_close(out.probs[:, 0], torch.softmax(logits0 / tau, dim=-1))
        assert bool((out.probs[:, :, [PAD, BOS]] == 0).all())


def test_each_step_reads_the_expected_embedding_of_the_previous_soft_word():
    generator = make_generator().eval()
    z, c = condition(2)
    seen: list[torch.Tensor] = []
    step_logits: list[torch.Tensor] = []
    real_step = generator.step

    def recording_step(input_emb, hidden, zc, memory=None):
        seen.append(input_emb)
        step = real_step(input_emb, hidden, zc)
        step_logits.append(step.logits)
        return step

    generator.step = recording_step  # instance attribute: the real step, observed
    out = soft_generate(generator, z, c, max_len=3, tau=0.5, kind="softmax")
    assert torch.equal(seen[0], generator.embed(torch.full((2,), BOS)))
    for t in (1, 2):
        torch.testing.assert_close(seen[t], out.probs[:, t - 1] @ generator.embedding.weight)
    # The feedback is differentiable: step 0's logits reach the word at step 1 only through the
    # soft input y_0 @ E, so a detached feedback would leave this gradient empty.
    (grad,) = torch.autograd.grad(out.probs[:, 1, WORD_A].sum(), step_logits[0],
                                  allow_unused=True)
    assert grad is not None and grad.abs().sum() > 0


def rig(generator: Generator, table: torch.Tensor) -> None:
    """Make step t return log(table[t]) (B, V), so the softmax at tau = 1 is table[t].

    PAD and BOS get huge logits: forbid_special must remove them, or every weight is wrong.
    """
    steps = {"t": 0}

    def rigged_step(input_emb, hidden, zc, memory=None):
        logits = table[steps["t"]].log()  # (B, V), -inf where the table is 0
        steps["t"] += 1
        logits[:, [PAD, BOS]] = 50.0
        return Step(logits=logits, hidden=hidden)

    generator.step = rigged_step  # instance attribute: soft_generate's bookkeeping is tested


def probability_table(rows: list[list[dict[int, float]]]) -> torch.Tensor:
    """rows[b][t] = {token: probability} -> (T, B, V) table."""
    table = torch.zeros(len(rows[0]), len(rows), VOCAB, dtype=torch.float64)
    for b, row in enumerate(rows):
        for t, dist in enumerate(row):
            for token, prob in dist.items():
                table[t, b, token] = prob
    return table.float()


def test_soft_eos_masking_on_a_hand_built_case():
    A, B = WORD_A, WORD_B
    rows = [
        # P(EOS) = .5, .2, .25, 0, .6 -> weights 1, .5, .5 * .8, .4 * .75, .3 * 1
        [{EOS: 0.5, A: 0.3, B: 0.2}, {EOS: 0.2, A: 0.8}, {EOS: 0.25, B: 0.75}, {A: 1.0},
         {EOS: 0.6, B: 0.4}],
        # P(EOS) = .1 throughout -> .9 ** t
        [{EOS: 0.1, A: 0.9}] * 5,
        # a certain EOS at position 2 -> 1, 1, 1, then exactly 0
        [{A: 1.0}, {B: 1.0}, {EOS: 1.0}, {EOS: 0.3, A: 0.7}, {B: 1.0}],
    ]
    rig(generator := make_generator(), probability_table(rows))
    z, c = condition(3)
    out = soft_generate(generator, z, c, max_len=5, tau=1.0, kind="softmax")
    assert isinstance(out, SoftSentence)
    expected = torch.tensor([[1.0, 0.5, 0.4, 0.3, 0.3],
                             [1.0, 0.9, 0.81, 0.729, 0.6561],
                             [1.0, 1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(out.weights, expected, atol=1e-6, rtol=0)
    assert torch.equal(out.weights[2], expected[2])  # a certain EOS zeroes the tail exactly
    assert bool((out.probs[:, :, [PAD, BOS]] == 0).all())
    # The hard reading: argmax per step, cut after the first EOS.
    assert out.tokens.tolist() == [[EOS, PAD, PAD, PAD, PAD], [A] * 5,
                                   [A, B, EOS, PAD, PAD]]
    assert out.lengths.tolist() == [1, 5, 3]


def test_alive_weights_by_hand():
    eos_probs = torch.tensor([[0.5, 0.2, 0.25, 0.0, 0.6],
                              [0.0, 1.0, 0.0, 0.3, 1.0]], requires_grad=True)
    weights = alive_weights(eos_probs)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.5, 0.4, 0.3, 0.3],
                                                      [1.0, 1.0, 0.0, 0.0, 0.0]]))
    assert weights.dtype == torch.float32
    # d w_2 / d p_0 = -(1 - p_1) = -0.8 for row 0; the last position's own EOS never counts.
    weights[0, 2].backward()
    torch.testing.assert_close(eos_probs.grad[0], torch.tensor([-0.8, -0.5, 0.0, 0.0, 0.0]))


def test_hard_tokens_lengths_and_weights_end_at_the_first_eos():
    A, B = WORD_A, WORD_B

    def row(eos_probs, word):
        return [{EOS: p, word: 1.0 - p} for p in eos_probs]

    rows = [row([0.2, 0.7, 0.1, 0.9, 0.1, 0.1], A),   # first argmax EOS at position 1
            row([0.1] * 6, B),                        # never
            row([0.8, 0.1, 0.9, 0.1, 0.1, 0.1], A),   # at once
            row([0.1, 0.1, 0.1, 0.1, 0.1, 0.6], B)]   # on the last step
    rig(generator := make_generator(), probability_table(rows))
    z, c = condition(4)
    out = soft_generate(generator, z, c, max_len=6, tau=0.7, kind="softmax", hard=True)
    assert is_one_hot(out.probs)
    assert out.tokens.tolist() == [[A, EOS, PAD, PAD, PAD, PAD],
                                   [B, B, B, B, B, B],
                                   [EOS, PAD, PAD, PAD, PAD, PAD],
                                   [B, B, B, B, B, EOS]]
    assert out.lengths.tolist() == [2, 6, 1, 6]
    # One-hot rows: weight exactly 1 up to and including the first EOS, exactly 0 after.
    positions = torch.arange(6).unsqueeze(0)
    assert torch.equal(out.weights, (positions < out.lengths.unsqueeze(1)).float())
    # Soft sentences never stop early: always max_len steps.
    assert out.probs.shape == (4, 6, VOCAB) and out.weights.shape == (4, 6)


@pytest.mark.parametrize("kind,hard", [("softmax", False), ("gumbel", False),
                                       ("st_gumbel", True), ("reinmax", False)])
def test_gradients_reach_the_generator_z_and_c(kind, hard):
    generator = make_generator(dropout=0.1).train()
    z, c = condition(4, seed=1)
    z.requires_grad_(True)
    c.requires_grad_(True)
    out = soft_generate(generator, z, c, max_len=5, tau=0.8, kind=kind, hard=hard,
                        noise=torch.Generator().manual_seed(0))
    # A loss that reads both the soft words and the EOS weights, as D's input would.
    target = torch.randn(VOCAB, generator=torch.Generator().manual_seed(1))
    loss = ((out.probs @ target) * out.weights).sum() + out.weights.sum()
    loss.backward()
    for name, param in generator.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert bool(torch.isfinite(param.grad).all()), name
    assert z.grad.abs().sum() > 0 and c.grad.abs().sum() > 0


def test_weights_carry_gradient_of_the_eos_probabilities():
    generator = make_generator().eval()
    z, c = condition(2)
    z.requires_grad_(True)
    out = soft_generate(generator, z, c, max_len=4, tau=1.0, kind="softmax")
    out.weights[:, -1].sum().backward()
    assert z.grad.abs().sum() > 0


def _hand_sentence() -> tuple[SoftSentence, torch.Tensor]:
    """Two soft sentences over a 2-word vocabulary (EOS = index 0), and their EOS leaf."""
    eos_probs = torch.tensor([[0.5, 0.2, 0.25, 0.0], [0.1, 0.8, 0.0, 0.3]], requires_grad=True)
    probs = torch.stack([eos_probs, 1.0 - eos_probs], dim=-1)  # (2, 4, 2)
    sentence = SoftSentence(probs=probs, weights=alive_weights(eos_probs),
                            tokens=torch.zeros(2, 4, dtype=torch.long),
                            lengths=torch.tensor([1, 2]))  # argmax reading: EOS at 0 and at 1
    return sentence, eos_probs


def test_position_weights_soft_rewards_a_late_eos():
    sentence, eos_probs = _hand_sentence()
    sentence = sentence._replace(lengths=torch.tensor([4, 4]))  # no EOS in the argmax reading
    weights = position_weights(sentence, "soft")
    torch.testing.assert_close(weights, sentence.weights)
    # A reader that gains from every alive position pushes every EOS probability down (but the
    # last one, which no position after it depends on): the lever behind run-on sentences.
    weights.sum().backward()
    assert bool((eos_probs.grad[:, :-1] < 0).all()) and bool((eos_probs.grad[:, -1] == 0).all())


def test_position_weights_detached_and_hard_leave_eos_no_gradient_from_the_reader():
    sentence, eos_probs = _hand_sentence()
    detached = position_weights(sentence, "detached")
    # P(no EOS before t), cut after the argmax reading's first EOS (at 0 and at 1)
    torch.testing.assert_close(detached, torch.tensor([[1.0, 0.0, 0.0, 0.0],
                                                       [1.0, 0.9, 0.0, 0.0]]))
    uncut = position_weights(sentence._replace(lengths=torch.tensor([4, 4])), "detached")
    torch.testing.assert_close(uncut, torch.tensor([[1.0, 0.5, 0.4, 0.3],
                                                    [1.0, 0.9, 0.18, 0.18]]))
    assert not detached.requires_grad
    hard = position_weights(sentence, "hard")
    assert torch.equal(hard, torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    assert hard.dtype == torch.float32 and not hard.requires_grad
    # The words themselves still carry the gradient: EOS is learned from what is written.
    (sentence.probs[..., 1] * detached).sum().backward()
    assert eos_probs.grad.abs().sum() > 0


def test_position_weights_faded_reads_every_position_without_the_cut():
    sentence, eos_probs = _hand_sentence()  # argmax reading: EOS at 0 and at 1
    faded = position_weights(sentence, "faded")
    # the faded tail after the argmax EOS is read, weighted by P(no EOS before t), no gradient
    torch.testing.assert_close(faded, torch.tensor([[1.0, 0.5, 0.4, 0.3],
                                                    [1.0, 0.9, 0.18, 0.18]]))
    assert not faded.requires_grad


def test_position_weights_rejects_unknown_masks():
    assert SOFT_MASKS == ("soft", "detached", "hard", "faded")
    with pytest.raises(ValueError, match="unknown soft mask 'fuzzy'"):
        position_weights(_hand_sentence()[0], "fuzzy")


def test_soft_generation_is_seeded_by_noise():
    generator = make_generator().eval()
    z, c = condition(3)
    before = torch.get_rng_state()
    runs = [soft_generate(generator, z, c, max_len=5, tau=0.5, kind="gumbel",
                          noise=torch.Generator().manual_seed(seed)) for seed in (4, 4, 5)]
    assert torch.get_rng_state().equal(before)
    assert torch.equal(runs[0].probs, runs[1].probs)
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert not torch.equal(runs[0].probs, runs[2].probs)


@pytest.mark.parametrize("kind", RELAXATIONS)
def test_soft_generation_stays_fp32_under_bf16_autocast(kind):
    generator = make_generator().eval()
    z, c = condition(3)
    z.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = soft_generate(generator, z, c, max_len=4, tau=0.5, kind=kind,
                            noise=torch.Generator().manual_seed(0))
    assert out.probs.dtype == torch.float32 and out.weights.dtype == torch.float32
    assert out.tokens.dtype == torch.long and out.lengths.dtype == torch.long
    assert bool(torch.isfinite(out.probs).all())
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(3, 4))
    (out.probs[..., WORD_A] * out.weights).sum().backward()
    assert bool(torch.isfinite(z.grad).all()) and z.grad.abs().sum() > 0


def test_soft_generate_rejects_bad_arguments():
    generator = make_generator()
    z, c = condition(2)
    with pytest.raises(ValueError, match="max_len"):
        soft_generate(generator, z, c, max_len=0, tau=1.0, kind="softmax")
    with pytest.raises(ValueError, match="unknown relaxation"):
        soft_generate(generator, z, c, max_len=3, tau=1.0, kind="argmax")
    with pytest.raises(ValueError, match="temperature"):
        soft_generate(generator, z, c, max_len=3, tau=0.0, kind="softmax")
