"""Styles: a class per style attribute, as text or a mapping, checked against a model's
attributes.

    parse_style("sentiment=positive,tense=past", attributes)  # {'sentiment': 'positive', ...}
    resolve_style({"sentiment": 1}, attributes)                # {'sentiment': 'positive'}
    all_styles(attributes)                                     # every combination

"sentiment=positive,tense=past" names a class per attribute (`parse_style`); an attribute left
out is drawn from the uniform prior for each sentence by `textgan.sampling` (reconstruction,
transfer and interpolation read it from the source instead where they can). A class may also be
given by its index ("sentiment=1") when no class name of that attribute is itself a number (then
the number is read as the name), and a name matches case-insensitively when that is unambiguous.
A style the model cannot serve is a SamplingError naming the attributes and classes it knows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from textgan.errors import SamplingError

StyleSpec = str | Mapping[str, str | int] | None


def describe_attributes(attributes: Mapping[str, Sequence[str]]) -> str:
    """'sentiment (negative, positive), tense (past, present)' for messages."""
    return ", ".join(f"{name} ({', '.join(classes)})" for name, classes in attributes.items())


def style_label(style: Mapping[str, str]) -> str:
    """'sentiment=positive, tense=past': how a style is shown next to a sentence."""
    return ", ".join(f"{name}={value}" for name, value in style.items())


def parse_style(text: str, attributes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """'sentiment=positive,tense=past' -> {'sentiment': 'positive', 'tense': 'past'}.

    Empty text (or whitespace) means no attribute fixed: all are drawn from the prior.
    Raises SamplingError naming the valid attributes and classes.
    """
    style: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:  # tolerates a trailing comma and the empty style
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            example = ",".join(f"{n}={c[0]}" for n, c in attributes.items() if c) or "name=class"
            raise SamplingError(f"style item '{item}' is not name=class (e.g. '{example}'); "
                                f"this model knows {describe_attributes(attributes) or 'none'}")
        if name in style:
            raise SamplingError(f"style '{text}' gives the attribute '{name}' twice")
        style[name] = value
    return check_style(style, attributes)


def check_style(style: Mapping[str, str | int], attributes: Mapping[str, Sequence[str]]
                ) -> dict[str, str]:
    """Validate a style mapping (class names or indices); class names in attribute order."""
    if style and not attributes:
        raise SamplingError("this model has no style attributes (it was trained on an "
                            "unlabelled corpus); leave the style out")
    resolved: dict[str, str] = {}
    for name, value in style.items():
        if name not in attributes:
            raise SamplingError(f"unknown style attribute '{name}'; this model knows "
                                f"{describe_attributes(attributes)}")
        resolved[name] = _class_name(name, value, list(attributes[name]))
    return {name: resolved[name] for name in attributes if name in resolved}


def _class_name(attribute: str, value: str | int, classes: list[str]) -> str:
    numeric_names = any(c.strip().isdigit() for c in classes)
    index: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str):
        if value in classes:
            return value
        folded = [c for c in classes if c.casefold() == value.casefold()]
        if len(folded) == 1:
            return folded[0]
        # Digits are read as an index only when no class is named by digits: with classes
        # "1" and "2", "1" must mean the class "1", never the class at index 1.
        if value.isdigit() and not numeric_names:
            index = int(value)
    if index is not None and 0 <= index < len(classes):
        return classes[index]
    hint = "" if numeric_names else f" or an index 0..{len(classes) - 1}"
    raise SamplingError(f"unknown class {value!r} for the style attribute '{attribute}'; use "
                        f"one of {', '.join(classes)}{hint}")


def resolve_style(style: StyleSpec, attributes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """A style given as text, a mapping or None (= every attribute from the prior)."""
    if style is None:
        return {}
    if isinstance(style, str):
        return parse_style(style, attributes)
    if isinstance(style, Mapping):
        return check_style(style, attributes)
    raise SamplingError(f"a style is 'name=class,...' text or a mapping, got "
                        f"{type(style).__name__}")


def all_styles(attributes: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of one class per attribute, first attribute slowest ([{}] if none)."""
    return [dict(zip(attributes, combination))
            for combination in itertools.product(*attributes.values())]
