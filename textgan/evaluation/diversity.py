"""Diversity and overlap of a set of generated sentences: self-BLEU, set BLEU, distinct-n, novelty.

    self_bleu(samples, 4)            # BLEUResult(score=.., n=.., max_ngram_order=4, signature=..)
    set_bleu(samples, test_sents, 4) # each sample against the whole test set (Texygen's BLEU)
    distinct(samples)                # {"distinct_1": .., "distinct_2": .., "distinct_3": ..}
    novelty(samples, train_texts)    # share of samples that are not copies of training sentences

A generator can score well on quality metrics by repeating a few safe sentences or by copying
its training data; self-BLEU, distinct-n and novelty expose that. Self-BLEU is high when the
samples resemble each other, distinct-n is low when they reuse the same n-grams, novelty is low
when they are memorised. Self-BLEU grows with the number of samples (more references to match),
and set BLEU with the number of references, so compare scores only at the same N (and M) and
sample seed; the signature records N, the n-gram order, the averaging mode and sacrebleu's own
signature (reference count, tokenizer, casing, smoothing, version).

Self-BLEU is leave-one-out: each sentence is the hypothesis once, with all the other N-1
sentences as its references. Set BLEU (`set_bleu`, the quality half of Texygen's pair) scores
each of N hypotheses against all M sentences of a reference set. sacrebleu has no function for
either at scale: feeding it N-1 (or M) reference streams costs O(N^2) (or O(N*M)) time and
memory (about 70 s and 7 GB at N=1000). Here both are computed in O(N + M) from the same
sufficient statistics sacrebleu uses (see `self_bleu` and `set_bleu`), and they equal
sacrebleu's own results exactly; tests/test_diversity.py checks that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sacrebleu.metrics import BLEU
from sacrebleu.metrics.helpers import extract_all_word_ngrams

__all__ = ["BLEUResult", "SelfBLEU", "distinct", "distinct_n", "novelty", "self_bleu", "set_bleu"]


class BLEUResult(NamedTuple):
    """A self-BLEU or set-BLEU result: the score (0-100, like sacrebleu) and what it was on."""

    score: float
    n: int                # number of hypotheses scored (self-BLEU: each against the other n - 1)
    max_ngram_order: int  # the "4" in BLEU-4
    signature: str        # settings: kind, averaging, order, N, then sacrebleu's own (nrefs, ..)


SelfBLEU = BLEUResult  # the original name, kept for existing callers


# One sentence's BLEU sufficient statistics, as sacrebleu keeps them:
# (hypothesis length, closest reference length, matched n-grams per order, n-grams per order).
_Stats = tuple[int, int, list[int], list[int]]
_Gram = tuple[str, ...]


def self_bleu(sentences: Iterable[str], max_ngram_order: int = 4, *, tokenize: str = "13a",
              lowercase: bool = False, smooth_method: str = "exp",
              smooth_value: float | None = None, sentence_avg: bool = True) -> BLEUResult:
    """Leave-one-out self-BLEU of N sentences: each one scored against the other N-1.

    sentence_avg=True (the Texygen convention) averages sentence BLEU over the N sentences, i.e.
    `sum(BLEU(effective_order=True, ...).sentence_score(s_i, others_i).score for i) / N`, summed
    in input order. sentence_avg=False is corpus BLEU with N-1 reference streams, i.e.
    `BLEU(...).corpus_score(sents, refs).score` where refs[k][i] is the k-th sentence other than
    sents[i]. `tokenize`, `lowercase`, `smooth_method` and `smooth_value` are sacrebleu's BLEU
    options; `effective_order` follows the mode, as sacrebleu recommends (on for sentence level,
    off for corpus level). Empty and duplicate sentences are allowed and count like any other
    (a duplicate finds itself among its references). Raises ValueError for fewer than 2
    sentences, since a lone sentence has no references.

    How it avoids sacrebleu's O(N^2): against several references sacrebleu clips the count of
    each hypothesis n-gram g at its largest count in any one reference. Leaving out sentence i,
    that largest count is the corpus-wide maximum of g, unless sentence i is the one that holds
    the maximum, in which case it is the second largest count (equal to the maximum if another
    sentence ties it). So one pass keeps (max, argmax, second max) per n-gram. The reference
    length is sacrebleu's closest one (ties go to the shorter), looked up in the sorted
    multiset of the other sentences' lengths. The statistics are then scored with sacrebleu's
    public `BLEU.compute_bleu`, so the floating-point steps are sacrebleu's own.
    """
    sents = _as_sentences(sentences)
    n = len(sents)
    if n < 2:
        raise ValueError(f"self-BLEU needs at least 2 sentences (each is scored against the "
                         f"others), got {n}")
    bleu = _make_bleu(max_ngram_order, tokenize, lowercase, smooth_method, smooth_value,
                      sentence_avg)
    grams, lengths = _extract_ngrams(bleu, sents)

    top1, owner, top2 = _top_two_counts(grams)
    # Per sentence, the n-grams it holds the maximum of: their clip is the second largest count.
    runner_up: list[dict[_Gram, int]] = [{} for _ in sents]
    for gram, i in owner.items():
        runner_up[i][gram] = top2.get(gram, 0)
    closest = _closest_other_lengths(lengths)
    stats = [_segment_stats(counts, lengths[i], closest[lengths[i]], max_ngram_order,
                            top1, runner_up[i])
             for i, counts in enumerate(grams)]
    return _result(bleu, stats, "self-bleu:leave-one-out", sents[0], sents[1], n - 1)


def set_bleu(hypotheses: Iterable[str], references: Iterable[str], max_ngram_order: int = 4,
             *, tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp",
             smooth_value: float | None = None, sentence_avg: bool = False) -> BLEUResult:
    """BLEU of each of N hypotheses against the whole set of M reference sentences.

    This is the "BLEU of generated samples against the test set" quality metric (Texygen's
    BLEU): every reference sentence is a reference of every hypothesis. sentence_avg=True
    averages sentence BLEU over the hypotheses, i.e.
    `sum(BLEU(effective_order=True, ...).sentence_score(h, references).score for h) / N`,
    summed in input order. sentence_avg=False (the default) is corpus BLEU with M reference
    streams, each repeating one reference sentence, i.e.
    `BLEU(...).corpus_score(hypotheses, [[r] * N for r in references]).score`. The options and
    `effective_order` are as for `self_bleu`. Empty and duplicate sentences are allowed on
    both sides (an empty reference has length 0 and no n-grams, as in sacrebleu). Raises
    ValueError when there are no hypotheses or no references.

    O(N + M) rather than sacrebleu's O(N * M): the clip count of an n-gram is its largest count
    in any one reference, the same for every hypothesis, so it is computed once over the
    reference set; the closest reference length (ties to the shorter) is looked up in the
    sorted distinct reference lengths. Scoring goes through `BLEU.compute_bleu` as in
    `self_bleu`.
    """
    hyps = _as_sentences(hypotheses)
    refs = _as_sentences(references)
    if not hyps:
        raise ValueError("set BLEU needs at least one hypothesis, got none")
    if not refs:
        raise ValueError("set BLEU needs at least one reference sentence, got none")
    bleu = _make_bleu(max_ngram_order, tokenize, lowercase, smooth_method, smooth_value,
                      sentence_avg)
    hyp_grams, hyp_lengths = _extract_ngrams(bleu, hyps)
    ref_grams, ref_lengths = _extract_ngrams(bleu, refs)

    clip = _top_two_counts(ref_grams)[0]
    distinct_ref_lengths = sorted(set(ref_lengths))
    closest = {length: _closest_length(length, distinct_ref_lengths)
               for length in set(hyp_lengths)}
    stats = [_segment_stats(counts, length, closest[length], max_ngram_order, clip)
             for counts, length in zip(hyp_grams, hyp_lengths)]
    return _result(bleu, stats, "set-bleu:all-references", hyps[0], refs[0], len(refs))


def _make_bleu(max_ngram_order: int, tokenize: str, lowercase: bool, smooth_method: str,
               smooth_value: float | None, sentence_avg: bool) -> BLEU:
    """The sacrebleu scorer for these options, after checking the ones it only asserts."""
    if isinstance(max_ngram_order, bool) or not isinstance(max_ngram_order, int) \
            or max_ngram_order < 1:
        raise ValueError(f"max_ngram_order must be a positive integer, got {max_ngram_order!r}")
    if smooth_method not in BLEU.SMOOTH_DEFAULTS:
        # sacrebleu only asserts this, and asserts vanish under python -O.
        raise ValueError(f"unknown smooth_method {smooth_method!r}; sacrebleu knows "
                         f"{sorted(BLEU.SMOOTH_DEFAULTS)}")
    return BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method,
                smooth_value=smooth_value, max_ngram_order=max_ngram_order,
                effective_order=sentence_avg)


def _extract_ngrams(bleu: BLEU, sents: list[str]) -> tuple[list[Counter], list[int]]:
    """Each sentence's n-gram counts (orders 1..max) and token count, as sacrebleu gets them.

    The same preprocessing as sacrebleu's BLEU._preprocess_segment (private, hence repeated):
    lowercase if asked, strip trailing whitespace, tokenize, then count n-grams. sacrebleu
    treats hypotheses and references alike here.
    """
    grams: list[Counter] = []
    lengths: list[int] = []
    for sent in sents:
        counts, length = extract_all_word_ngrams(
            bleu.tokenizer((sent.lower() if bleu.lowercase else sent).rstrip()),
            1, bleu.max_ngram_order)
        grams.append(counts)
        lengths.append(length)
    return grams, lengths


def _segment_stats(counts: Counter, length: int, ref_len: int, max_ngram_order: int,
                   clip: Mapping[_Gram, int],
                   clip_override: Mapping[_Gram, int] | None = None) -> _Stats:
    """One hypothesis's statistics, each n-gram count clipped at its largest reference count.

    That largest count is `clip_override[gram]` where given (self-BLEU's second maximum), else
    `clip[gram]`, else 0 (no reference has the n-gram), as in sacrebleu's
    BLEU._compute_segment_statistics.
    """
    correct = [0] * max_ngram_order
    total = [0] * max_ngram_order
    for gram, count in counts.items():
        order = len(gram) - 1
        total[order] += count
        if clip_override and gram in clip_override:
            limit = clip_override[gram]
        else:
            limit = clip.get(gram, 0)
        correct[order] += min(count, limit)
    return length, ref_len, correct, total


def _result(bleu: BLEU, stats: list[_Stats], kind: str, hypothesis: str, reference: str,
            nrefs: int) -> BLEUResult:
    """Score the per-hypothesis statistics the way sacrebleu would, and sign the result.

    Sentence averaging (bleu.effective_order, as set by `_make_bleu`) scores each hypothesis
    and takes the mean in input order; corpus BLEU sums the integer statistics first (exact),
    then scores once. `hypothesis`, `reference` and `nrefs` only serve the signature.
    """
    order = bleu.max_ngram_order

    def score(sys_len: int, ref_len: int, correct: list[int], total: list[int]) -> float:
        # compute_bleu adds smooth_value into the lists in place for add-k: pass copies.
        return BLEU.compute_bleu(list(correct), list(total), sys_len, ref_len,
                                 smooth_method=bleu.smooth_method,
                                 smooth_value=bleu.smooth_value,
                                 effective_order=bleu.effective_order,
                                 max_ngram_order=order).score

    sentence_avg = bleu.effective_order
    if sentence_avg:
        value = sum(score(*s) for s in stats) / len(stats)
    else:
        value = score(sum(s[0] for s in stats), sum(s[1] for s in stats),
                      [sum(s[2][k] for s in stats) for k in range(order)],
                      [sum(s[3][k] for s in stats) for k in range(order)])

    # sacrebleu builds its signature only after scoring something, which is when it learns the
    # reference count. Scoring a hypothesis against all its references would cost as much as
    # all of the above, so score one pair and then set the count really used.
    bleu.corpus_score([hypothesis], [[reference]])
    sacre_signature = bleu.get_signature()
    sacre_signature.update("nrefs", nrefs)
    # sacrebleu's signature leaves out the n-gram order and the kind of reference set.
    signature = (f"{kind}|avg:{'sentence' if sentence_avg else 'corpus'}|"
                 f"order:{order}|n:{len(stats)}|{sacre_signature.format()}")
    return BLEUResult(score=value, n=len(stats), max_ngram_order=order, signature=signature)


def _top_two_counts(grams: list[Counter]) -> tuple[dict, dict, dict]:
    """Per n-gram: its largest count in one sentence, that sentence's index, the second largest.

    The second largest is over the other sentences, so a tie for the maximum makes it equal to
    the maximum; it is absent (read as 0) where only one sentence has the n-gram.
    """
    top1: dict[_Gram, int] = {}
    owner: dict[_Gram, int] = {}
    top2: dict[_Gram, int] = {}
    for i, counts in enumerate(grams):
        for gram, count in counts.items():
            best = top1.get(gram, 0)
            if count > best:
                top2[gram], top1[gram], owner[gram] = best, count, i
            elif count > top2.get(gram, 0):
                top2[gram] = count
    return top1, owner, top2


def _closest_length(length: int, sorted_lengths: Sequence[int]) -> int:
    """sacrebleu's closest reference length: the nearest of `sorted_lengths`, the shorter on a tie.

    `sorted_lengths` is ascending and not empty; only the neighbours of `length` can win.
    """
    pos = bisect_left(sorted_lengths, length)
    candidates = sorted_lengths[max(pos - 1, 0):pos + 1]
    # Sorting key (distance, length) puts the shorter first on a tie, as sacrebleu does.
    return min(candidates, key=lambda ref: (abs(length - ref), ref))


def _closest_other_lengths(lengths: list[int]) -> dict[int, int]:
    """For each sentence length L: sacrebleu's closest reference length once one L is left out.

    Leaving out the hypothesis removes one copy of L from the multiset of lengths, so the
    answer depends on L alone: L itself if another sentence has it, else the closest of the
    other distinct lengths (only the neighbours of L in sorted order matter).
    """
    multiplicity = Counter(lengths)
    distinct_lengths = sorted(multiplicity)
    closest = {}
    for pos, length in enumerate(distinct_lengths):
        if multiplicity[length] > 1:
            closest[length] = length
        else:
            neighbours = distinct_lengths[max(pos - 1, 0):pos] + distinct_lengths[pos + 1:pos + 2]
            closest[length] = _closest_length(length, neighbours)
    return closest


def distinct_n(sentences: Iterable[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct n-grams / all n-grams, pooled over the sentences.

    Tokens are whitespace-separated words (the sentences are expected to be detokenised model
    output, as for BLEU). An n-gram never spans two sentences. Returns 0.0 when the sentences
    hold no n-gram at all (e.g. all shorter than n), rather than dividing by zero.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for sent in _as_sentences(sentences):
        tokens = sent.split()
        seen.update(zip(*(tokens[k:] for k in range(n))))
        total += max(len(tokens) - n + 1, 0)
    return len(seen) / total if total else 0.0


def distinct(sentences: Iterable[str], orders: Iterable[int] = (1, 2, 3)) -> dict[str, float]:
    """Distinct-n for several n at once: {"distinct_1": .., "distinct_2": .., ...}."""
    sents = _as_sentences(sentences)  # an iterator could be read only once
    return {f"distinct_{n}": distinct_n(sents, n) for n in orders}


def novelty(samples: Iterable[str], training_sentences: Iterable[str]) -> float:
    """Fraction of samples that do not occur verbatim in the training sentences.

    Comparison is exact (case-sensitive) after collapsing runs of whitespace and trimming the
    ends, so spacing differences do not count as novelty. Each sample counts once per
    occurrence: a repeated copied sample lowers novelty each time. Raises ValueError for no
    samples, where the fraction is undefined.
    """
    sents = _as_sentences(samples)
    if not sents:
        raise ValueError("novelty needs at least one sample, got none")
    seen = {_normalise(sent) for sent in _as_sentences(training_sentences)}
    return sum(_normalise(sent) not in seen for sent in sents) / len(sents)


def _normalise(sentence: str) -> str:
    return " ".join(sentence.split())


def _as_sentences(sentences: Iterable[str]) -> list[str]:
    """The sentences as a list of str; a lone string is refused (it would iterate characters)."""
    if isinstance(sentences, str):
        raise TypeError("expected a sequence of sentences, got a single string")
    sents = list(sentences)
    for i, sent in enumerate(sents):
        if not isinstance(sent, str):
            raise TypeError(f"sentence {i} is a {type(sent).__name__}, not a str: {sent!r}")
    return sents
