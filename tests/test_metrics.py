"""textgan.metrics: every metric on hand-computed cases fed through update()/compute(), batch
accumulation, empty-state errors, and a 2-process gloo run against the single-process values."""

from __future__ import annotations

import logging
import math

import ignite.distributed as idist
import pytest
import torch
from ignite.engine import Engine
from ignite.exceptions import NotComputableError
from sacrebleu.metrics import BLEU

from textgan.losses import active_units, gaussian_kl, mutual_information
from textgan.metrics import (ELBO, ActiveUnits, CorpusBLEU, EOSRate, KLPerDim, MutualInformation,
                             ReconstructionNLL, TokenAccuracy, perplexity_of, total_kl_of)

# Ids of the hand-made vocabulary (tests only). Deliberately not 0..3 and EOS != last id.
PAD, WORD_A, WORD_B, EOS = 3, 0, 2, 1
V = 4


def logits_with_target_probs(targets: torch.Tensor, probs: list[list[float]]) -> torch.Tensor:
    """(B, T, V) logits whose softmax puts probs[b][t] on targets[b, t], the rest spread evenly."""
    batch, steps = targets.shape
    logits = torch.empty(batch, steps, V, dtype=torch.float64)
    for b in range(batch):
        for t in range(steps):
            p = probs[b][t]
            row = torch.full((V,), (1.0 - p) / (V - 1), dtype=torch.float64)
            row[targets[b, t]] = p
            logits[b, t] = row.log()
    return logits


# =========================================================================== reconstruction


def nll_case():
    """2 x 3: row 0 = A B EOS (3 tokens), row 1 = B EOS PAD (2 tokens). The padding step puts
    p = 1e-6 on its target, which would dominate the mean if it were counted."""
    targets = torch.tensor([[WORD_A, WORD_B, EOS],
                            [WORD_B, EOS, PAD]])
    lengths = torch.tensor([3, 2])
    probs = [[0.5, 0.25, 0.125], [0.5, 0.25, 1e-6]]
    return logits_with_target_probs(targets, probs), targets, lengths


def test_nll_and_ppl_hand_computed():
    logits, targets, lengths = nll_case()
    metric = ReconstructionNLL()
    ppl = perplexity_of(metric)  # before update: building a MetricsLambda resets its sources
    metric.update((logits, targets, lengths))
    expected = -(math.log(0.5) + math.log(0.25) + math.log(0.125) + math.log(0.5)
                 + math.log(0.25)) / 5
    assert metric.compute() == pytest.approx(expected, rel=1e-6)  # fp32 inside
    assert ppl.compute() == pytest.approx(math.exp(expected), rel=1e-6)


def test_nll_is_token_weighted_across_batches():
    """Two batches of 5 and 1 tokens: the result is sum/6, not the mean of the batch means."""
    logits, targets, lengths = nll_case()
    single = logits_with_target_probs(torch.tensor([[EOS]]), [[0.9]])
    metric = ReconstructionNLL()
    metric.update((logits, targets, lengths))
    metric.update((single, torch.tensor([[EOS]]), torch.tensor([1])))
    total = -(2 * math.log(0.5) + 2 * math.log(0.25) + math.log(0.125) + math.log(0.9))
    assert metric.compute() == pytest.approx(total / 6, rel=1e-6)
    metric.reset()
    with pytest.raises(NotComputableError):
        metric.compute()


def test_perplexity_overflow_is_inf():
    targets = torch.tensor([[EOS]])
    logits = torch.zeros(1, 1, V, dtype=torch.float64)
    logits[0, 0, WORD_A] = 1000.0  # target probability ~ e^-1000: NLL ~ 1000
    metric = ReconstructionNLL()
    ppl = perplexity_of(metric)
    metric.update((logits, targets, torch.tensor([1])))
    assert metric.compute() == pytest.approx(1000.0)
    assert ppl.compute() == math.inf


def one_hot_logits(predicted: list[list[int]]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), V).float() * 5.0  # (B, T, V)


def test_token_accuracy_excludes_eos_and_padding():
    targets = torch.tensor([[WORD_A, WORD_B, WORD_A, EOS],
                            [WORD_B, EOS, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    # Row 0: words right, wrong, right; the EOS predicted right (must not count).
    # Row 1: word wrong; EOS predicted wrong, padding predicted "right" (neither counts).
    predicted = [[WORD_A, WORD_A, WORD_A, EOS],
                 [WORD_A, WORD_A, PAD, PAD]]
    metric = TokenAccuracy()
    metric.update((one_hot_logits(predicted), targets, lengths))
    assert metric.compute() == pytest.approx(2 / 4)
    # A second batch accumulates counts (3/5 overall), not a mean of batch accuracies.
    metric.update((one_hot_logits([[WORD_B, EOS]]), torch.tensor([[WORD_B, EOS]]),
                   torch.tensor([2])))
    assert metric.compute() == pytest.approx(3 / 5)


def test_token_accuracy_edge_cases():
    metric = TokenAccuracy()
    with pytest.raises(NotComputableError):
        metric.compute()
    # Sentences that are only EOS have no word to score: NaN, documented.
    metric.update((one_hot_logits([[EOS]]), torch.tensor([[EOS]]), torch.tensor([1])))
    assert math.isnan(metric.compute())


def test_eos_rate():
    metric = EOSRate()
    metric.update((torch.tensor([True, False, True, True]),))
    assert metric.compute() == pytest.approx(0.75)
    metric.update((torch.tensor([False, False, False, False]),))
    assert metric.compute() == pytest.approx(3 / 8)
    metric.reset()
    with pytest.raises(NotComputableError):
        metric.compute()


# =========================================================================== latent health


def posterior_batches(sizes=(5, 3), z_dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        mean = torch.randn(n, z_dim, generator=g, dtype=torch.float64) * 1.5
        logvar = torch.randn(n, z_dim, generator=g, dtype=torch.float64) * 0.5 - 0.5
        z = mean + torch.randn(n, z_dim, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
        out.append((mean, logvar, z))
    return out


def test_kl_matches_gaussian_kl_over_uneven_batches():
    batches = posterior_batches()
    metric = KLPerDim(4)
    total = total_kl_of(metric)
    for mean, logvar, _ in batches:
        metric.update((mean, logvar))
    all_kl = torch.cat([gaussian_kl(m, lv) for m, lv, _ in batches])  # (8, Z)
    per_dim = metric.compute()
    assert per_dim.shape == (4,) and per_dim.dtype == torch.float32
    torch.testing.assert_close(per_dim, all_kl.mean(dim=0).float())
    # kl = mean over sentences of the per-sentence sum over dimensions.
    assert total.compute() == pytest.approx(float(all_kl.sum(dim=1).mean()),
                                                          rel=1e-6)


def test_kl_hand_value_and_shape_check():
    metric = KLPerDim(2)
    # mean 1, logvar 0 -> 0.5 per dim; mean 0, logvar 0 -> 0.
    metric.update((torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.zeros(2, 2)))
    torch.testing.assert_close(metric.compute(), torch.tensor([0.5, 0.0]))
    with pytest.raises(ValueError, match="mean must be"):
        metric.update((torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="z_dim"):
        KLPerDim(0)


def test_elbo_hand_computed():
    metric = ELBO(2)
    # KL of sentence 0 = 0.5 (mean 1 in one dim), sentence 1 = 0; NLL sums 3 and 5.
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    metric.update((torch.tensor([3.0, 5.0]), mean, torch.zeros(2, 2)))
    assert metric.compute() == pytest.approx(-(3.0 + 0.5 + 5.0) / 2)
    metric.update((torch.tensor([10.0]), torch.zeros(1, 2), torch.zeros(1, 2)))
    assert metric.compute() == pytest.approx(-(3.0 + 0.5 + 5.0 + 10.0) / 3)
    with pytest.raises(ValueError, match="sampled_nll"):
        metric.update((torch.tensor([1.0, 2.0]), torch.zeros(1, 2), torch.zeros(1, 2)))


def test_active_units_known_variances():
    # Per-dimension variances (N-1 denominator) of these 4 means:
    # dim 0: +-1 -> var 4/3 (active); dim 1: constant (inactive); dim 2: +-0.05 -> var 1/300
    # (inactive, below 0.01); dim 3: +-0.1 -> 0.04/3 = 0.0133 (active, just above 0.01).
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0]).unsqueeze(1)
    means = torch.cat([signs, torch.full((4, 1), 3.0), 0.05 * signs, 0.1 * signs], dim=1)
    metric = ActiveUnits(4)
    metric.update((means[:1],))  # batched: 1 + 3 rows
    metric.update((means[1:],))
    torch.testing.assert_close(metric.variances(),
                               torch.tensor([4 / 3, 0.0, 0.01 / 3, 0.04 / 3], dtype=torch.float64))
    assert metric.compute() == 2
    low = ActiveUnits(4, threshold=0.001)
    low.update((means,))
    assert low.compute() == 3


def test_active_units_matches_losses_over_batches():
    batches = posterior_batches(sizes=(7, 2, 5), z_dim=6, seed=3)
    metric = ActiveUnits(6, threshold=1.5)  # splits these means (variances 1.2 to 1.8)
    for mean, _, _ in batches:
        metric.update((mean,))
    all_means = torch.cat([m for m, _, _ in batches])
    torch.testing.assert_close(metric.variances(), all_means.var(dim=0))
    assert metric.compute() == active_units(all_means, threshold=1.5)
    assert 0 < metric.compute() < 6


def test_active_units_needs_two_sentences():
    metric = ActiveUnits(3)
    with pytest.raises(NotComputableError):
        metric.compute()
    metric.update((torch.zeros(1, 3),))
    with pytest.raises(NotComputableError, match="at least 2"):
        metric.compute()


def test_mutual_information_is_batch_size_weighted_mean():
    batches = posterior_batches(sizes=(6, 2))
    metric = MutualInformation(4)
    for batch in batches:
        metric.update(batch)
    per_batch = [float(mutual_information(*b)) for b in batches]
    assert metric.compute() == pytest.approx((6 * per_batch[0] + 2 * per_batch[1]) / 8,
                                             rel=1e-9)


# =========================================================================== BLEU


def test_bleu_identical_is_100_and_signature():
    sentences = ["the cat sat on the mat .", "a dog barked", "hi"]
    metric = CorpusBLEU()
    assert metric.signature is None
    metric.update((sentences, list(sentences)))
    assert metric.compute() == pytest.approx(100.0)
    assert metric.signature.startswith("nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|")


def test_bleu_identical_short_corpus_is_100():
    """No 4-gram anywhere: standard corpus BLEU would give 0; effective order gives 100."""
    metric = CorpusBLEU()
    metric.update((["a b", "c d e"], ["a b", "c d e"]))
    assert metric.compute() == pytest.approx(100.0)


def test_bleu_known_pair_by_hand_and_sacrebleu():
    hyp, ref = "the cat sat on the mat today", "the cat sat on a mat today"
    metric = CorpusBLEU()
    metric.update(([hyp], [ref]))
    # Clipped n-gram precisions 6/7, 4/6, 2/5, 1/4; equal lengths, so no brevity penalty.
    by_hand = 100 * (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    assert metric.compute() == pytest.approx(by_hand, rel=1e-9)
    assert metric.compute() == pytest.approx(BLEU().corpus_score([hyp], [[ref]]).score)


def test_bleu_accumulates_in_order_and_brevity_penalty():
    metric = CorpusBLEU()
    metric.update((["the cat sat"], ["the cat sat on the mat"]))
    # n-gram precisions 100 for the orders present; BP = exp(1 - 6/3).
    assert metric.compute() == pytest.approx(100 * math.exp(-1), rel=1e-9)
    metric.update((["x"], ["x"]))
    assert metric.compute() == pytest.approx(
        BLEU(effective_order=True).corpus_score(["the cat sat", "x"],
                                                [["the cat sat on the mat", "x"]]).score)


def test_bleu_no_detokenize_warning_and_errors(caplog):
    lines = [f"sentence number {i} ." for i in range(120)]  # 120 hyps ending in " ."
    metric = CorpusBLEU()
    metric.update((lines, lines))
    with caplog.at_level(logging.WARNING):
        assert metric.compute() == pytest.approx(100.0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        metric.update((["a", "b"], ["a"]))
    with pytest.raises(TypeError):
        metric.update(("a", "a"))
    metric.reset()
    with pytest.raises(NotComputableError):
        metric.compute()


def test_metrics_attach_to_an_engine_by_output_keys():
    """Through an Engine: the dict output is read by key; MetricsLambda shares its source."""
    logits, targets, lengths = nll_case()
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    outputs = [{"logits": logits, "targets": targets, "lengths": lengths, "mean": mean,
                "logvar": torch.zeros(2, 2), "ended": torch.tensor([True, False]),
                "hypotheses": ["a b", "c"], "references": ["a b", "c"]}] * 2
    engine = Engine(lambda e, batch: batch)
    nll = ReconstructionNLL()
    nll.attach(engine, "nll")
    perplexity_of(nll).attach(engine, "ppl")
    kl = KLPerDim(2)
    kl.attach(engine, "kl_per_dim")
    total_kl_of(kl).attach(engine, "kl")
    EOSRate().attach(engine, "eos_rate")
    CorpusBLEU().attach(engine, "bleu")
    metrics = engine.run(outputs).metrics
    expected_nll = -(2 * math.log(0.5) + 2 * math.log(0.25) + math.log(0.125)) / 5
    assert metrics["nll"] == pytest.approx(expected_nll)
    assert metrics["ppl"] == pytest.approx(math.exp(expected_nll))
    assert metrics["kl"] == pytest.approx(0.25)
    torch.testing.assert_close(metrics["kl_per_dim"], torch.tensor([0.25, 0.0]))
    assert metrics["eos_rate"] == pytest.approx(0.5)
    assert metrics["bleu"] == pytest.approx(100.0)
    # The source metric was updated once per batch, not once more through the lambda.
    assert int(kl._sentences) == 4


# =========================================================================== distributed


def _all_metrics(z_dim: int) -> dict:
    return {"nll": ReconstructionNLL(), "acc": TokenAccuracy(), "eos": EOSRate(),
            "kl": KLPerDim(z_dim), "elbo": ELBO(z_dim), "au": ActiveUnits(z_dim, threshold=1.0),
            "mi": MutualInformation(z_dim), "bleu": CorpusBLEU()}


def _feed(metrics: dict, shards: list[dict]) -> dict:
    for shard in shards:
        metrics["nll"].update((shard["logits"], shard["targets"], shard["lengths"]))
        metrics["acc"].update((shard["logits"], shard["targets"], shard["lengths"]))
        metrics["eos"].update((shard["ended"],))
        metrics["kl"].update((shard["mean"], shard["logvar"]))
        metrics["elbo"].update((shard["nll_sum"], shard["mean"], shard["logvar"]))
        metrics["au"].update((shard["mean"],))
        metrics["mi"].update((shard["mean"], shard["logvar"], shard["z"]))
        metrics["bleu"].update((shard["hyps"], shard["refs"]))
    return {name: m.compute() for name, m in metrics.items()}


def _shards(count: int) -> list[dict]:
    g = torch.Generator().manual_seed(11)
    shards = []
    for index in range(count):
        batch, steps = 3, 4
        targets = torch.randint(0, V, (batch, steps), generator=g)
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        (mean, logvar, z), = posterior_batches(sizes=(batch,), seed=index)
        shards.append({
            "logits": torch.randn(batch, steps, V, generator=g, dtype=torch.float64),
            "targets": targets, "lengths": lengths,
            "ended": torch.rand(batch, generator=g) > 0.5,
            "mean": mean, "logvar": logvar, "z": z,
            "nll_sum": torch.rand(batch, generator=g, dtype=torch.float64) * 10,
            "hyps": [f"the cat {index} sat {j}" for j in range(batch)],
            "refs": [f"the cat {index} sat down {j}" for j in range(batch)],
        })
    return shards


def _distributed_worker(local_rank: int, result_dir: str) -> None:
    shards = _shards(4)
    mine = shards[idist.get_rank()::idist.get_world_size()]
    result = _feed(_all_metrics(4), mine)
    if idist.get_rank() == 0:
        torch.save(result, f"{result_dir}/result.pt")


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    expected = _feed(_all_metrics(4), _shards(4))
    init = tmp_path / "rendezvous"  # file:// rendezvous: no port to collide on
    with idist.Parallel(backend="gloo", nproc_per_node=2, init_method=f"file://{init}") as p:
        p.run(_distributed_worker, str(tmp_path))
    got = torch.load(tmp_path / "result.pt", weights_only=True)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(got[name], value)
        elif name == "bleu":  # sentence order differs (rank-major), BLEU stats do not
            assert got[name] == pytest.approx(value, rel=1e-9)
        else:
            assert got[name] == pytest.approx(value, rel=1e-9), name
