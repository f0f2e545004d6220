"""The exact oracle of the synthetic language: is a sentence in it, and with which labels?

    from textgan.corpora.oracle import parse, parse_many
    parse("the pasta was great , and my wife loved it .")
    # Parse(grammatical=True, attributes={'sentiment': 'positive', 'tense': 'past'},
    #       content={'item': 'pasta', 'reviewer': 'my wife', 'place': ''})
    parse("the pasta was great , and my wife hates it .")   # tense and sentiment disagree
    # Parse(grammatical=False, attributes=None, content=None)

Exact means: every sentence `synthetic.generate` can produce is accepted with the attributes and
content it was generated with, and every other token sequence is rejected (dropped, repeated or
swapped words, unknown words, clauses that disagree in sentiment or tense). Both sides are
compiled from the same grammar data (language.py), and the compiler proves the grammar
unambiguous, so a sentence has at most one reading.

Input is split on whitespace, so runs of spaces or a trailing newline do not matter; everything
else does: tokens are case-sensitive (the language is lower case) and "," and "." are tokens of
their own ("great." is not "great .").

Speed: a walk over a deterministic automaton with one dict lookup per token; measured at about
185,000 grammatical sentences/s on one core of the 2-core development machine (faster on
ungrammatical ones, which stop at the first bad token; command in NOTES.md), far above the
10,000/s that evaluation needs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import NamedTuple

from textgan.corpora.language import Language, default_language


class Parse(NamedTuple):
    """The oracle's verdict; attributes and content are None for an ungrammatical sentence."""

    grammatical: bool
    attributes: dict[str, str] | None
    content: dict[str, str] | None


REJECTED = Parse(False, None, None)


class Oracle:
    """A parser for one compiled language (the default one unless a test builds another)."""

    def __init__(self, language: Language) -> None:
        self._transitions = language.automaton.transitions
        self._final = language.automaton.final
        self._attributes = tuple(language.grammar.attributes)
        self._slots = tuple(language.grammar.slots)

    def parse(self, sentence: str) -> Parse:
        """Walk the automaton; collect attribute values (which must agree) and slot values."""
        transitions = self._transitions
        state = 0
        attributes: dict[str, str] = {}
        content = dict.fromkeys(self._slots, "")
        for word in sentence.split():
            step = transitions[state].get(word)
            if step is None:
                return REJECTED
            state, features, slot = step
            for attribute, value in features:
                # The first carrier of an attribute fixes it; every later one must agree.
                if attributes.setdefault(attribute, value) != value:
                    return REJECTED
            if slot is not None:
                content[slot[0]] = slot[1]
        if not self._final[state]:
            return REJECTED
        # Every template carries every attribute (checked when compiling), so no key is missing.
        return Parse(True, {name: attributes[name] for name in self._attributes}, content)

    def parse_many(self, sentences: Iterable[str]) -> list[Parse]:
        parse = self.parse
        return [parse(sentence) for sentence in sentences]


@functools.lru_cache(maxsize=1)
def default_oracle() -> Oracle:
    """The oracle of the default grammar, built on first use (about 0.1 s)."""
    return Oracle(default_language())


def parse(sentence: str) -> Parse:
    """Parse one sentence of the default synthetic language."""
    return default_oracle().parse(sentence)


def parse_many(sentences: Iterable[str]) -> list[Parse]:
    """Parse many sentences of the default synthetic language (one Parse per sentence)."""
    return default_oracle().parse_many(sentences)
