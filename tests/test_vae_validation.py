"""The VAE evaluator: every metric present with the right type and range, each one equal to its
definition recomputed by hand from the networks (which z, which c), determinism across runs,
no effect on torch's global RNG, train/eval modes restored, empty validation sets refused."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events
from sacrebleu.metrics import BLEU
from torch.utils.data import DataLoader

from textgan.config import ModelConfig, TokenizerConfig
from textgan.data import Batch, collate
from textgan.losses import gaussian_kl, mutual_information, reconstruction_loss
from textgan.models import build_vae, code_dim, fill_missing, one_hot_code, reparameterize
from textgan.tokenizer import train_tokenizer
from textgan.models.modes import eval_mode
from textgan.vae_validation import VAE_METRICS, create_vae_evaluator

# Deliberately not 0/1/2/3, so a hard-coded special id anywhere shows up.
PAD, BOS, EOS, UNK = 5, 2, 7, 0
VOCAB = 20
NUM_CLASSES = [2, 3]
Z_DIM = 4
MAX_LEN = 8


class FakeTokenizer:
    """Word-level stand-in for textgan.tokenizer.Tokenizer: id i is the word "w<i>"."""

    pad_id, bos_id, eos_id, unk_id = PAD, BOS, EOS, UNK

    def decode(self, ids) -> list[str]:
        rows = ids.tolist() if hasattr(ids, "tolist") else [list(r) for r in ids]
        texts = []
        for row in rows:
            words = []
            for i in row:
                if i == EOS:
                    break
                if i not in (PAD, BOS):
                    words.append(f"w{i}")
            texts.append(" ".join(words))
        return texts


def make_vae(seed: int = 0, dropout: float = 0.3):
    """Tiny VAE; dropout > 0 so that a forgotten eval() shows up as run-to-run differences."""
    torch.manual_seed(seed)
    cfg = ModelConfig(embedding_dim=8, hidden_dim=12, z_dim=Z_DIM, encoder_layers=1,
                      encoder_bidirectional=True, generator_layers=1, dropout=dropout)
    return build_vae(cfg, vocab_size=VOCAB, code_dim=code_dim(NUM_CLASSES), pad_id=PAD,
                     bos_id=BOS, eos_id=EOS)


def make_batches(sizes=(4, 3, 5), seed: int = 1) -> list[Batch]:
    """Batches of random words + EOS + PAD; some labels missing."""
    g = torch.Generator().manual_seed(seed)
    words = torch.tensor([i for i in range(VOCAB) if i not in (PAD, BOS, EOS, UNK)])
    batches = []
    for size in sizes:
        lengths = torch.randint(2, 7, (size,), generator=g)
        tokens = torch.full((size, int(lengths.max())), PAD, dtype=torch.long)
        for row, n in enumerate(lengths.tolist()):
            tokens[row, :n - 1] = words[torch.randint(len(words), (n - 1,), generator=g)]
            tokens[row, n - 1] = EOS
        labels = torch.stack([torch.randint(n, (size,), generator=g) for n in NUM_CLASSES], 1)
        mask = torch.rand(size, len(NUM_CLASSES), generator=g) > 0.3
        batches.append(Batch(tokens, lengths, labels.masked_fill(~mask, -1), mask))
    return batches


def evaluator_for(vae, **kwargs):
    options = dict(tokenizer=FakeTokenizer(), num_classes=NUM_CLASSES, max_len=MAX_LEN,
                   device="cpu")
    options.update(kwargs)
    return create_vae_evaluator(vae.encoder, vae.generator, **options)


# --------------------------------------------------------------------------- the metrics


def test_every_metric_present_with_type_and_range():
    vae = make_vae()
    batches = make_batches()
    evaluator = evaluator_for(vae, num_examples=6)
    state = evaluator.run(batches)
    metrics = state.metrics
    assert set(VAE_METRICS) <= set(metrics)
    for name in VAE_METRICS:
        if name == "kl_per_dim":
            continue
        assert isinstance(metrics[name], (int, float)), name
        assert math.isfinite(metrics[name]), name
    assert metrics["nll"] > 0 and metrics["ppl"] == pytest.approx(math.exp(metrics["nll"]))
    # An untrained model is near uniform: the NLL is close to log V.
    assert metrics["nll"] == pytest.approx(math.log(VOCAB), rel=0.3)
    assert metrics["kl"] >= 0
    per_dim = metrics["kl_per_dim"]
    assert isinstance(per_dim, torch.Tensor) and per_dim.shape == (Z_DIM,)
    assert (per_dim >= 0).all() and float(per_dim.sum()) == pytest.approx(metrics["kl"])
    assert metrics["elbo"] < -metrics["kl"]  # the reconstruction term is a positive NLL
    assert isinstance(metrics["active_units"], int) and 0 <= metrics["active_units"] <= Z_DIM
    assert metrics["mi"] <= math.log(max(len(b.tokens) for b in batches)) + 1e-6
    assert 0.0 <= metrics["token_acc"] <= 1.0
    assert 0.0 <= metrics["eos_rate"] <= 1.0
    assert 0.0 <= metrics["bleu"] <= 100.0
    assert state.bleu_signature.startswith("nrefs:1|case:mixed|eff:yes|tok:13a")
    # The sample dump: the first 6 (reference, reconstruction) pairs of the epoch, in order.
    assert len(state.examples) == 6
    references = FakeTokenizer().decode(batches[0].tokens) + FakeTokenizer().decode(
        batches[1].tokens)
    assert [ref for ref, _ in state.examples] == references[:6]
    assert all(isinstance(hyp, str) for _, hyp in state.examples)


def expected_metrics(vae, batches, *, seed: int, code_source: str = "label") -> dict:
    """Every metric from its definition, replaying the evaluator's noise stream by hand."""
    encoder, generator = vae
    rng = torch.Generator().manual_seed(seed)
    tok = FakeTokenizer()
    nll_sum = tokens = correct = words = ended = sentences = 0.0
    neg_elbo = mi_weighted = 0.0
    kl_rows, means, hyps, refs = [], [], [], []
    with torch.no_grad(), eval_mode(encoder, generator):
        for batch in batches:
            post = encoder(batch.tokens, batch.lengths)
            if code_source == "label":
                labels = fill_missing(batch.labels, batch.label_mask, NUM_CLASSES, generator=rng)
            else:
                labels = fill_missing(batch.labels, torch.zeros_like(batch.label_mask),
                                      NUM_CLASSES, generator=rng)
            c = one_hot_code(labels, NUM_CLASSES)
            z = reparameterize(post, generator=rng)
            inputs = generator.teacher_inputs(batch.tokens)
            logits = generator(inputs, post.mean, c)  # posterior MEAN
            rec = reconstruction_loss(logits, batch.tokens, batch.lengths)
            nll_sum += float(rec.nll_sum.sum())
            tokens += float(rec.tokens.sum())
            for b, n in enumerate(batch.lengths.tolist()):
                for t in range(n - 1):  # words only, EOS excluded
                    words += 1
                    correct += float(logits[b, t].argmax() == batch.tokens[b, t])
            sampled = reconstruction_loss(generator(inputs, z, c), batch.tokens, batch.lengths)
            kl = gaussian_kl(post.mean, post.logvar)
            kl_rows.append(kl)
            neg_elbo += float((sampled.nll_sum + kl.sum(1)).sum())  # SAMPLED z
            mi_weighted += float(mutual_information(post.mean, post.logvar, z)) * len(z)
            means.append(post.mean)
            decoded = generator.decode(post.mean, c, max_len=MAX_LEN)  # greedy from the MEAN
            ended += float(decoded.ended.sum())
            sentences += len(z)
            hyps += tok.decode(decoded.tokens)
            refs += tok.decode(batch.tokens)
    all_kl = torch.cat(kl_rows)
    variances = torch.cat(means).double().var(dim=0)
    return {"nll": nll_sum / tokens, "kl": float(all_kl.sum(1).mean()),
            "kl_per_dim": all_kl.mean(0), "elbo": -neg_elbo / sentences,
            "active_units": int((variances > 0.01).sum()), "mi": mi_weighted / sentences,
            "token_acc": correct / words, "eos_rate": ended / sentences,
            "bleu": BLEU(effective_order=True).corpus_score(hyps, [refs]).score}


@pytest.mark.parametrize("code_source", ["label", "prior"])
def test_metrics_equal_their_definitions(code_source):
    """Reconstruction metrics from the posterior mean, ELBO and MI from one seeded sample,
    c from the label where known (or always from the prior), drawn c first, then z."""
    vae = make_vae()
    batches = make_batches()
    got = evaluator_for(vae, seed=7, code_source=code_source).run(batches).metrics
    want = expected_metrics(vae, batches, seed=7, code_source=code_source)
    for name, value in want.items():
        if name == "kl_per_dim":
            torch.testing.assert_close(got[name], value)
        else:
            assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_label_source_uses_known_labels():
    """With every label known, code_source='label' never consults the prior: the mean-z metrics
    do not depend on the seed; with 'prior' they do (c changes the logits)."""
    vae = make_vae()
    batches = [b._replace(labels=b.labels.clamp(min=0), label_mask=torch.ones_like(b.label_mask))
               for b in make_batches()]
    by_label = [evaluator_for(vae, seed=s).run(batches).metrics["nll"] for s in (0, 1)]
    by_prior = [evaluator_for(vae, seed=s, code_source="prior").run(batches).metrics["nll"]
                for s in (0, 1)]
    assert by_label[0] == by_label[1]
    assert by_prior[0] != by_prior[1]


# --------------------------------------------------------------------------- determinism


def test_two_runs_identical_and_global_rng_untouched():
    vae = make_vae()
    batches = make_batches()
    evaluator = evaluator_for(vae, seed=3)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    steps_touching_rng = []

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _check(engine):
        # A list data source draws nothing, so any change here comes from the step itself.
        if not torch.equal(torch.get_rng_state(), before):
            steps_touching_rng.append(engine.state.iteration)

    first = dict(evaluator.run(batches).metrics)
    assert torch.equal(torch.get_rng_state(), before)
    second = dict(evaluator.run(batches).metrics)
    assert torch.equal(torch.get_rng_state(), before)
    assert steps_touching_rng == []
    assert first.keys() == second.keys()
    for name in first:
        if isinstance(first[name], torch.Tensor):
            assert torch.equal(first[name], second[name])
        else:
            assert first[name] == second[name], name
    # A different seed gives different noise (so the equality above is not vacuous).
    other = evaluator_for(vae, seed=4).run(batches).metrics
    assert other["elbo"] != first["elbo"]


def test_dataloader_draw_from_global_rng_is_undone():
    """A DataLoader without its own generator draws a base seed from the global stream at
    iter(); the evaluator restores the global state, so validation stays RNG-neutral."""
    batches = make_batches()
    rows = [{"ids": b.tokens[i, :b.lengths[i]].tolist(), "a0": int(b.labels[i, 0]),
             "a1": int(b.labels[i, 1])} for b in batches for i in range(len(b.tokens))]
    loader = DataLoader(rows, batch_size=4,
                        collate_fn=lambda r: collate(r, pad_id=PAD, attribute_names=("a0", "a1")))
    before = torch.get_rng_state()
    list(loader)
    assert not torch.equal(torch.get_rng_state(), before)  # the trap this guards against
    evaluator = evaluator_for(make_vae())  # make_vae seeds the global RNG: build it first
    before = torch.get_rng_state()
    metrics = evaluator.run(loader).metrics
    assert torch.equal(torch.get_rng_state(), before)
    assert set(VAE_METRICS) <= set(metrics)


def test_train_eval_modes_restored_even_on_error():
    vae = make_vae()
    vae.encoder.train()
    vae.generator.train()
    vae.generator.dropout.eval()  # a deliberately mixed state must come back as it was
    modes = {name: m.training for name, m in vae.generator.named_modules()}
    seen_during = []
    original_forward = vae.generator.forward

    def spy(*args, **kwargs):
        seen_during.append((vae.encoder.training, vae.generator.training))
        return original_forward(*args, **kwargs)

    vae.generator.forward = spy
    evaluator_for(vae).run(make_batches())
    assert seen_during and all(mode == (False, False) for mode in seen_during)
    assert vae.encoder.training
    assert {name: m.training for name, m in vae.generator.named_modules()} == modes

    bad = make_batches(sizes=(2,))
    bad[0] = bad[0]._replace(labels=torch.full_like(bad[0].labels, 9),
                             label_mask=torch.ones_like(bad[0].label_mask))
    with pytest.raises(ValueError, match="out of range"):
        evaluator_for(vae).run(bad)
    assert vae.encoder.training
    assert {name: m.training for name, m in vae.generator.named_modules()} == modes


# --------------------------------------------------------------------------- edges and wiring


def test_empty_validation_set_is_an_error():
    evaluator = evaluator_for(make_vae())
    with pytest.raises(ValueError, match="zero size"):
        evaluator.run([])
    with pytest.raises(ValueError, match="yielded no batch"):
        evaluator.run(iter([]))


def test_bad_arguments():
    vae = make_vae()
    with pytest.raises(ValueError, match="code_source"):
        evaluator_for(vae, code_source="discriminator")
    with pytest.raises(ValueError, match="code of width"):
        evaluator_for(vae, num_classes=[2])
    with pytest.raises(ValueError, match="max_len"):
        evaluator_for(vae, max_len=0)
    with pytest.raises(ValueError, match="unknown sacrebleu tokenizer"):
        evaluator_for(vae, bleu_tokenize="no-such-tokenizer")


def test_real_tokenizer_and_collate():
    """With the real sentencepiece Tokenizer and data.collate: the BLEU references are the
    original sentences, and unlabelled corpora (num_classes=[]) work."""
    texts = ["the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
             "my cat likes the dog .", "the park is big ."] * 4
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=40, hard_vocab_limit=False))
    ids = tokenizer.encode(texts[:5])
    batch = collate([{"ids": row + [tokenizer.eos_id]} for row in ids],
                    pad_id=tokenizer.pad_id, attribute_names=())
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden_dim=12, z_dim=Z_DIM)
    vae = build_vae(cfg, vocab_size=tokenizer.vocab_size, code_dim=0, pad_id=tokenizer.pad_id,
                    bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    state = create_vae_evaluator(vae.encoder, vae.generator, tokenizer=tokenizer,
                                 num_classes=[], max_len=12, device="cpu").run([batch])
    assert [ref for ref, _ in state.examples] == texts[:5]
    assert set(VAE_METRICS) <= set(state.metrics)
