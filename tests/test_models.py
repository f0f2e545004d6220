"""The VAE networks: structured code, encoder (packing, pad invariance), generator (teacher
forcing vs free running, decoding strategies, word dropout), gradients. Tiny sizes, CPU only."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from textgan.config import ModelConfig
from textgan.models import (Decoded, Encoder, Generator, Posterior, Step, apply_word_dropout,
                            ban_repeated_ngrams,
                            build_vae, choose_next, code_dim, fill_missing, filter_top_k,
                            filter_top_p, make_embedding, one_hot_code, reparameterize,
                            sample_code, shift_right, split_code, strengthen_code,
                            vae_parameters)

# Deliberately not 0/1/2/3, so a hard-coded special id anywhere in the models shows up.
PAD, BOS, EOS, UNK = 5, 2, 7, 0
VOCAB = 30
NUM_CLASSES = [2, 3]
WORDS = [i for i in range(VOCAB) if i not in (PAD, BOS, EOS, UNK)]

ENCODER_SHAPES = [(1, False), (1, True), (2, False), (3, True)]


def small_cfg(**overrides) -> ModelConfig:
    values = dict(embedding_dim=8, hidden_dim=12, z_dim=4, encoder_layers=1,
                  encoder_bidirectional=True, generator_layers=1, dropout=0.1)
    values.update(overrides)
    return ModelConfig(**values)


def make_generator(cfg: ModelConfig | None = None, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(cfg or small_cfg(), vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES),
                     pad_id=PAD, bos_id=BOS, eos_id=EOS)


def random_sentences(lengths: list[int], width: int | None = None, seed: int = 0) -> torch.Tensor:
    """Right-padded (B, T) batch: words, then EOS at lengths[b]-1, then PAD."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    words = torch.tensor(WORDS)
    tokens = torch.full((len(lengths), width), PAD, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, :n - 1] = words[torch.randint(len(WORDS), (n - 1,), generator=g)]
        tokens[row, n - 1] = EOS
    return tokens


def random_condition(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, small_cfg().z_dim, generator=g)
    c = one_hot_code(sample_code(batch, NUM_CLASSES, generator=g), NUM_CLASSES)
    return z, c


# --------------------------------------------------------------------------- the code c


def test_one_hot_code_has_one_hot_blocks():
    labels = torch.tensor([[0, 2], [1, 0], [1, 1]])
    c = one_hot_code(labels, NUM_CLASSES)
    assert code_dim(NUM_CLASSES) == 5
    assert c.dtype == torch.float32
    expected = torch.tensor([[1, 0, 0, 0, 1], [0, 1, 1, 0, 0], [0, 1, 0, 1, 0]],
                            dtype=torch.float32)
    assert torch.equal(c, expected)
    blocks = split_code(c, NUM_CLASSES)
    assert [b.shape[1] for b in blocks] == NUM_CLASSES
    for attribute, block in enumerate(blocks):
        assert torch.equal(block.sum(dim=1), torch.ones(3))
        assert torch.equal(block.argmax(dim=1), labels[:, attribute])


def test_one_hot_code_refuses_missing_and_out_of_range_labels():
    with pytest.raises(ValueError, match="missing"):
        one_hot_code(torch.tensor([[0, -1]]), NUM_CLASSES)
    with pytest.raises(ValueError, match="out of range"):
        one_hot_code(torch.tensor([[2, 0]]), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        one_hot_code(torch.tensor([[0, 0, 0]]), NUM_CLASSES)
    with pytest.raises(ValueError, match="integer"):
        one_hot_code(torch.tensor([[0.0, 1.0]]), NUM_CLASSES)


def test_strengthen_code_by_hand():
    """Strength s: onehot + (s - 1) * (onehot - (1 - onehot) / (n - 1)) in the marked blocks."""
    c = one_hot_code(torch.tensor([[1, 0], [0, 2], [1, 1]]), NUM_CLASSES)  # blocks of 2 and 3
    marked = torch.tensor([[True, False], [True, True], [False, True]])
    assert torch.equal(strengthen_code(c, marked, 2.0, NUM_CLASSES), torch.tensor([
        [-1.0, 2.0, 1.0, 0.0, 0.0],          # [0, 1] pushed; the other block as it was
        [2.0, -1.0, -0.5, -0.5, 2.0],        # [0, 0, 1] -> [-1/2, -1/2, 2]
        [0.0, 1.0, -0.5, 2.0, -0.5]]))
    assert torch.equal(strengthen_code(c, marked, 1.0, NUM_CLASSES), c)
    # a weaker code (0.5) is halfway between the two classes
    assert torch.equal(strengthen_code(c[:1], marked[:1], 0.5, NUM_CLASSES),
                       torch.tensor([[0.5, 0.5, 1.0, 0.0, 0.0]]))
    # an attribute of one class has nothing to push away from
    single = one_hot_code(torch.tensor([[0, 1]]), [1, 2])
    assert torch.equal(strengthen_code(single, torch.tensor([[True, True]]), 3.0, [1, 2]),
                       torch.tensor([[1.0, -2.0, 3.0]]))


def test_unlabelled_corpus_has_an_empty_code():
    labels = sample_code(4, [])
    assert labels.shape == (4, 0)
    c = one_hot_code(labels, [])
    assert c.shape == (4, 0)
    assert code_dim([]) == 0


def test_sample_code_is_uniform_per_attribute_and_seeded():
    labels = sample_code(30000, NUM_CLASSES, generator=torch.Generator().manual_seed(1))
    assert labels.shape == (30000, 2) and labels.dtype == torch.long
    for attribute, n in enumerate(NUM_CLASSES):
        counts = torch.bincount(labels[:, attribute], minlength=n).float() / 30000
        assert counts.shape == (n,)
        assert torch.allclose(counts, torch.full((n,), 1.0 / n), atol=0.02)
    again = sample_code(30000, NUM_CLASSES, generator=torch.Generator().manual_seed(1))
    other = sample_code(30000, NUM_CLASSES, generator=torch.Generator().manual_seed(2))
    assert torch.equal(labels, again)
    assert not torch.equal(labels, other)


def test_fill_missing_keeps_known_labels_and_draws_the_rest():
    batch = 2000
    labels = torch.full((batch, 2), -1, dtype=torch.long)
    mask = torch.zeros(batch, 2, dtype=torch.bool)
    labels[: batch // 2, 0] = 1  # first half knows attribute 0 = class 1
    mask[: batch // 2, 0] = True
    labels[::2, 1] = 2  # even rows know attribute 1 = class 2
    mask[::2, 1] = True
    filled = fill_missing(labels, mask, NUM_CLASSES, generator=torch.Generator().manual_seed(0))
    assert torch.equal(filled[mask], labels[mask])
    assert bool((filled >= 0).all())
    assert bool((filled < torch.tensor(NUM_CLASSES)).all())
    # The drawn entries follow the prior, not the known labels.
    drawn_0 = filled[batch // 2:, 0].float().mean().item()
    assert abs(drawn_0 - 0.5) < 0.06
    drawn_1 = torch.bincount(filled[1::2, 1], minlength=3).float() / (batch // 2)
    assert torch.allclose(drawn_1, torch.full((3,), 1 / 3), atol=0.06)
    one_hot_code(filled, NUM_CLASSES)  # no -1 left


# --------------------------------------------------------------------------- reparameterize


def test_reparameterize_draws_fresh_noise_per_row():
    mean = torch.zeros(6, 4)
    logvar = torch.zeros(6, 4)
    z = reparameterize(Posterior(mean, logvar))
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.equal(z[i], z[j])
    seeded = reparameterize(Posterior(mean, logvar), generator=torch.Generator().manual_seed(3))
    again = reparameterize(Posterior(mean, logvar), generator=torch.Generator().manual_seed(3))
    assert torch.equal(seeded, again)
    assert not torch.equal(seeded[0], seeded[1])


def test_reparameterize_has_the_posterior_moments_and_passes_gradients():
    mean = torch.tensor([[1.0, -2.0]]).repeat(20000, 1).requires_grad_()
    logvar = torch.tensor([[0.0, 2 * torch.log(torch.tensor(3.0)).item()]]).repeat(20000, 1)
    logvar.requires_grad_()
    z = reparameterize(Posterior(mean, logvar), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(dim=0), torch.tensor([1.0, -2.0]), atol=0.08)
    assert torch.allclose(z.std(dim=0), torch.tensor([1.0, 3.0]), atol=0.08)
    z.sum().backward()
    assert mean.grad is not None and logvar.grad is not None
    assert float(logvar.grad.abs().sum()) > 0


# --------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("layers,bidirectional", ENCODER_SHAPES)
def test_encoder_output_shapes(layers, bidirectional):
    torch.manual_seed(0)
    cfg = small_cfg(encoder_layers=layers, encoder_bidirectional=bidirectional)
    encoder = Encoder(cfg, vocab_size=VOCAB, pad_id=PAD)
    tokens = random_sentences([6, 3, 1, 4])
    posterior = encoder(tokens, torch.tensor([6, 3, 1, 4]))
    assert isinstance(posterior, Posterior)
    assert posterior.mean.shape == (4, cfg.z_dim)
    assert posterior.logvar.shape == (4, cfg.z_dim)
    assert not torch.equal(posterior.mean, posterior.logvar)


@pytest.mark.parametrize("layers,bidirectional", ENCODER_SHAPES)
def test_encoder_ignores_padding(layers, bidirectional):
    torch.manual_seed(0)
    cfg = small_cfg(encoder_layers=layers, encoder_bidirectional=bidirectional, dropout=0.3)
    encoder = Encoder(cfg, vocab_size=VOCAB, pad_id=PAD).eval()
    lengths = torch.tensor([6, 3, 1, 4])
    tokens = random_sentences(lengths.tolist())
    reference = encoder(tokens, lengths)

    # Extra padding columns.
    wider = torch.cat([tokens, torch.full((4, 5), PAD)], dim=1)
    # Garbage (real word ids, even EOS) where the padding was.
    garbage = wider.clone()
    positions = torch.arange(wider.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    garbage[positions] = torch.randint(0, VOCAB, (int(positions.sum()),),
                                       generator=torch.Generator().manual_seed(9))
    assert not torch.equal(garbage, wider)
    for variant in (wider, garbage):
        out = encoder(variant, lengths)
        assert torch.allclose(out.mean, reference.mean, atol=1e-6, rtol=0)
        assert torch.allclose(out.logvar, reference.logvar, atol=1e-6, rtol=0)

    # Each row alone, with no padding at all, encodes the same as inside the batch.
    for row, n in enumerate(lengths.tolist()):
        alone = encoder(tokens[row:row + 1, :n], lengths[row:row + 1])
        assert torch.allclose(alone.mean, reference.mean[row:row + 1], atol=1e-6, rtol=0)

    # Without packing the padding would matter: the test would catch an encoder that ignored
    # lengths (for one direction at least).
    unpacked = encoder.encode_embeddings(encoder.embed(garbage), None)
    assert not torch.allclose(unpacked.mean, reference.mean, atol=1e-4)


def test_encoder_batch_permutation_permutes_outputs():
    torch.manual_seed(0)
    encoder = Encoder(small_cfg(encoder_layers=2), vocab_size=VOCAB, pad_id=PAD).eval()
    lengths = torch.tensor([6, 3, 1, 4, 3])
    tokens = random_sentences(lengths.tolist())
    reference = encoder(tokens, lengths)
    order = torch.tensor([3, 0, 4, 2, 1])
    permuted = encoder(tokens[order], lengths[order])
    assert torch.allclose(permuted.mean, reference.mean[order], atol=1e-6, rtol=0)
    assert torch.allclose(permuted.logvar, reference.logvar[order], atol=1e-6, rtol=0)


def test_encoder_reads_soft_sentences_through_the_same_table():
    torch.manual_seed(0)
    encoder = Encoder(small_cfg(), vocab_size=VOCAB, pad_id=PAD).eval()
    lengths = torch.tensor([5, 2, 4])
    tokens = random_sentences(lengths.tolist())
    one_hot = F.one_hot(tokens, VOCAB).float()  # (B, T, V)
    soft = encoder.encode_embeddings(encoder.embed_soft(one_hot), lengths)
    hard = encoder(tokens, lengths)
    assert torch.allclose(soft.mean, hard.mean, atol=1e-6)
    assert torch.allclose(soft.logvar, hard.logvar, atol=1e-6)


def test_encoder_rejects_impossible_lengths():
    encoder = Encoder(small_cfg(), vocab_size=VOCAB, pad_id=PAD)
    tokens = random_sentences([3, 2])
    with pytest.raises(ValueError, match="lengths"):
        encoder(tokens, torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="lengths"):
        encoder(tokens, torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="lengths"):
        encoder(tokens, torch.tensor([3]))


def test_single_layer_grus_do_not_warn_about_dropout():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Encoder(small_cfg(dropout=0.5), vocab_size=VOCAB, pad_id=PAD)
        make_generator(small_cfg(dropout=0.5))
    encoder = Encoder(small_cfg(dropout=0.5, encoder_layers=2), vocab_size=VOCAB, pad_id=PAD)
    generator = make_generator(small_cfg(dropout=0.5, generator_layers=3))
    assert encoder.gru.dropout == 0.5 and generator.gru.dropout == 0.5


# --------------------------------------------------------------------------- shared embedding


def test_build_vae_shares_the_embedding_when_configured():
    shared = build_vae(small_cfg(share_embedding=True), vocab_size=VOCAB, code_dim=5,
                       pad_id=PAD, bos_id=BOS, eos_id=EOS)
    assert shared.encoder.embedding is shared.generator.embedding
    separate = build_vae(small_cfg(share_embedding=False), vocab_size=VOCAB, code_dim=5,
                         pad_id=PAD, bos_id=BOS, eos_id=EOS)
    assert separate.encoder.embedding is not separate.generator.embedding
    # vae_parameters lists the shared table once, so one optimizer can take it without warning.
    n_shared = len(vae_parameters(shared))
    assert n_shared == len(vae_parameters(separate)) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.optim.Adam(vae_parameters(shared))
    assert ModelConfig().share_embedding is True


def test_a_shared_embedding_of_the_wrong_size_is_refused():
    cfg = small_cfg()
    with pytest.raises(ValueError, match="embedding"):
        Encoder(cfg, vocab_size=VOCAB, pad_id=PAD, embedding=torch.nn.Embedding(VOCAB + 1, 8))
    with pytest.raises(ValueError, match="embedding"):
        Generator(cfg, vocab_size=VOCAB, code_dim=5, pad_id=PAD, bos_id=BOS, eos_id=EOS,
                  embedding=torch.nn.Embedding(VOCAB, 9))
    table = make_embedding(cfg, vocab_size=VOCAB, pad_id=PAD)
    assert torch.equal(table.weight[PAD], torch.zeros(8))


# --------------------------------------------------------------------------- generator


def test_shift_right_and_teacher_forcing_shapes():
    tokens = random_sentences([4, 2, 3])
    inputs = shift_right(tokens, BOS)
    assert torch.equal(inputs[:, 0], torch.full((3,), BOS))
    assert torch.equal(inputs[:, 1:], tokens[:, :-1])
    generator = make_generator()
    assert torch.equal(generator.teacher_inputs(tokens), inputs)
    z, c = random_condition(3)
    logits = generator(inputs, z, c)
    assert logits.shape == (3, 4, VOCAB)
    with pytest.raises(ValueError, match="expects"):
        generator(inputs, z, c[:, :4])


@pytest.mark.parametrize("layers", [1, 2])
def test_step_matches_teacher_forcing(layers):
    generator = make_generator(small_cfg(generator_layers=layers, dropout=0.3)).eval()
    tokens = random_sentences([6, 3, 5, 1], seed=4)
    inputs = generator.teacher_inputs(tokens)
    z, c = random_condition(4, seed=4)
    forced = generator(inputs, z, c)  # (B, T, V)

    zc = generator.conditioning(z, c)
    hidden = generator.initial_state(z, c)
    assert hidden.shape == (layers, 4, small_cfg().hidden_dim)
    soft_hidden = hidden
    for t in range(inputs.shape[1]):
        step = generator.step(generator.embed(inputs[:, t]), hidden, zc)
        assert isinstance(step, Step)
        assert torch.allclose(step.logits, forced[:, t], atol=1e-5, rtol=0)
        hidden = step.hidden
        # The soft path (probability-weighted embeddings) on one-hot inputs is the same function.
        one_hot = F.one_hot(inputs[:, t], VOCAB).float()
        soft_logits, soft_hidden = generator.step(generator.embed_soft(one_hot), soft_hidden, zc)
        assert torch.allclose(soft_logits, forced[:, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [1, 2])
def test_greedy_decoding_agrees_with_teacher_forcing_on_its_output(layers):
    generator = make_generator(small_cfg(generator_layers=layers), seed=1).eval()
    z, c = random_condition(16, seed=1)
    # Raise the EOS bias until some rows end early and others run to max_len, so that both the
    # frozen rows and the running ones are compared.
    base = generator.output.bias[EOS].item()
    for offset in torch.linspace(-0.5, 3.0, 36).tolist():
        with torch.no_grad():
            generator.output.bias[EOS] = base + offset
        out = generator.decode(z, c, max_len=10)
        if 0 < int(out.ended.sum()) < 16 and int(out.lengths.min()) < 10:
            break
    assert 0 < int(out.ended.sum()) < 16, "no EOS bias gives a mix of ended and running rows"
    assert isinstance(out, Decoded)
    logits = generator.forbid_special(generator(generator.teacher_inputs(out.tokens), z, c))
    choices = logits.argmax(dim=-1)  # (B, L)
    real = torch.arange(out.tokens.shape[1]).unsqueeze(0) < out.lengths.unsqueeze(1)
    assert torch.equal(choices[real], out.tokens[real])


def test_decode_stops_each_row_at_its_first_eos():
    generator = make_generator()
    w = 4  # a word
    script = torch.tensor([
        [w, EOS, w, EOS, w, w],  # ends at step 2; later tokens must be dropped
        [w, w, w, w, w, w],  # never ends
        [EOS, w, EOS, w, w, w],  # ends at once
        [w, w, w, w, w, EOS],  # ends on the last step
    ])
    seen_inputs: list[torch.Tensor] = []

    def scripted_step(input_emb, hidden, zc, memory=None):
        t = len(seen_inputs)
        seen_inputs.append(input_emb)
        logits = torch.full((4, VOCAB), -1e4)
        logits[torch.arange(4), script[:, t]] = 0.0
        return Step(logits=logits, hidden=hidden)

    generator.step = scripted_step  # instance attribute: decode's bookkeeping is under test
    z, c = random_condition(4)
    for strategy in ("greedy", "sample"):
        seen_inputs.clear()
        out = generator.decode(z, c, max_len=6, strategy=strategy,
                               generator=torch.Generator().manual_seed(0))
        expected = torch.tensor([
            [w, EOS, PAD, PAD, PAD, PAD],
            [w, w, w, w, w, w],
            [EOS, PAD, PAD, PAD, PAD, PAD],
            [w, w, w, w, w, EOS],
        ])
        assert torch.equal(out.tokens, expected)
        assert out.lengths.tolist() == [2, 6, 1, 6]
        assert out.ended.tolist() == [True, False, True, True]
        # Each row's next input is its previous output (BOS first; PAD once it has ended).
        assert torch.equal(seen_inputs[0], generator.embed(torch.full((4,), BOS)))
        for t in range(1, 6):
            assert torch.equal(seen_inputs[t], generator.embed(expected[:, t - 1]))

    # When every row has ended, decoding stops early.
    script[1, 2] = EOS
    seen_inputs.clear()
    out = generator.decode(z, c, max_len=6)
    assert out.tokens.shape == (4, 6)  # row 3 ends only on the last step
    script[3, 3] = EOS
    seen_inputs.clear()
    out = generator.decode(z, c, max_len=6)
    assert len(seen_inputs) == 4 and out.tokens.shape == (4, 4)
    assert out.lengths.tolist() == [2, 3, 1, 4]
    assert bool(out.ended.all())


def test_decode_with_rigged_output_bias():
    generator = make_generator().eval()
    z, c = random_condition(5)
    with torch.no_grad():
        generator.output.weight.zero_()
        generator.output.bias.zero_()
        generator.output.bias[EOS] = 5.0
        generator.output.bias[PAD] = 9.0  # PAD and BOS are never produced, even when favoured
        generator.output.bias[BOS] = 8.0
    out = generator.decode(z, c, max_len=7)
    assert torch.equal(out.tokens, torch.full((5, 1), EOS))
    assert out.lengths.tolist() == [1] * 5 and bool(out.ended.all())

    with torch.no_grad():
        generator.output.bias[EOS] = -30.0  # never drawn, even by sampling
        generator.output.bias[11] = 2.0
    out = generator.decode(z, c, max_len=7, strategy="sample",
                           generator=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (5, 7)
    assert out.lengths.tolist() == [7] * 5 and not bool(out.ended.any())
    assert not bool(((out.tokens == PAD) | (out.tokens == BOS)).any())
    assert len(out.tokens.unique()) > 1  # a real draw, not just the favoured word


def test_greedy_decoding_is_deterministic_and_row_independent():
    generator = make_generator(seed=2).eval()
    z, c = random_condition(8, seed=2)
    first = generator.decode(z, c, max_len=9)
    second = generator.decode(z, c, max_len=9)
    assert torch.equal(first.tokens, second.tokens)
    assert torch.equal(first.lengths, second.lengths)
    subset = generator.decode(z[2:5], c[2:5], max_len=9)
    width = subset.tokens.shape[1]
    assert torch.equal(subset.tokens, first.tokens[2:5, :width])
    assert torch.equal(subset.lengths, first.lengths[2:5])


def test_sampling_is_reproducible_with_a_seeded_generator():
    generator = make_generator(seed=3).eval()
    z, c = random_condition(8, seed=3)

    def sample(seed: int) -> Decoded:
        return generator.decode(z, c, max_len=8, strategy="sample",
                                generator=torch.Generator().manual_seed(seed))

    a, b, other = sample(11), sample(11), sample(12)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.tokens, other.tokens)
    greedy = generator.decode(z, c, max_len=8)
    assert not torch.equal(a.tokens, greedy.tokens)


def test_top_k_one_tiny_top_p_and_low_temperature_are_greedy():
    generator = make_generator(seed=5).eval()
    z, c = random_condition(12, seed=5)
    greedy = generator.decode(z, c, max_len=10)

    def sample(**kwargs) -> Decoded:
        return generator.decode(z, c, max_len=10, strategy="sample",
                                generator=torch.Generator().manual_seed(0), **kwargs)

    for kwargs in (dict(top_k=1), dict(top_p=1e-6), dict(temperature=1e-4),
                   dict(top_k=1, temperature=3.0)):
        out = sample(**kwargs)
        assert torch.equal(out.tokens, greedy.tokens), kwargs
        assert torch.equal(out.lengths, greedy.lengths), kwargs
    hot = sample(temperature=10.0)
    assert not torch.equal(hot.tokens, greedy.tokens)


def test_filters_keep_the_right_tokens():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]])
    logits = probs.log()
    kept_k = torch.isfinite(filter_top_k(logits, 2))
    assert kept_k[0].tolist() == [False, True, False, True]
    assert kept_k[1].all()  # ties with the k-th are kept
    assert torch.equal(filter_top_k(logits, 0), logits)
    assert torch.equal(filter_top_k(logits, 10), logits)
    assert torch.isfinite(filter_top_p(logits, 0.7))[0].tolist() == [False, True, False, True]
    assert torch.isfinite(filter_top_p(logits, 0.85))[0].tolist() == [False, True, True, True]
    assert torch.isfinite(filter_top_p(logits, 0.6))[1].tolist() == [True, True, True, False]
    assert torch.isfinite(filter_top_p(logits, 1e-9)).sum(dim=1).tolist() == [1, 1]
    assert torch.equal(filter_top_p(logits, 1.0), logits)


def test_sampling_follows_the_filtered_distribution():
    logits = torch.tensor([[0.05, 0.5, 0.15, 0.3]]).log().repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    drawn = choose_next(logits, strategy="sample", top_k=2, generator=g)
    freq = torch.bincount(drawn, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.0, 0.625, 0.0, 0.375]), atol=0.02)
    drawn = choose_next(logits, strategy="sample", top_p=0.85, generator=g)
    freq = torch.bincount(drawn, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.0, 0.5, 0.15, 0.3]) / 0.95, atol=0.02)
    drawn = choose_next(logits, strategy="sample", temperature=0.5, generator=g)
    sharpened = torch.tensor([0.05, 0.5, 0.15, 0.3]) ** 2
    freq = torch.bincount(drawn, minlength=4).float() / 20000
    assert torch.allclose(freq, sharpened / sharpened.sum(), atol=0.02)


def test_ban_repeated_ngrams_on_hand_cases():
    history = torch.tensor([[5, 6, 5, 6, 7, 5],
                            [4, 5, 6, 7, 8, 9]])
    logits = torch.zeros(2, 12)

    def banned(n: int, **kwargs) -> list[list[int]]:
        out = ban_repeated_ngrams(logits, history, n, **kwargs)
        return [torch.nonzero(torch.isinf(row)).flatten().tolist() for row in out]

    # row 0 ends in 5, which was followed by 6 twice: writing 6 again repeats the bigram 5 6
    assert banned(2) == [[6], []]
    assert banned(1) == [[5, 6, 7], [4, 5, 6, 7, 8, 9]]  # every word already written
    assert banned(3) == [[], []]  # "7 5" never came before
    history3 = torch.tensor([[5, 6, 8, 5, 6]])
    assert [torch.isinf(r).nonzero().flatten().tolist()
            for r in ban_repeated_ngrams(torch.zeros(1, 12), history3, 3)] == [[8]]
    assert banned(2, active=torch.tensor([False, True])) == [[], []]
    assert banned(0) == [[], []]  # off
    assert banned(7) == [[], []]  # longer than the history: nothing to repeat yet
    assert torch.equal(ban_repeated_ngrams(logits, history[:, :0], 1), logits)


def greedy_loop_generator() -> Generator:
    """A generator whose greedy output is word 11 again and again (a greedy loop), with the
    other words' scores spread so that a ban always leaves a clear second choice."""
    generator = make_generator().eval()
    with torch.no_grad():
        generator.output.weight.zero_()
        generator.output.bias.copy_(torch.linspace(0.0, 1.0, VOCAB))
        generator.output.bias[11] = 5.0
        generator.output.bias[EOS] = -30.0
    return generator


def repeats_an_ngram(row: list[int], n: int) -> bool:
    grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
    return len(grams) != len(set(grams))


def test_no_repeat_ngram_decoding_never_writes_an_ngram_twice():
    generator = greedy_loop_generator()
    z, c = random_condition(3)
    plain = generator.decode(z, c, max_len=8)
    assert plain.tokens.tolist() == [[11] * 8] * 3
    for n in (1, 2, 3):
        out = generator.decode(z, c, max_len=8, no_repeat_ngram=n)
        for row in out.tokens.tolist():
            assert not repeats_an_ngram(row, n), (n, row)
    # n = 1: every word once, best first; n = 2: 11 may follow only one word, once
    assert generator.decode(z, c, max_len=4, no_repeat_ngram=1).tokens[0].tolist() == \
        [11, VOCAB - 1, VOCAB - 2, VOCAB - 3]
    assert generator.decode(z, c, max_len=5, no_repeat_ngram=2).tokens[0].tolist() == \
        [11, 11, VOCAB - 1, 11, VOCAB - 2]
    # sampling obeys the ban too
    drawn = generator.decode(z, c, max_len=8, no_repeat_ngram=2, strategy="sample",
                             generator=torch.Generator().manual_seed(0))
    assert not any(repeats_an_ngram(row, 2) for row in drawn.tokens.tolist())


def test_no_repeat_ngram_changes_only_sentences_that_would_repeat_one():
    """A ban only removes choices that would repeat: a sentence with no repeated n-gram under
    plain greedy decoding comes out the same with the ban."""
    generator = make_generator(seed=4).eval()
    z, c = random_condition(64, seed=4)
    plain = generator.decode(z, c, max_len=12)
    banned = generator.decode(z, c, max_len=12, no_repeat_ngram=2)
    unchanged = changed = 0
    for row, (p, b, length) in enumerate(zip(plain.tokens.tolist(), banned.tokens.tolist(),
                                              plain.lengths.tolist())):
        if repeats_an_ngram(p[:length], 2):
            assert p != b
            changed += 1
        else:
            assert p[:length] == b[:length], row
            unchanged += 1
    assert changed and unchanged  # both kinds occur with these weights


def test_decode_rejects_impossible_settings():
    generator = make_generator()
    z, c = random_condition(2)
    for kwargs in (dict(max_len=0), dict(strategy="beam"), dict(temperature=0.0),
                   dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(no_repeat_ngram=-1),
                   dict(no_repeat_ngram=1.5), dict(no_repeat_ngram=True)):
        settings = dict(max_len=5) | kwargs
        with pytest.raises(ValueError):
            generator.decode(z, c, **settings)


# --------------------------------------------------------------------------- word dropout


def test_word_dropout_extremes_and_protected_positions():
    tokens = random_sentences([6, 3, 1, 4], width=8)
    inputs = shift_right(tokens, BOS)
    assert apply_word_dropout(inputs, 0.0, unk_id=UNK, pad_id=PAD, bos_id=BOS) is inputs

    all_gone = apply_word_dropout(inputs, 1.0, unk_id=UNK, pad_id=PAD, bos_id=BOS)
    protected = (inputs == PAD) | (inputs == BOS)
    assert torch.equal(all_gone[protected], inputs[protected])
    assert bool((all_gone[~protected] == UNK).all())

    no_bos_kept = apply_word_dropout(inputs, 1.0, unk_id=UNK, pad_id=PAD)
    assert bool((no_bos_kept[:, 0] == UNK).all())
    assert torch.equal(no_bos_kept[inputs == PAD], inputs[inputs == PAD])

    with pytest.raises(ValueError):
        apply_word_dropout(inputs, 1.5, unk_id=UNK, pad_id=PAD)


def test_word_dropout_rate_is_respected_and_seeded():
    inputs = shift_right(random_sentences([20] * 200 + [5] * 200, seed=1), BOS)
    real = (inputs != PAD) & (inputs != BOS)

    def drop(seed: int) -> torch.Tensor:
        return apply_word_dropout(inputs, 0.3, unk_id=UNK, pad_id=PAD, bos_id=BOS,
                                  generator=torch.Generator().manual_seed(seed))

    out = drop(0)
    assert torch.equal(out[~real], inputs[~real])
    replaced = (out != inputs) & real
    assert abs(replaced.sum().item() / real.sum().item() - 0.3) < 0.02
    assert bool((out[replaced] == UNK).all())
    assert torch.equal(out, drop(0))
    assert not torch.equal(out, drop(1))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("share", [True, False])
def test_a_teacher_forced_loss_reaches_every_parameter(share):
    torch.manual_seed(0)
    cfg = small_cfg(share_embedding=share, encoder_layers=2, generator_layers=2)
    vae = build_vae(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                    bos_id=BOS, eos_id=EOS)
    lengths = torch.tensor([6, 3, 1, 4])
    tokens = random_sentences(lengths.tolist())
    posterior = vae.encoder(tokens, lengths)
    z = reparameterize(posterior, generator=torch.Generator().manual_seed(0))
    c = one_hot_code(sample_code(4, NUM_CLASSES, generator=torch.Generator()), NUM_CLASSES)
    inputs = apply_word_dropout(vae.generator.teacher_inputs(tokens), 0.2, unk_id=UNK,
                                pad_id=PAD, bos_id=BOS)
    logits = vae.generator(inputs, z, c)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens.reshape(-1), ignore_index=PAD)
    loss.backward()
    for module in vae:
        for name, param in module.named_parameters():
            assert param.grad is not None, name
            assert float(param.grad.abs().sum()) > 0, name
    for module in vae:
        assert torch.equal(module.embedding.weight.grad[PAD], torch.zeros(cfg.embedding_dim))
