"""The oracle is exact: right on generated sentences, and it rejects everything else.

Ground truth for "everything else" does not come from the fast oracle's own machinery (the
compiled automaton) but from two independent recognisers written here:
- `reference_readings`: a slow backtracking matcher that reads the grammar's raw pattern
  strings, macros and word lists directly and tries every pattern under every style combination;
- `enumerate_language`: for a tiny grammar, the whole language as a set of sentences.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from collections.abc import Iterator

import pytest

from textgan.corpora.grammar import (
    ATTRIBUTES, CONTENT_SLOTS, GRAMMAR, Grammar, by_sentiment, by_sentiment_and_tense,
    by_tense, content, neutral)
from textgan.corpora.language import GrammarError, compile_grammar, default_language
from textgan.corpora.oracle import Oracle, Parse, parse, parse_many
from textgan.corpora.synthetic import generate

# --------------------------------------------------------------------------- reference recogniser

Reading = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]  # (attributes, content)


class Reference:
    """Backtracking matcher over the raw grammar data; returns every reading of a sentence."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.combos = [dict(zip(grammar.attributes, values))
                       for values in itertools.product(*grammar.attributes.values())]

    def readings(self, sentence: str) -> set[Reading]:
        words = sentence.split()
        found: set[Reading] = set()
        for pattern in self.grammar.patterns:
            for combo in self.combos:
                for end, filled in self._match(pattern.split(), words, 0, combo, {}):
                    if end == len(words):
                        full = {slot: filled.get(slot, "") for slot in self.grammar.slots}
                        found.add((tuple(combo.items()), tuple(full.items())))
        return found

    def _match(self, symbols: list[str], words: list[str], pos: int, combo: dict[str, str],
               filled: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
        if not symbols:
            yield pos, filled
            return
        head = symbols[0]
        if head.startswith("["):  # optional group up to the token that closes it
            close = next(i for i, s in enumerate(symbols) if s.endswith("]"))
            group = [s.strip("[]") for s in symbols[:close + 1]]
            rest = symbols[close + 1:]
            yield from self._match(rest, words, pos, combo, filled)
            yield from self._match(group + rest, words, pos, combo, filled)
        elif head.isupper():
            for alternative in self.grammar.macros[head]:
                yield from self._match(alternative.split() + symbols[1:], words, pos, combo,
                                       filled)
        elif head.startswith("<"):
            category = self.grammar.categories[head[1:-1]]
            key = tuple(combo[a] for a in category.depends)
            for phrase in category.phrases[key]:
                tokens = phrase.split()
                if words[pos:pos + len(tokens)] != tokens:
                    continue
                if category.slot is None:
                    yield from self._match(symbols[1:], words, pos + len(tokens), combo, filled)
                elif category.slot not in filled:
                    yield from self._match(symbols[1:], words, pos + len(tokens), combo,
                                           {**filled, category.slot: phrase})
        elif pos < len(words) and words[pos] == head:
            yield from self._match(symbols[1:], words, pos + 1, combo, filled)


def enumerate_language(grammar: Grammar) -> dict[str, Reading]:
    """Every sentence of a (small) grammar with its reading, by brute-force expansion."""
    reference = Reference(grammar)
    sentences: dict[str, Reading] = {}

    def expand(symbols: list[str], combo: dict[str, str], words: tuple[str, ...],
               filled: dict[str, str]) -> None:
        if not symbols:
            text = " ".join(words)
            full = tuple((slot, filled.get(slot, "")) for slot in grammar.slots)
            reading = (tuple(combo.items()), full)
            assert sentences.setdefault(text, reading) == reading, f"ambiguous: {text}"
            return
        head, rest = symbols[0], symbols[1:]
        if head.startswith("["):
            close = next(i for i, s in enumerate(symbols) if s.endswith("]"))
            expand(symbols[close + 1:], combo, words, filled)
            expand([s.strip("[]") for s in symbols[:close + 1]] + symbols[close + 1:], combo,
                   words, filled)
        elif head.isupper():
            for alternative in grammar.macros[head]:
                expand(alternative.split() + rest, combo, words, filled)
        elif head.startswith("<"):
            category = grammar.categories[head[1:-1]]
            for phrase in category.phrases[tuple(combo[a] for a in category.depends)]:
                slot = {category.slot: phrase} if category.slot else {}
                expand(rest, combo, words + tuple(phrase.split()), {**filled, **slot})
        else:
            expand(rest, combo, words + (head,), filled)

    for pattern in grammar.patterns:
        for combo in reference.combos:
            expand(pattern.split(), combo, (), {})
    return sentences


def as_reading(result: Parse) -> Reading:
    assert result.attributes is not None and result.content is not None
    return tuple(result.attributes.items()), tuple(result.content.items())


def assert_agrees(oracle_result: Parse, readings: set[Reading], sentence: str) -> None:
    assert len(readings) <= 1, f"grammar is ambiguous on {sentence!r}: {readings}"
    if readings:
        assert oracle_result.grammatical, f"oracle rejects a sentence of the language: {sentence!r}"
        assert as_reading(oracle_result) == next(iter(readings)), sentence
    else:
        assert oracle_result == Parse(False, None, None), f"oracle accepts {sentence!r}"


# --------------------------------------------------------------------------- perturbations


def _flip_table(grammar: Grammar) -> dict[str, list[tuple[str, ...]]]:
    """word -> the one-word phrases of its class whose key differs in exactly one attribute."""
    table: dict[str, list[tuple[str, ...]]] = {}
    for category in grammar.categories.values():
        for key, phrases in category.phrases.items():
            for i in range(len(category.depends)):
                values = grammar.attributes[category.depends[i]]
                other = key[:i] + (values[1 - values.index(key[i])],) + key[i + 1:]
                singles = tuple(p for p in category.phrases[other] if " " not in p)
                for phrase in phrases:
                    if " " not in phrase and singles:
                        table.setdefault(phrase, []).append(singles)
    return table


def perturb(words: list[str], kind: str, rng: random.Random, vocabulary: list[str],
            flips: dict[str, list[tuple[str, ...]]]) -> list[str] | None:
    words = list(words)
    i = rng.randrange(len(words))
    if kind == "drop":
        del words[i]
    elif kind == "duplicate":
        words.insert(i, words[i])
    elif kind == "swap":
        pairs = [j for j in range(len(words) - 1) if words[j] != words[j + 1]]
        j = rng.choice(pairs)
        words[j], words[j + 1] = words[j + 1], words[j]
    elif kind == "substitute":
        words[i] = rng.choice(vocabulary)
    elif kind == "flip":  # one style word to the opposite value of one of its attributes
        places = [j for j, w in enumerate(words) if w in flips]
        if not places:
            return None
        j = rng.choice(places)
        words[j] = rng.choice(rng.choice(flips[words[j]]))
    return words


# --------------------------------------------------------------------------- the default grammar


def test_public_api_constants():
    assert ATTRIBUTES == {"sentiment": ["negative", "positive"], "tense": ["past", "present"]}
    assert CONTENT_SLOTS == ("item", "reviewer", "place")


def test_oracle_is_right_on_5000_generated_sentences():
    sentences = [s for seed in range(5) for s in generate(1000, seed=100 + seed)]
    results = parse_many([s.text for s in sentences])
    wrong = [(s, r) for s, r in zip(sentences, results)
             if r != Parse(True, s.attributes, s.content)]
    assert not wrong, wrong[:3]


def test_reference_recogniser_agrees_on_generated_sentences():
    # The reference must accept what the generator makes, else the perturbation test below
    # would compare the oracle against a recogniser that rejects everything.
    reference = Reference(GRAMMAR)
    for s in generate(300, seed=11):
        expected = (tuple(s.attributes.items()), tuple(s.content.items()))
        assert reference.readings(s.text) == {expected}, s.text


@pytest.mark.parametrize("kind", ["drop", "duplicate", "swap", "substitute", "flip"])
def test_oracle_agrees_with_reference_on_perturbed_sentences(kind):
    rng = random.Random(kind)
    reference = Reference(GRAMMAR)
    vocabulary = sorted(default_language().vocabulary)
    flips = _flip_table(GRAMMAR)
    rejected = total = 0
    for s in generate(700, seed=sum(map(ord, kind))):
        words = perturb(s.text.split(), kind, rng, vocabulary, flips)
        if words is None:
            continue
        sentence = " ".join(words)
        readings = reference.readings(sentence)
        assert_agrees(parse(sentence), readings, sentence)
        total += 1
        rejected += not readings
    assert total >= 600
    # Most perturbations leave the language; some legitimately stay in it (dropping an
    # optional intensifier, flipping the only sentiment word, swapping in another item).
    assert rejected / total > {"flip": 0.5, "substitute": 0.8}.get(kind, 0.9), (rejected, total)


@pytest.mark.parametrize("sentence, attributes, content_", [
    ("the pasta was great .", ("positive", "past"), ("pasta", "", "")),
    ("unfortunately , the hotel room that they offered at the airport was really awful "
     "and bland .", ("negative", "past"), ("hotel room", "", "at the airport")),
    ("my wife says that the phone in tokyo is excellent .", ("positive", "present"),
     ("phone", "my wife", "in tokyo")),
    ("the flight is lousy , so my boss asks for a refund .", ("negative", "present"),
     ("flight", "my boss", "")),
    ("in paris , the steak is superb and cozy .", ("positive", "present"),
     ("steak", "", "in paris")),
    ("my uncle was disappointed with the laptop because it was flimsy .",
     ("negative", "past"), ("laptop", "my uncle", "")),
    ("according to my sister , the massage was sublime .", ("positive", "past"),
     ("massage", "my sister", "")),
    # runs of whitespace and a trailing newline are not part of the language's tokens
    ("the  pasta was great .\n", ("positive", "past"), ("pasta", "", "")),
])
def test_known_good_sentences(sentence, attributes, content_):
    result = parse(sentence)
    assert result == Parse(True, dict(zip(ATTRIBUTES, attributes)),
                           dict(zip(CONTENT_SLOTS, content_)))


@pytest.mark.parametrize("sentence", [
    "the pasta was great , and my wife hates it .",    # both attributes differ across clauses
    "the pasta was great , and my wife hated it .",    # sentiment differs across clauses
    "the pasta was great , and my wife loves it .",    # tense differs across clauses
    "my wife said that the pasta is great .",          # tense differs across clauses
    "unfortunately , the pasta was great .",           # opener and adjective disagree
    "the pasta was great and bland .",                 # one clause, two sentiments
    "the pasta that they offer in rome was great .",   # relative clause in another tense
    "the pasta was great",                             # no final period
    "the pasta was great.",                            # period glued to the word
    "the pasta great was .",                           # swapped words
    "the the pasta was great .",                       # duplicated word
    "pasta was great .",                               # dropped word
    "the pasta in rome in paris was great .",          # a slot filled twice
    "the pasta was delicious .",                       # unknown word
    "The pasta was great .",                           # the language is lower case
    "my wife loved the pasta because it was great .",  # 'because it was' takes a trait word
    "",
])
def test_known_bad_sentences(sentence):
    assert parse(sentence) == Parse(False, None, None)
    assert Reference(GRAMMAR).readings(sentence) == set()


def test_parse_many_matches_parse():
    texts = [s.text for s in generate(50, seed=3)] + ["not a sentence ."]
    assert parse_many(texts) == [parse(t) for t in texts]
    assert parse_many(iter(texts[:2])) == [parse(t) for t in texts[:2]]


def test_size_and_vocabulary_of_the_language():
    language = default_language()
    assert language.size > 10**6
    words = {w for w in language.vocabulary if w.isalpha()}
    assert len(words) >= 300
    seen = {w for s in generate(3000, seed=5) for w in s.text.split()}
    assert seen <= language.vocabulary
    assert (language.min_tokens, language.max_tokens) == (5, 20)


def test_size_matches_a_count_of_automaton_paths():
    # An independent count: paths through the automaton whose style words all agree with a
    # combination, summed over combinations (each accepted sentence has exactly one).
    language = default_language()
    automaton = language.automaton
    total = 0
    for values in itertools.product(*ATTRIBUTES.values()):
        combo = set(zip(ATTRIBUTES, values))

        @functools.lru_cache(maxsize=None)
        def accepted_from(state: int) -> int:  # the automaton is acyclic: recursion ends
            return automaton.final[state] + sum(
                accepted_from(target) for target, features, _ in
                automaton.transitions[state].values() if set(features) <= combo)

        total += accepted_from(0)
    assert total == language.size


# --------------------------------------------------------------------------- a tiny grammar


def tiny_grammar(**changes) -> Grammar:
    grammar = Grammar(
        attributes=ATTRIBUTES,
        slots=("item", "place"),
        required_slots=("item",),
        categories={
            "item": content("item", ["soup", "hotel room"]),
            "place": content("place", ["downtown", "in rome"]),
            "be": by_tense([("was", "is")]),
            "quality": by_sentiment("bad awful", "good great"),
            "opinion": by_sentiment_and_tense([("hated", "hates")], [("loved", "loves")]),
            "intensifier": neutral("very"),
        },
        macros={"NP": ["the <item>", "the <item> <place>"]},
        patterns=["NP <be> [<intensifier>] <quality> .",
                  "she <opinion> the <item> [<place>] , and it <be> <quality> ."],
        min_tokens=4, max_tokens=20)
    return dataclasses.replace(grammar, **changes)


def test_tiny_language_is_counted_exactly():
    language = compile_grammar(tiny_grammar())
    sentences = enumerate_language(tiny_grammar())
    # by hand: pattern 1: 2 items x 3 place options x 2 (intensifier or not) x 2 adjectives,
    # pattern 2: 2 items x 3 place options x 1 verb x 2 adjectives; each in 4 style combinations
    assert language.size == len(sentences) == 4 * (2 * 3 * 2 * 2 + 2 * 3 * 1 * 2) == 144


def test_tiny_oracle_is_exact_on_every_one_edit_neighbour():
    grammar = tiny_grammar()
    oracle = Oracle(compile_grammar(grammar))
    sentences = enumerate_language(grammar)
    vocabulary = sorted({w for s in sentences for w in s.split()} | {"the", "it"})
    candidates = set(sentences)
    for sentence in sentences:
        words = sentence.split()
        for i in range(len(words)):
            candidates.add(" ".join(words[:i] + words[i + 1:]))
            candidates.add(" ".join(words[:i] + [words[i]] + words[i:]))
            if i + 1 < len(words):
                candidates.add(" ".join(words[:i] + [words[i + 1], words[i]] + words[i + 2:]))
            for w in vocabulary:
                candidates.add(" ".join(words[:i] + [w] + words[i + 1:]))
    rejected = 0
    for candidate in candidates:
        result = oracle.parse(candidate)
        if candidate in sentences:
            assert result.grammatical and as_reading(result) == sentences[candidate], candidate
        else:
            assert result == Parse(False, None, None), candidate
            rejected += 1
    assert rejected > 10 * len(sentences)


# --------------------------------------------------------------------------- grammar checks


@pytest.mark.parametrize("changes, message", [
    # two symbols that may both follow "the <item>" and start with the same word
    ({"patterns": ["the <item> <be> <quality> .", "the <item> was here <be> <quality> ."]},
     "ambiguous"),
    # a word with two readings in one class
    ({"categories": {**tiny_grammar().categories,
                     "quality": by_sentiment("bad great", "good great")}}, "twice"),
    ({"categories": {**tiny_grammar().categories,
                     "item": content("item", ["hotel", "hotel room"])}}, "prefix-free"),
    ({"max_tokens": 8}, "tokens"),
    ({"patterns": ["the <item> <place> <place> <be> <quality> ."]}, "slot 'place' 2 times"),
    ({"patterns": ["the <item> <be> here ."]}, "carries no word for ['sentiment']"),
    ({"patterns": ["the <be> <quality> here ."]}, "slot 'item' 0 times"),
    ({"patterns": ["the <item> <be> <quality>"]}, "end with '.'"),
    ({"patterns": ["the <item> <be> <colour> ."]}, "unknown word class"),
    ({"patterns": ["the <item> <be> [<quality> ."]}, "unclosed"),
    ({"patterns": ["The <item> <be> <quality> ."]}, "lower-case"),
])
def test_compiler_rejects_broken_grammars(changes, message):
    with pytest.raises(GrammarError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_grammar(tiny_grammar(**changes))
