"""Sample the synthetic review corpus and write it as train/valid/test JSON Lines files.

    generate(1000, seed=0)               # distinct SyntheticSentence(text, attributes, content)
    write_corpus("out/", 20000, seed=0)  # out/train.jsonl, out/valid.jsonl, out/test.jsonl
    ensure_corpus(20000, 0)              # the cached default corpus, generated on first use

Sampling, per sentence: the style combination uniformly (so each attribute is uniform and the
two are independent), a template with the weight its pattern gives it (every pattern equally
likely, each optional group present half the time, each macro alternative equally likely), then
every word class uniformly among the phrases for that style; content words (item, reviewer,
place) are drawn without looking at the style, so content is independent of style. Repeats are
drawn again, so the n sentences are distinct. Everything comes from `random.Random(seed)`: the
same seed gives the same sentences in the same order, and a longer corpus starts with a
shorter one (the first k sentences of generate(n, s) are generate(k, s)).

The files hold what users bring too: one JSON object per line, the text and one key per
attribute, e.g. {"text": "the pasta was great .", "sentiment": "positive", "tense": "past"};
content is not written (the oracle recovers it from the text). The splits are consecutive slices
of one generated list: train first, then valid, then test.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import os
import random
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from textgan.corpora.language import Language, default_language
from textgan.errors import CorpusError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SPLIT_FILES = {split: f"{split}.jsonl" for split in SPLITS}
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)
# In a source checkout the cache sits beside the shipped corpora (git-ignored); an installed
# package has no such folder and uses the user's cache instead.
_REPO_SYNTHETIC = Path(__file__).resolve().parents[2] / "corpora" / "synthetic"
# Set it to a folder to cache generated corpora there instead (default_root).
SYNTHETIC_ROOT_ENV = "TEXTGAN_SYNTHETIC_ROOT"


class SyntheticSentence(NamedTuple):
    """A generated sentence, its style labels and its content slots ("" where a slot is absent)."""

    text: str
    attributes: dict[str, str]
    content: dict[str, str]


# --------------------------------------------------------------------------- sampling


class _Sampler:
    """Flat lookup tables per template, so drawing a sentence is a few list indexings."""

    def __init__(self, language: Language) -> None:
        grammar = language.grammar
        self.attributes = tuple(grammar.attributes)
        self.slots = tuple(grammar.slots)
        self.combos = list(itertools.product(*grammar.attributes.values()))
        self.cum_weights = list(itertools.accumulate(t.weight for t in language.templates))
        # A part is a literal (str), a content class (slot, phrases) or a style/neutral class
        # (one phrase tuple per style combination, indexed like self.combos).
        self.parts: list[list[object]] = []
        for template in language.templates:
            parts: list[object] = []
            for symbol in template.symbols:
                if not symbol.startswith("<"):
                    parts.append(symbol)
                    continue
                category = grammar.categories[symbol[1:-1]]
                if category.slot is not None:
                    parts.append((category.slot, category.phrases[()]))
                else:
                    positions = [self.attributes.index(a) for a in category.depends]
                    parts.append([category.phrases[tuple(combo[i] for i in positions)]
                                  for combo in self.combos])
            self.parts.append(parts)

    def draw(self, rng: random.Random) -> SyntheticSentence:
        combo_index = rng.randrange(len(self.combos))
        # bisect on the cumulative weights is random.choices without its per-call overhead.
        index = bisect.bisect(self.cum_weights, rng.random() * self.cum_weights[-1])
        parts = self.parts[min(index, len(self.parts) - 1)]
        words: list[str] = []
        content = dict.fromkeys(self.slots, "")
        for part in parts:
            if isinstance(part, str):
                words.append(part)
            elif isinstance(part, tuple):
                slot, phrases = part
                content[slot] = phrase = rng.choice(phrases)
                words.append(phrase)
            else:
                words.append(rng.choice(part[combo_index]))
        attributes = dict(zip(self.attributes, self.combos[combo_index]))
        return SyntheticSentence(" ".join(words), attributes, content)


def generate(n: int, seed: int, *, language: Language | None = None) -> list[SyntheticSentence]:
    """n distinct sentences of the synthetic language, deterministic by seed."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CorpusError(f"the number of sentences must be a non-negative integer, got {n!r}")
    language = language or default_language()
    if n > language.size:
        raise CorpusError(f"cannot draw {n} distinct sentences from a language of "
                          f"{language.size}")
    sampler = _Sampler(language)
    rng = random.Random(seed)
    seen: set[str] = set()
    sentences: list[SyntheticSentence] = []
    while len(sentences) < n:
        sentence = sampler.draw(rng)
        if sentence.text not in seen:
            seen.add(sentence.text)
            sentences.append(sentence)
    return sentences


# --------------------------------------------------------------------------- splits and files


def split_sizes(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, int]:
    """Sentences per split: valid and test are rounded shares of n, train takes the rest."""
    if len(fractions) != len(SPLITS):
        raise CorpusError(f"fractions must give {len(SPLITS)} numbers (train, valid, test), "
                          f"got {list(fractions)}")
    if not all(isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in fractions):
        raise CorpusError(f"every split fraction must be a number above 0, got {list(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise CorpusError(f"split fractions must sum to 1, got {list(fractions)} "
                          f"(sum {sum(fractions):g})")
    valid, test = round(n * fractions[1]), round(n * fractions[2])
    sizes = {"train": n - valid - test, "valid": valid, "test": test}
    empty = [split for split, size in sizes.items() if size < 1]
    if empty:
        raise CorpusError(f"{n} sentences are too few for split fractions {list(fractions)}: "
                          f"the {', '.join(empty)} split(s) would be empty")
    return sizes


def record(sentence: SyntheticSentence) -> str:
    """One JSON Lines row: the text and one key per attribute (the format users bring)."""
    return json.dumps({"text": sentence.text, **sentence.attributes}, ensure_ascii=False)


def write_corpus(out_dir: str | Path, n: int, seed: int,
                 fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, Path]:
    """Generate n sentences and write train/valid/test .jsonl files into out_dir, atomically.

    The files are written into a temporary folder beside out_dir and renamed into place, so an
    interrupted run leaves no half corpus. An existing out_dir may be empty or hold a previous
    corpus (only the split files), which is replaced; a folder with other files is refused.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    sizes = split_sizes(n, fractions)
    _check_target(out_dir)
    sentences = generate(n, seed)
    tmp = _write_to_temporary(out_dir, sentences, sizes)
    _install(tmp, out_dir)
    log.debug("wrote %d sentences (seed %d) to %s", n, seed, out_dir)
    return {split: out_dir / name for split, name in SPLIT_FILES.items()}


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"output path {out_dir} exists and is not a folder")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in SPLIT_FILES.values())
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise CorpusError(f"output folder {out_dir} holds files other than a corpus "
                              f"({shown}); choose a new or empty folder")


def _write_to_temporary(out_dir: Path, sentences: list[SyntheticSentence],
                        sizes: dict[str, int]) -> Path:
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # A plain mkdir (not mkdtemp) so the folder gets the usual permissions after the rename.
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as error:
        raise CorpusError(f"cannot create the output folder {out_dir}: {error}") from None
    try:
        start = 0
        for split in SPLITS:
            chunk = sentences[start:start + sizes[split]]
            start += sizes[split]
            with open(tmp / SPLIT_FILES[split], "w", encoding="utf-8", newline="\n") as f:
                f.writelines(record(s) + "\n" for s in chunk)
                f.flush()
                os.fsync(f.fileno())  # the rename must not publish files still in the page cache
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _install(tmp: Path, target: Path) -> None:
    """Rename tmp to target; an existing target is moved aside first and deleted after."""
    old = None
    try:
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.is_dir():  # another process installed a corpus there meanwhile: keep it
            return
        if old is not None and old.is_dir():  # put the previous corpus back
            os.rename(old, target)
            old = None
        raise CorpusError(f"cannot write the corpus folder {target}: {error}") from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the default corpus


def default_root() -> Path:
    """Where ensure_corpus caches corpora: $TEXTGAN_SYNTHETIC_ROOT when set, else
    corpora/synthetic/generated/ in a checkout, else the user's cache folder.

    The variable exists for processes that cannot be patched from outside, e.g. the Jupyter
    kernel that the notebook tests start: it keeps their generated corpora out of the repo.
    """
    override = os.environ.get(SYNTHETIC_ROOT_ENV)
    if override:
        return Path(override)
    if _REPO_SYNTHETIC.is_dir():
        return _REPO_SYNTHETIC / "generated"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "textgan" / "synthetic"


def ensure_corpus(n: int, seed: int, root: Path | None = None) -> Path:
    """The folder of the synthetic corpus (n, seed), generated into `<root>/n{n}-seed{seed}/`
    on first use and reused afterwards while it is complete and current."""
    target = Path(root if root is not None else default_root()) / f"n{n}-seed{seed}"
    sizes = split_sizes(n)
    problem = _stale_reason(target, sizes, seed)
    if problem is None:
        log.debug("reusing the synthetic corpus in %s", target)
        return target
    log.info("generating the synthetic corpus (%d sentences, seed %d) into %s%s", n, seed,
             target, "" if problem == "missing" else f" (replacing it: {problem})")
    write_corpus(target, n, seed)
    return target


def _stale_reason(target: Path, sizes: dict[str, int], seed: int) -> str | None:
    """Why the cached corpus cannot be reused, or None when it can."""
    if not target.is_dir():
        return "missing"
    for split, name in SPLIT_FILES.items():
        path = target / name
        if not path.is_file():
            return f"{name} is missing"
        with open(path, "rb") as f:
            lines = sum(1 for _ in f)
        if lines != sizes[split]:
            return f"{name} has {lines} lines, expected {sizes[split]}"
    # A corpus from an older grammar has the right shape but other sentences: its first line
    # differs from what the current grammar draws first for this seed.
    with open(target / SPLIT_FILES["train"], encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
    if first != record(generate(1, seed)[0]):
        return "written by another version of the grammar"
    return None


def label_summary(paths: dict[str, Path]) -> dict[str, dict[str, object]]:
    """Per split: sentence count and label counts per attribute and per attribute combination."""
    summary: dict[str, dict[str, object]] = {}
    for split, path in paths.items():
        per_attribute: dict[str, dict[str, int]] = {}
        per_combination: dict[str, int] = {}
        count = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                count += 1
                labels = [(k, v) for k, v in row.items() if k != "text"]
                for attribute, value in labels:
                    values = per_attribute.setdefault(attribute, {})
                    values[value] = values.get(value, 0) + 1
                key = "/".join(v for _, v in labels)
                per_combination[key] = per_combination.get(key, 0) + 1
        summary[split] = {"sentences": count,
                          "labels": {a: dict(sorted(v.items())) for a, v in per_attribute.items()},
                          "combinations": dict(sorted(per_combination.items()))}
    return summary
