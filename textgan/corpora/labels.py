"""Label values (strings in the raw data) to class indices (int64, MISSING_LABEL where unknown).

The classes of an attribute are data.label_values[attribute] when set (in that order; any other
value anywhere is an error), else the distinct values of the training split, sorted (numerically
when they are all integers, so "2" < "10"). A value in valid/test that train never shows has no
class and is an error, as is an attribute with fewer than two classes. Inferred classes that
spell labels two ways (numbers beside words, as 0, 1, "neg", "pos"; or "1" beside "01") are an
error too: they would be more classes than the user meant, and which number is which word cannot
be guessed; data.label_values keeps them as they are.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence

import datasets

from textgan.corpora.bars import datasets_bars
from textgan.corpora.corpus import MISSING_LABEL, TEXT
from textgan.corpora.raw import BOOKKEEPING, Origins, first_rows, value_counts
from textgan.errors import CorpusError

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"[+-]?\d+")
_MANY_CLASSES = 50  # more than this inferred classes: likely an id or a free-text column


def sorted_classes(values: Sequence[str]) -> list[str]:
    if all(_INTEGER.fullmatch(value) for value in values):
        return sorted(values, key=int)
    return sorted(values)


def infer_classes(splits: Mapping[str, datasets.Dataset], attributes: Sequence[str],
                  label_values: Mapping[str, Sequence[str]], origins: Origins, source: str
                  ) -> dict[str, list[str]]:
    """attribute -> class names in index order, checked against every labelled split.

    `splits` holds the labelled data of each role present, train first.
    """
    unknown_attributes = [name for name in label_values if name not in attributes]
    if unknown_attributes:
        raise CorpusError(
            f"{source}: data.label_values names attribute(s) "
            f"{', '.join(map(repr, unknown_attributes))}, but the corpus has "
            f"{', '.join(map(repr, attributes)) or 'no attributes'}")
    classes: dict[str, list[str]] = {}
    for attribute in attributes:
        seen = {role: {value for value in value_counts(ds, attribute) if value is not None}
                for role, ds in splits.items()}
        configured = label_values.get(attribute)
        if configured is not None:
            allowed = list(configured)
            for role, values in seen.items():
                _refuse_unknown(splits[role], attribute, values - set(allowed), origins,
                                f"allowed: {', '.join(allowed)} (data.label_values.{attribute})")
        else:
            allowed = sorted_classes(sorted(seen["train"]))
            _refuse_mixed_spellings(splits["train"], attribute, allowed, origins, source)
            for role, values in seen.items():
                _refuse_unknown(
                    splits[role], attribute, values - set(allowed), origins,
                    f"the {role} split has it but train does not, so it has no class "
                    f"(train has: {', '.join(allowed) or 'none'}); fix the label or list every "
                    f"class in data.label_values.{attribute}")
        if not allowed:
            raise CorpusError(f"{source}: attribute {attribute!r} has no labels in the training "
                              "split; remove it from data.label_columns or label some sentences")
        if len(allowed) == 1:
            places = first_rows(splits["train"], attribute, set(allowed), origins, limit=1)
            raise CorpusError(
                f"{source}: attribute {attribute!r} has a single class {allowed[0]!r} "
                f"(e.g. {places[0] if places else 'data.label_values'}); a style attribute "
                "needs at least two. Remove it from data.label_columns, or add sentences of its "
                "other classes")
        if configured is None and len(allowed) > _MANY_CLASSES:
            logger.warning("%s: attribute %r has %d classes; if it is not a label (an id, a "
                           "date), list the real ones in data.label_columns", source, attribute,
                           len(allowed))
        classes[attribute] = allowed
    return classes


def _number(value: str) -> float | None:
    """The value of a label written as a finite number ("1", "01", "+1", "0.5"), else None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _refuse_mixed_spellings(ds: datasets.Dataset, attribute: str, classes: Sequence[str],
                            origins: Origins, source: str) -> None:
    """Refuse inferred classes that spell labels two ways: numbers beside words (0, 1, "neg",
    "pos" in one jsonl: four classes where two were surely meant, and no way to tell which number
    is which word), or one number written twice ("1" and "01"). data.label_values accepts them
    as they are."""
    numbers = {value: _number(value) for value in classes}
    numeric = [value for value in classes if numbers[value] is not None]
    words = [value for value in classes if numbers[value] is None]
    keep = (f"write every {attribute!r} label one way, or list the classes in "
            f"data.label_values.{attribute} to keep them as {len(classes)} classes")
    if numeric and words:
        example = "; ".join(first_rows(ds, attribute, {numeric[0]}, origins, limit=1)
                            + first_rows(ds, attribute, {words[0]}, origins, limit=1))
        raise CorpusError(
            f"{source}: attribute {attribute!r} mixes number labels ({_shown(numeric)}) with "
            f"word labels ({_shown(words)}), e.g. {example}; {keep}")
    by_value: dict[float, list[str]] = {}
    for value in numeric:
        by_value.setdefault(numbers[value], []).append(value)
    twice = [spellings for spellings in by_value.values() if len(spellings) > 1]
    if twice:
        example = "; ".join(place for value in twice[0][:2]
                            for place in first_rows(ds, attribute, {value}, origins, limit=1))
        raise CorpusError(
            f"{source}: attribute {attribute!r} writes one number several ways "
            f"({', '.join(map(repr, twice[0]))}), e.g. {example}; {keep}")


def _shown(values: Sequence[str], limit: int = 6) -> str:
    more = f", ... {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(map(repr, values[:limit])) + more


def _refuse_unknown(ds: datasets.Dataset, attribute: str, unknown: set[str], origins: Origins,
                    explanation: str) -> None:
    if not unknown:
        return
    places = first_rows(ds, attribute, unknown, origins)
    raise CorpusError(f"unknown {attribute!r} label at {'; '.join(places)}: {explanation}")


def _encode_batch(batch: dict[str, list], classes: dict[str, list[str]]) -> dict[str, list]:
    out = dict(batch)
    for attribute, names in classes.items():
        index = {name: position for position, name in enumerate(names)}
        # a value outside `names` was refused by infer_classes; None is a missing label
        out[attribute] = [MISSING_LABEL if value is None else index[value]
                          for value in batch[attribute]]
    return out


def encode_labels(ds: datasets.Dataset, classes: dict[str, list[str]], name: str
                  ) -> datasets.Dataset:
    """String labels -> int64 class indices; None -> MISSING_LABEL."""
    features = datasets.Features({TEXT: datasets.Value("string")})
    features.update({attribute: datasets.Value("int64") for attribute in classes})
    features.update({column: ds.features[column] for column in BOOKKEEPING})
    with datasets_bars(len(ds)):
        return ds.map(_encode_batch, batched=True, fn_kwargs={"classes": classes},
                      features=features, desc=f"textgan: labelling {name}")
