"""Compile a declarative `Grammar` (see grammar.py) into what the generator and the oracle use.

    language = compile_grammar(GRAMMAR)       # or default_language(), compiled once per process
    language.templates                        # flat symbol sequences, with sampling weights
    language.automaton                        # deterministic token automaton for the oracle
    language.size                             # exact number of distinct sentences

Compiling expands every pattern (optional groups, macros) into flat templates and checks the
grammar's promises, raising GrammarError (a bug in the grammar, not a user mistake) if one fails:
each template stays within the token bounds, names each content slot at most once (the required
ones exactly once), and carries every attribute; each word class has phrases for every
attribute combination, lists no phrase twice and is prefix-free (no phrase starts another).

The automaton is a trie over the templates whose category edges are expanded into the classes'
phrase tries. Building it proves the language unambiguous: a (state, word) pair that would need
two different transitions (two symbols that can start with the same word where both may
follow, or one word with two readings) is an error. So every accepted token sequence has
exactly one path, which fixes its attributes and content, and `size` can count sentences as
derivations: sum over templates and attribute combinations of the product of class sizes.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple, Union

from textgan.corpora.grammar import GRAMMAR, Category, Grammar

PUNCTUATION = frozenset({",", "."})


class GrammarError(ValueError):
    """The grammar data breaks one of its own rules (a textgan bug, not a user mistake)."""


class Template(NamedTuple):
    """One flat realisation of a pattern: literals and `<category>` symbols, and its weight."""

    symbols: tuple[str, ...]
    weight: float          # probability of this template when sampling (weights sum to 1)


# A transition: (next state, attribute values it expresses, (slot, value) it fills or None).
Step = tuple[int, tuple[tuple[str, str], ...], Union[tuple[str, str], None]]


@dataclass(frozen=True)
class Automaton:
    """A deterministic automaton over tokens: state 0 starts, `final[s]` says s accepts."""

    transitions: tuple[dict[str, Step], ...]
    final: tuple[bool, ...]

    @property
    def n_transitions(self) -> int:
        return sum(len(t) for t in self.transitions)


@dataclass(frozen=True)
class Language:
    """A compiled grammar: templates for sampling, the automaton for parsing, and its size."""

    grammar: Grammar
    templates: tuple[Template, ...]
    automaton: Automaton
    size: int                       # exact number of distinct sentences
    vocabulary: frozenset[str]      # every token a sentence can contain, punctuation included
    min_tokens: int                 # shortest and longest sentence, in tokens
    max_tokens: int

    def stats(self) -> dict[str, object]:
        """Figures for logs and notes: vocabulary, patterns, templates, size, lengths."""
        words = sorted(w for w in self.vocabulary if w not in PUNCTUATION)
        return {
            "words": len(words),
            "patterns": len(self.grammar.patterns),
            "templates": len(self.templates),
            "sentences": self.size,
            "sentences_log10": round(math.log10(self.size), 2),
            "tokens": [self.min_tokens, self.max_tokens],
            "categories": {name: sum(len(p) for p in cat.phrases.values())
                           for name, cat in self.grammar.categories.items()},
            "automaton_states": len(self.automaton.final),
            "automaton_transitions": self.automaton.n_transitions,
        }


@functools.lru_cache(maxsize=1)
def default_language() -> Language:
    """The compiled default grammar (compiled once per process, in well under a second)."""
    return compile_grammar(GRAMMAR)


def compile_grammar(grammar: Grammar) -> Language:
    """Expand, check, build the automaton and count; GrammarError if a rule is broken."""
    for name, category in grammar.categories.items():
        _check_category(grammar, name, category)
    templates = expand_patterns(grammar)
    bounds = [_check_template(grammar, t) for t in templates]
    automaton = build_automaton(grammar, templates)
    vocabulary = {s for t in templates for s in t.symbols if not _is_category(s)}
    used = {s[1:-1] for t in templates for s in t.symbols if _is_category(s)}
    for name in used:
        for phrases in grammar.categories[name].phrases.values():
            vocabulary.update(w for phrase in phrases for w in phrase.split())
    return Language(
        grammar=grammar, templates=tuple(templates), automaton=automaton,
        size=count_sentences(grammar, templates), vocabulary=frozenset(vocabulary),
        min_tokens=min(lo for lo, _ in bounds), max_tokens=max(hi for _, hi in bounds))


# --------------------------------------------------------------------------- expansion


def _is_category(symbol: str) -> bool:
    return symbol.startswith("<") and symbol.endswith(">")


def _is_macro(symbol: str) -> bool:
    return symbol.isupper()


def _parse_pattern(text: str) -> list[str | list[str]]:
    """Split a pattern into symbols and optional groups (a group is a list of symbols)."""
    items: list[str | list[str]] = []
    group: list[str] | None = None
    for token in text.split():
        opens, closes = token.startswith("["), token.endswith("]")
        symbol = token[1 if opens else 0: -1 if closes else None]
        if opens:
            if group is not None:
                raise GrammarError(f"nested optional group in pattern '{text}'")
            group = []
        if not symbol:
            raise GrammarError(f"empty symbol in pattern '{text}'")
        (items if group is None else group).append(symbol)
        if closes:
            if group is None:
                raise GrammarError(f"']' without '[' in pattern '{text}'")
            items.append(group)
            group = None
    if group is not None:
        raise GrammarError(f"unclosed '[' in pattern '{text}'")
    return items


Expansion = list[tuple[tuple[str, ...], float]]


def _expand_items(grammar: Grammar, items: list[str | list[str]], stack: tuple[str, ...]
                  ) -> Expansion:
    """All flat symbol sequences of a parsed pattern, each with its probability."""
    result: Expansion = [((), 1.0)]
    for item in items:
        if isinstance(item, list):  # optional group: absent or present, half and half
            options = [((), 0.5)] + [(seq, 0.5 * w)
                                      for seq, w in _expand_items(grammar, list(item), stack)]
        else:
            options = _expand_symbol(grammar, item, stack)
        result = [(a + b, wa * wb) for a, wa in result for b, wb in options]
    return result


def _expand_symbol(grammar: Grammar, symbol: str, stack: tuple[str, ...]) -> Expansion:
    if _is_macro(symbol):
        if symbol not in grammar.macros:
            raise GrammarError(f"unknown macro {symbol}")
        if symbol in stack:
            raise GrammarError(f"macro {symbol} refers to itself via {' -> '.join(stack)}")
        alternatives = grammar.macros[symbol]
        return [(seq, w / len(alternatives)) for text in alternatives
                for seq, w in _expand_items(grammar, _parse_pattern(text), stack + (symbol,))]
    if _is_category(symbol):
        if symbol[1:-1] not in grammar.categories:
            raise GrammarError(f"unknown word class {symbol}")
    elif not (symbol in PUNCTUATION or (symbol.isalpha() and symbol.islower())):
        raise GrammarError(f"literal '{symbol}' is not a lower-case word or , or .")
    return [((symbol,), 1.0)]


def expand_patterns(grammar: Grammar) -> list[Template]:
    """Every pattern as flat templates; equal templates from different patterns are merged."""
    merged: dict[tuple[str, ...], Template] = {}
    for text in grammar.patterns:
        for symbols, weight in _expand_items(grammar, _parse_pattern(text), ()):
            weight /= len(grammar.patterns)
            if symbols in merged:
                old = merged[symbols]
                merged[symbols] = old._replace(weight=old.weight + weight)
            else:
                merged[symbols] = Template(symbols, weight)
    return list(merged.values())


# --------------------------------------------------------------------------- checks


def _check_category(grammar: Grammar, name: str, category: Category) -> None:
    unknown = [a for a in category.depends if a not in grammar.attributes]
    if unknown:
        raise GrammarError(f"<{name}> depends on unknown attribute(s) {unknown}")
    if category.slot is not None and category.slot not in grammar.slots:
        raise GrammarError(f"<{name}> fills unknown slot '{category.slot}'")
    if category.slot is not None and category.depends:
        raise GrammarError(f"<{name}>: a content slot must not depend on an attribute")
    keys = set(itertools.product(*(grammar.attributes[a] for a in category.depends)))
    if set(category.phrases) != keys:
        raise GrammarError(f"<{name}> must list phrases for exactly the keys {sorted(keys)}, "
                           f"has {sorted(category.phrases)}")
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    for key, phrases in category.phrases.items():
        if not phrases:
            raise GrammarError(f"<{name}> has no phrase for {key}")
        for phrase in phrases:
            words = tuple(phrase.split())
            if not words or " ".join(words) != phrase:
                raise GrammarError(f"<{name}>: phrase {phrase!r} is not single-spaced words")
            if not all(w.isalpha() and w.islower() for w in words):
                raise GrammarError(f"<{name}>: phrase {phrase!r} has a non lower-case word")
            if words in seen:
                raise GrammarError(f"<{name}> lists '{phrase}' twice ({seen[words]} and {key})")
            seen[words] = key
    for words in seen:
        for cut in range(1, len(words)):
            if words[:cut] in seen:
                raise GrammarError(f"<{name}> is not prefix-free: '{' '.join(words[:cut])}' "
                                   f"starts '{' '.join(words)}'")


def _phrase_lengths(category: Category) -> list[int]:
    return [len(p.split()) for phrases in category.phrases.values() for p in phrases]


def _check_template(grammar: Grammar, template: Template) -> tuple[int, int]:
    """Check one template's rules; return its shortest and longest length in tokens."""
    text = " ".join(template.symbols)
    lo = hi = 0
    slots: list[str] = []
    carried: set[str] = set()
    for symbol in template.symbols:
        if _is_category(symbol):
            category = grammar.categories[symbol[1:-1]]
            lengths = _phrase_lengths(category)
            lo, hi = lo + min(lengths), hi + max(lengths)
            carried.update(category.depends)
            if category.slot is not None:
                slots.append(category.slot)
        else:
            lo, hi = lo + 1, hi + 1
    if template.symbols[-1] != ".":
        raise GrammarError(f"template '{text}' does not end with '.'")
    if lo < grammar.min_tokens or hi > grammar.max_tokens:
        raise GrammarError(f"template '{text}' has {lo}..{hi} tokens, outside "
                           f"{grammar.min_tokens}..{grammar.max_tokens}")
    for slot in grammar.slots:
        wanted = (1, 1) if slot in grammar.required_slots else (0, 1)
        if not wanted[0] <= slots.count(slot) <= wanted[1]:
            raise GrammarError(f"template '{text}' names slot '{slot}' {slots.count(slot)} "
                               f"times (allowed {wanted[0]}..{wanted[1]})")
    missing = [a for a in grammar.attributes if a not in carried]
    if missing:
        raise GrammarError(f"template '{text}' carries no word for {missing}: its label "
                           "would not be determined by the text")
    return lo, hi


# --------------------------------------------------------------------------- automaton


def build_automaton(grammar: Grammar, templates: list[Template]) -> Automaton:
    """The trie of templates with phrase tries on category edges; GrammarError if ambiguous."""
    transitions: list[dict[str, Step]] = [{}]
    final: list[bool] = [False]
    after_symbol: dict[tuple[int, str], int] = {}   # (state, symbol) -> state after it
    inside: dict[tuple[int, str, tuple[str, ...]], int] = {}  # in the middle of a phrase

    def new_state() -> int:
        transitions.append({})
        final.append(False)
        return len(final) - 1

    def add(state: int, word: str, step: Step, where: str) -> None:
        old = transitions[state].setdefault(word, step)
        if old != step:
            raise GrammarError(f"ambiguous grammar: after '{where}' the word '{word}' can be "
                               "read two ways (two symbols start with it, or one word class "
                               "gives it two meanings)")

    for template in templates:
        state, prefix = 0, ""
        for symbol in template.symbols:
            seen = (state, symbol) in after_symbol
            target = after_symbol.setdefault((state, symbol), len(final))
            if not seen:
                new_state()
            if not _is_category(symbol):
                add(state, symbol, (target, (), None), prefix)
            elif not seen:  # the phrase trie of this edge, built once per (state, symbol)
                category = grammar.categories[symbol[1:-1]]
                for key, phrases in category.phrases.items():
                    features = tuple(zip(category.depends, key))
                    for phrase in phrases:
                        words = tuple(phrase.split())
                        slot = (category.slot, phrase) if category.slot else None
                        at = state
                        for i, word in enumerate(words[:-1]):
                            nxt = inside.get((state, symbol, words[:i + 1]))
                            if nxt is None:
                                nxt = inside[(state, symbol, words[:i + 1])] = new_state()
                            add(at, word, (nxt, (), None), prefix)
                            at = nxt
                        add(at, words[-1], (target, features, slot), prefix)
            state, prefix = target, f"{prefix} {symbol}".strip()
        final[state] = True
    return Automaton(tuple(transitions), tuple(final))


# --------------------------------------------------------------------------- counting


def count_sentences(grammar: Grammar, templates: list[Template]) -> int:
    """Exact number of distinct sentences (derivations are unique: see the module docstring)."""
    combos = [dict(zip(grammar.attributes, values))
              for values in itertools.product(*grammar.attributes.values())]
    total = 0
    for template in templates:
        for combo in combos:
            product = 1
            for symbol in template.symbols:
                if _is_category(symbol):
                    category = grammar.categories[symbol[1:-1]]
                    product *= len(category.phrases[tuple(combo[a] for a in category.depends)])
            total += product
    return total
