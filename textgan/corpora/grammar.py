"""The synthetic review language, written down as data: word classes and sentence patterns.

This module is the specification of the language that `textgan.corpora.synthetic` samples from
and that `textgan.corpora.oracle` recognises exactly; both are compiled from `GRAMMAR` by
`textgan.corpora.language`, so there is one definition and no second copy to drift.

What a sentence carries
-----------------------
- Two style attributes, independent of each other and of the content:
  `sentiment` (negative / positive) and `tense` (past / present). Each word class below that
  `depends` on an attribute expresses its value (adjectives, verbs, openers, time adverbials);
  every finite verb carries tense and every evaluative clause carries sentiment, and a sentence
  belongs to the language only if all of these words agree: "the pasta was great , and my wife loved it ." is
  in, "the pasta was great , and my wife hates it ." (mixed tense and sentiment) is out.
- Three content slots, what is described (`item`), by whom (`reviewer`) and where (`place`).
  Every pattern names the item; reviewer and place are optional per pattern, an absent slot has
  the value "". Every pattern can be realised with every style combination, so style transfer
  can keep the content and the pattern and change only the style-bearing words.

Notation of the patterns
------------------------
A pattern is a string of space-separated symbols:
- `<name>`    a word class from `CATEGORIES` (one of its phrases; a phrase may be several words),
- `NAME`      a macro from `MACROS` (upper case: one of its alternatives, spliced in),
- `[ ... ]`   an optional group (present or absent; no nesting),
- anything else is a literal token: a lower-case word, "," or ".".

Surface form: lower-case tokens separated by single spaces, punctuation as its own token,
always ending in " .", 4 to 20 tokens (the compiler checks the bounds of every pattern).
The language is finite and regular; `language.py` counts it exactly and proves at compile time
that it is unambiguous (each sentence has one derivation, hence one reading).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Class index order matters: the model's style code and the corpus labels use these positions.
ATTRIBUTES: dict[str, list[str]] = {
    "sentiment": ["negative", "positive"],
    "tense": ["past", "present"],
}
CONTENT_SLOTS: tuple[str, ...] = ("item", "reviewer", "place")


@dataclass(frozen=True)
class Category:
    """A word class: its phrases, grouped by the attribute values they express.

    `depends` names the attributes whose values select the phrase list (none for a neutral
    class); `phrases` maps a key, the tuple of those values in `depends` order, to the phrases.
    A content class has `slot` set: the phrase it contributes is that slot's value.
    """

    depends: tuple[str, ...]
    phrases: Mapping[tuple[str, ...], tuple[str, ...]]
    slot: str | None = None


def neutral(words: str) -> Category:
    """A class that carries no attribute (e.g. intensifiers)."""
    return Category((), {(): tuple(words.split())})


def content(slot: str, phrases: Sequence[str]) -> Category:
    """The values of a content slot; each phrase is one value."""
    return Category((), {(): tuple(phrases)}, slot=slot)


def by_sentiment(negative: str, positive: str) -> Category:
    """One-word phrases that carry sentiment only."""
    return Category(("sentiment",), {("negative",): tuple(negative.split()),
                                     ("positive",): tuple(positive.split())})


def by_tense(pairs: Sequence[tuple[str, str]]) -> Category:
    """Phrases that carry tense only, given as (past, present) pairs."""
    return Category(("tense",), {("past",): tuple(past for past, _ in pairs),
                                 ("present",): tuple(present for _, present in pairs)})


def by_sentiment_and_tense(negative: Sequence[tuple[str, str]],
                           positive: Sequence[tuple[str, str]]) -> Category:
    """Phrases that carry both attributes, given as (past, present) pairs per sentiment."""
    phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
    for sentiment, pairs in (("negative", negative), ("positive", positive)):
        phrases[(sentiment, "past")] = tuple(past for past, _ in pairs)
        phrases[(sentiment, "present")] = tuple(present for _, present in pairs)
    return Category(("sentiment", "tense"), phrases)


@dataclass(frozen=True)
class Grammar:
    """Everything that defines a language: attributes, slots, word classes, macros, patterns."""

    attributes: Mapping[str, Sequence[str]]
    slots: tuple[str, ...]
    required_slots: tuple[str, ...]
    categories: Mapping[str, Category]
    macros: Mapping[str, Sequence[str]]
    patterns: Sequence[str]
    min_tokens: int = 4
    max_tokens: int = 20


# --------------------------------------------------------------------------- content slots
# Items are singular (they take "was"/"is") and generic enough that every evaluative word below
# fits them, which is what lets any item appear with any style. The list is prefix-free (no
# item is the start of another, e.g. no "wine" beside "wine tasting") so that where an item
# ends is decided by its own words.
ITEMS = [
    # food and drink
    "pasta", "pizza", "soup", "steak", "burger", "salad", "curry", "sushi", "espresso",
    "dessert", "cheesecake", "lasagna", "risotto", "omelette", "sandwich", "bread", "wine",
    "tea", "breakfast", "brunch", "ramen", "tasting menu",
    # places to stay
    "hotel room", "suite", "pool", "spa", "lobby", "mattress", "shower", "buffet", "view",
    "room service",
    # things to buy
    "phone", "laptop", "tablet", "camera", "headset", "keyboard", "printer", "charger",
    "speaker", "monitor", "router", "smartwatch", "vacuum cleaner", "coffee maker",
    # things to do
    "movie", "concert", "musical", "boat tour", "museum tour", "flight", "train ride",
    "taxi ride", "car rental", "haircut", "massage", "cooking class", "yoga class",
    "escape room", "theme park", "wedding venue",
]

# Reviewers are all third person singular ("my X"), so one verb form agrees with every one of
# them and with every item: agreement never depends on the content.
REVIEWERS = [
    f"my {who}" for who in (
        "wife", "husband", "son", "daughter", "mother", "father", "sister", "brother",
        "friend", "boss", "partner", "roommate", "colleague", "neighbour", "uncle", "aunt",
        "grandmother", "grandfather", "cousin", "girlfriend", "boyfriend", "fiancee", "nephew",
        "niece", "teacher")
]

# Places are adverbials of one to three words; none starts with a word that can follow an item
# elsewhere ("that", "was", "is", "because", ".") or begin a sentence ("the", "my", "for").
PLACES = [
    "downtown", "uptown", "nearby",
    "at the airport", "at the mall", "at the station", "at the harbour", "at the stadium",
    "at the market", "on the beach", "near the park", "near the river", "near the cathedral",
    "near our office", "near campus", "by the lake", "by the sea", "in the countryside",
    "in the suburbs", "in the village", "in chinatown", "on main street",
    "in london", "in paris", "in berlin", "in rome", "in madrid", "in lisbon", "in vienna",
    "in prague", "in dublin", "in boston", "in chicago", "in seattle", "in denver", "in austin",
    "in toronto", "in sydney", "in tokyo", "in seoul",
]

# --------------------------------------------------------------------------- style-bearing classes
CATEGORIES: dict[str, Category] = {
    "item": content("item", ITEMS),
    "reviewer": content("reviewer", REVIEWERS),
    "place": content("place", PLACES),
    # The copula of a singular subject: the most frequent tense carrier.
    "be": by_tense([("was", "is")]),
    # Evaluative predicate adjectives: fit any item.
    "quality": by_sentiment(
        negative="terrible awful horrible dreadful appalling atrocious abysmal dismal lousy "
                 "pathetic mediocre disappointing poor bad horrid shoddy subpar lamentable "
                 "woeful miserable",
        positive="great excellent wonderful fantastic amazing superb lovely brilliant "
                 "outstanding terrific fabulous marvelous splendid magnificent exceptional "
                 "delightful stunning remarkable phenomenal sublime"),
    # A second, disjoint set of adjectives, for "great and reliable" and for the "it was ..."
    # continuations: disjoint so that a coordination never repeats the word before "and".
    "trait": by_sentiment(
        negative="unreliable boring forgettable overpriced tedious frustrating annoying bland "
                 "flimsy sloppy dull tiresome uncomfortable noisy dirty stale clumsy unpleasant "
                 "useless overrated",
        positive="reliable charming enjoyable satisfying memorable worthwhile refreshing "
                 "elegant comfortable affordable impressive pleasant polished thoughtful cozy "
                 "flawless perfect spotless stylish smooth"),
    # How the reviewer felt: "my wife was thrilled with the pasta".
    "feeling": by_sentiment(
        negative="disappointed unhappy annoyed frustrated dissatisfied upset unimpressed "
                 "disgusted appalled furious",
        positive="thrilled delighted impressed pleased satisfied happy charmed amazed overjoyed "
                 "content"),
    # Sentence adverbs that open a sentence: "unfortunately , ...".
    "stance": by_sentiment(negative="unfortunately sadly regrettably unluckily",
                           positive="fortunately luckily thankfully happily"),
    # Opinion verbs with a reviewer subject (3rd person singular present): carry both attributes.
    "opinion": by_sentiment_and_tense(
        negative=[("hated", "hates"), ("disliked", "dislikes"), ("loathed", "loathes"),
                  ("detested", "detests"), ("despised", "despises"), ("resented", "resents"),
                  ("criticized", "criticizes"), ("regretted", "regrets")],
        positive=[("loved", "loves"), ("enjoyed", "enjoys"), ("adored", "adores"),
                  ("liked", "likes"), ("appreciated", "appreciates"), ("praised", "praises"),
                  ("admired", "admires"), ("relished", "relishes")]),
    # What the reviewer did about it: ", so my wife asked for a refund". Multi-word phrases; the
    # set is prefix-free across all four lists.
    "outcome": by_sentiment_and_tense(
        negative=[("left early", "leaves early"), ("complained", "complains"),
                  ("asked for a refund", "asks for a refund"), ("gave up", "gives up"),
                  ("never returned", "never returns")],
        positive=[("went back", "goes back"), ("came back", "comes back"),
                  ("returned twice", "returns often"), ("told everyone", "tells everyone"),
                  ("stayed longer", "stays longer")]),
    # Reporting verbs ("my wife said that ..."): tense only; the reported clause must agree.
    "say": by_tense([("said", "says"), ("thought", "thinks"), ("felt", "feels"),
                     ("wrote", "writes"), ("insisted", "insists"), ("agreed", "agrees")]),
    # The verb of the relative clause "the pasta that they offered in rome": tense only.
    "offer": by_tense([("offered", "offer"), ("provided", "provide"),
                       ("recommended", "recommend")]),
    # Time adverbials that close a one-clause sentence: a second tense carrier. None starts
    # with a word that begins a place ("at", "in", ...), since both may follow an item.
    "when": by_tense([("yesterday", "these days"), ("last week", "nowadays"),
                      ("last night", "right now"), ("last month", "currently"),
                      ("last summer", "as always"), ("last year", "every time"),
                      ("back then", "every week"), ("the other day", "this season")]),
    # Neutral degree words before an adjective.
    "intensifier": neutral("really truly very quite rather extremely incredibly genuinely"),
}

# --------------------------------------------------------------------------- patterns
MACROS: dict[str, list[str]] = {
    # An adjective phrase: one quality word, optionally intensified, optionally coordinated
    # with a trait word; both adjectives carry the sentiment.
    "ADJP": ["[<intensifier>] <quality>", "[<intensifier>] <quality> and <trait>"],
    # The item as a subject, bare, located, or with a relative clause whose verb carries tense.
    "NP": ["the <item>", "the <item> <place>", "the <item> that they <offer> <place>"],
    # The item as a subject without the relative clause, for two-clause sentences: keeps the
    # longest realisation within 20 tokens.
    "SHORTNP": ["the <item> [<place>]"],
    # A reviewer frame in front of a copular clause.
    "FRAME": ["according to <reviewer> ,", "for <reviewer> ,"],
    # "it was really bland": the item again, as a pronoun, with a trait adjective.
    "ITCLAUSE": ["it <be> [<intensifier>] <trait>"],
}

PATTERNS: list[str] = [
    # One clause, the item described:  "unfortunately , the pasta in rome was awful yesterday ."
    "[<stance> ,] NP <be> ADJP [<when>] .",
    # One clause, the reviewer's opinion:  "my wife loved the pasta downtown last week ."
    "[<stance> ,] <reviewer> <opinion> the <item> [<place>] [<when>] .",
    # One clause, the reviewer's feeling:  "my wife was very pleased with the pasta ."
    "[<stance> ,] <reviewer> <be> [<intensifier>] <feeling> with the <item> [<place>] "
    "[<when>] .",
    # A fronted place:  "in rome , the pasta was great and cozy ."
    "<place> , the <item> <be> ADJP [<when>] .",
    # A reviewer frame:  "according to my wife , the pasta was great ."
    "FRAME NP <be> ADJP .",
    # A complement clause; both verbs carry tense:  "my wife says that the pasta is great ."
    "<reviewer> <say> that NP <be> ADJP .",
    # Coordinated clauses; both carry both attributes:
    #   "the pasta was great , and my wife loved it ."  /  "the pasta was great , and it was cozy ."
    "SHORTNP <be> ADJP , and <reviewer> <opinion> it .",
    "SHORTNP <be> ADJP , and ITCLAUSE .",
    # A consequence:  "the pasta was awful , so my wife asked for a refund ."
    "SHORTNP <be> ADJP , so <reviewer> <outcome> .",
    # A reason (subordinate clause):  "my wife loved the pasta because it was cozy ."
    "<reviewer> <opinion> the <item> [<place>] because ITCLAUSE .",
    "<reviewer> <be> [<intensifier>] <feeling> with the <item> [<place>] because ITCLAUSE .",
]

GRAMMAR = Grammar(
    attributes=ATTRIBUTES,
    slots=CONTENT_SLOTS,
    required_slots=("item",),
    categories=CATEGORIES,
    macros=MACROS,
    patterns=PATTERNS,
    min_tokens=4,
    max_tokens=20,
)
