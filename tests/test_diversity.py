"""textgan.evaluation.diversity: self-BLEU and set BLEU against sacrebleu itself, distinct-n and
novelty by hand.

The self-BLEU and set-BLEU tests compare with the slow, obvious computation through sacrebleu's
stock API (leave-one-out, or every hypothesis against the whole reference set), with ==: the
shortcut must give the same float, not a close one. The random
sentences come from a tiny vocabulary so that n-grams repeat within and across sentences (the
max / second-max bookkeeping is exercised), and they include duplicates, empty strings, mixed
case, punctuation the 13a tokenizer splits off, and trailing whitespace.
"""

import random

import pytest
from sacrebleu.metrics import BLEU

from textgan.evaluation import (BLEUResult, SelfBLEU, distinct, distinct_n, novelty,
                                self_bleu, set_bleu)

VOCAB = ["a", "b", "c", "the", "The", "cat", "sat,", "x."]


def random_sentences(seed: int, low: int = 30, high: int = 60) -> list[str]:
    rng = random.Random(seed)
    n = rng.randint(low, high)
    sents = []
    while len(sents) < n:
        roll = rng.random()
        if roll < 0.08:
            sents.append("")
        elif roll < 0.2 and sents:
            sents.append(rng.choice(sents))  # an exact duplicate of an earlier sentence
        else:
            words = rng.choices(VOCAB, k=rng.randint(1, 12))
            sents.append(" ".join(words) + (" " if rng.random() < 0.1 else ""))
    rng.shuffle(sents)
    return sents


def sacrebleu_sentence_avg(sents, order, **options):
    """Mean over i of sentence BLEU of sents[i] against all the other sentences."""
    bleu = BLEU(effective_order=True, max_ngram_order=order, **options)
    return sum(bleu.sentence_score(s, sents[:i] + sents[i + 1:]).score
               for i, s in enumerate(sents)) / len(sents)


def sacrebleu_corpus(sents, order, **options):
    """Corpus BLEU with N-1 reference streams: refs[k][i] is the k-th sentence after i."""
    n = len(sents)
    refs = [[sents[(i + 1 + k) % n] for i in range(n)] for k in range(n - 1)]
    return BLEU(max_ngram_order=order, **options).corpus_score(sents, refs).score


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_self_bleu_equals_sacrebleu_leave_one_out(seed, order, sentence_avg):
    sents = random_sentences(seed)
    reference = sacrebleu_sentence_avg if sentence_avg else sacrebleu_corpus
    result = self_bleu(sents, order, sentence_avg=sentence_avg)
    assert result.score == reference(sents, order)
    assert (result.n, result.max_ngram_order) == (len(sents), order)


@pytest.mark.parametrize("options", [
    {"smooth_method": "none"},
    {"smooth_method": "floor"},
    {"smooth_method": "floor", "smooth_value": 0.3},
    {"smooth_method": "add-k"},
    {"smooth_method": "add-k", "smooth_value": 2},
    {"tokenize": "none", "lowercase": True},
    {"tokenize": "char"},
])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_self_bleu_equals_sacrebleu_with_other_options(options, sentence_avg):
    sents = random_sentences(10)
    reference = sacrebleu_sentence_avg if sentence_avg else sacrebleu_corpus
    assert self_bleu(sents, 3, sentence_avg=sentence_avg, **options).score \
        == reference(sents, 3, **options)


@pytest.mark.parametrize("sents", [
    ["", ""],
    ["a b", ""],
    ["", "", "", "a"],
    ["a b c", "a b c"],
    ["a a a a", "a a", "a a a a"],  # the maximum count of ("a",) is tied between 0 and 2
])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_self_bleu_small_edge_cases(sents, sentence_avg):
    reference = sacrebleu_sentence_avg if sentence_avg else sacrebleu_corpus
    assert self_bleu(sents, 4, sentence_avg=sentence_avg).score == reference(sents, 4)


def test_self_bleu_of_identical_sentences_is_100():
    assert self_bleu(["the cat sat on the mat"] * 3).score == pytest.approx(100.0)


def test_self_bleu_result_and_signature():
    result = self_bleu(["a b c", "a b d", "c d e"], 2, sentence_avg=False)
    assert isinstance(result, SelfBLEU)
    for part in ("self-bleu:leave-one-out", "avg:corpus", "order:2", "n:3", "nrefs:2",
                 "eff:no", "tok:13a", "smooth:exp"):
        assert part in result.signature
    assert "avg:sentence" in self_bleu(["a", "b"]).signature
    assert "eff:yes" in self_bleu(["a", "b"]).signature


@pytest.mark.parametrize("sents", [[], ["only one"]])
def test_self_bleu_needs_two_sentences(sents):
    with pytest.raises(ValueError, match="at least 2 sentences"):
        self_bleu(sents)


def test_self_bleu_rejects_bad_arguments():
    with pytest.raises(TypeError, match="single string"):
        self_bleu("a b c")
    with pytest.raises(TypeError, match="sentence 1"):
        self_bleu(["a", None])
    with pytest.raises(ValueError, match="max_ngram_order"):
        self_bleu(["a", "b"], 0)
    with pytest.raises(ValueError, match="smooth_method"):
        self_bleu(["a", "b"], smooth_method="laplace")


def random_hypotheses_and_references(seed: int) -> tuple[list[str], list[str]]:
    """20-50 hypotheses and 20-50 references; some hypotheses copy a reference verbatim."""
    rng = random.Random(1000 + seed)
    refs = random_sentences(2 * seed + 100, 20, 50)
    hyps = random_sentences(2 * seed + 101, 20, 50)
    for i in rng.sample(range(len(hyps)), 5):
        hyps[i] = rng.choice(refs)
    return hyps, refs


def sacrebleu_set_sentence_avg(hyps, refs, order, **options):
    """Mean over the hypotheses of sentence BLEU against the whole reference set."""
    bleu = BLEU(effective_order=True, max_ngram_order=order, **options)
    return sum(bleu.sentence_score(h, refs).score for h in hyps) / len(hyps)


def sacrebleu_set_corpus(hyps, refs, order, **options):
    """Corpus BLEU with M reference streams, stream k repeating reference k for every hyp."""
    streams = [[r] * len(hyps) for r in refs]
    return BLEU(max_ngram_order=order, **options).corpus_score(hyps, streams).score


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_set_bleu_equals_sacrebleu(seed, order, sentence_avg):
    hyps, refs = random_hypotheses_and_references(seed)
    assert "" in hyps + refs and len(set(refs)) < len(refs)  # the awkward cases are present
    reference = sacrebleu_set_sentence_avg if sentence_avg else sacrebleu_set_corpus
    result = set_bleu(hyps, refs, order, sentence_avg=sentence_avg)
    assert result.score == reference(hyps, refs, order)
    assert (result.n, result.max_ngram_order) == (len(hyps), order)


@pytest.mark.parametrize("options", [
    {"smooth_method": "none"},
    {"smooth_method": "floor", "smooth_value": 0.3},
    {"smooth_method": "add-k", "smooth_value": 2},
    {"tokenize": "none", "lowercase": True},
    {"tokenize": "char"},
])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_set_bleu_equals_sacrebleu_with_other_options(options, sentence_avg):
    hyps, refs = random_hypotheses_and_references(10)
    reference = sacrebleu_set_sentence_avg if sentence_avg else sacrebleu_set_corpus
    assert set_bleu(hyps, refs, 3, sentence_avg=sentence_avg, **options).score \
        == reference(hyps, refs, 3, **options)


@pytest.mark.parametrize("hyps, refs", [
    ([""], [""]),
    (["a b"], [""]),
    ([""], ["a b c"]),
    (["a b c"], ["a b", "a b c d"]),           # closest length tied: the shorter reference
    (["a b c", "a"], ["a b c d e", "a b"]),    # lengths only on one side of the hypothesis
    (["a a a a", "a a b"], ["a a", "a a a", "a a"]),
    (["the cat sat"], ["the cat sat", "the cat sat"]),
])
@pytest.mark.parametrize("sentence_avg", [True, False])
def test_set_bleu_small_edge_cases(hyps, refs, sentence_avg):
    reference = sacrebleu_set_sentence_avg if sentence_avg else sacrebleu_set_corpus
    assert set_bleu(hyps, refs, 4, sentence_avg=sentence_avg).score \
        == reference(hyps, refs, 4)


def test_set_bleu_against_itself_is_100():
    sents = ["the cat sat on the mat", "a dog ran in the park today"]
    assert set_bleu(sents, sents).score == pytest.approx(100.0)
    assert set_bleu(sents, sents, sentence_avg=True).score == pytest.approx(100.0)


def test_set_bleu_result_and_signature():
    result = set_bleu(["a b c", "a b d"], ["c d e", "a b", "x"], 2)
    assert isinstance(result, BLEUResult) and SelfBLEU is BLEUResult
    assert (result.n, result.max_ngram_order) == (2, 2)
    assert result.signature.startswith("set-bleu:")
    for part in ("avg:corpus", "order:2", "n:2", "nrefs:3", "eff:no", "tok:13a", "smooth:exp"):
        assert part in result.signature
    sentence = set_bleu(["a"], ["b", "a"], sentence_avg=True).signature
    assert "avg:sentence" in sentence and "eff:yes" in sentence and "nrefs:2" in sentence


def test_set_bleu_rejects_empty_sets_and_bad_arguments():
    with pytest.raises(ValueError, match="hypothesis"):
        set_bleu([], ["a b"])
    with pytest.raises(ValueError, match="reference"):
        set_bleu(["a b"], [])
    with pytest.raises(ValueError, match="hypothesis"):
        set_bleu(iter([]), iter([]))
    with pytest.raises(TypeError, match="single string"):
        set_bleu("a b c", ["a"])
    with pytest.raises(TypeError, match="single string"):
        set_bleu(["a"], "a b c")
    with pytest.raises(TypeError, match="sentence 1"):
        set_bleu(["a"], ["b", None])
    with pytest.raises(ValueError, match="max_ngram_order"):
        set_bleu(["a"], ["b"], 0)
    with pytest.raises(ValueError, match="smooth_method"):
        set_bleu(["a"], ["b"], smooth_method="laplace")


def test_distinct_n_by_hand():
    sents = ["a b a", "a b"]
    # unigrams a b a a b: 2 distinct of 5; bigrams (a b) (b a) (a b): 2 of 3; one trigram.
    assert distinct_n(sents, 1) == 2 / 5
    assert distinct_n(sents, 2) == 2 / 3
    assert distinct_n(sents, 3) == 1.0
    assert distinct_n(sents, 4) == 0.0  # no 4-grams at all
    # the cat sat / the cat ran: 4 distinct words of 6; bigrams (the cat) twice,
    # (cat sat), (cat ran): 3 of 4; trigrams 2 of 2.
    assert distinct(["the cat sat", "the cat ran"]) == {
        "distinct_1": 4 / 6, "distinct_2": 3 / 4, "distinct_3": 1.0}


def test_distinct_n_tokens_and_boundaries():
    # Any whitespace separates tokens: a b b -> 2 of 3 words, bigrams (a b) (b b) -> 2 of 2.
    assert distinct(["a  b\tb "], orders=(1, 2)) == {"distinct_1": 2 / 3, "distinct_2": 1.0}
    # An n-gram never spans two sentences, so one-word sentences have no bigrams.
    assert distinct_n(["a", "b"], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["", "  "], 1) == 0.0
    # A generator is read once even for several orders.
    assert distinct((s for s in ["a b a", "a b"]), orders=(1, 2)) == {
        "distinct_1": 2 / 5, "distinct_2": 2 / 3}
    with pytest.raises(ValueError, match="positive integer"):
        distinct_n(["a b"], 0)


def test_novelty_by_hand():
    samples = ["the cat sat", " a  dog ran ", "new one", "the cat sat", "The cat sat"]
    training = ["the cat sat", "a dog ran", "something else"]
    # Copies: both "the cat sat" and the respaced "a dog ran"; novel: "new one" and the
    # differently cased "The cat sat" -> 2 of 5.
    assert novelty(samples, training) == 2 / 5
    assert novelty(["x"], []) == 1.0
    with pytest.raises(ValueError, match="at least one sample"):
        novelty([], training)
