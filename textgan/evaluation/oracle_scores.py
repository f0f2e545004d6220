"""Exact scores of generated text on the synthetic corpus, by its oracle (no learned judge).

    scores = score_samples(sample_by_style(model, 500))        # grammatical, acc per attribute
    scores = score_transfers(sources, transfer(model, sources, "tense=past"), {"tense": "past"})

Every fraction is over ALL sentences scored: an ungrammatical sentence counts as wrong for every
attribute and as content lost, so no score can look good by rejecting the hard cases. Content
is the oracle's slot values (who, what, which detail), which must all equal the source's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textgan.corpora.oracle import Parse, parse_many
from textgan.sampling import SampledSentence


def _fraction(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def score_samples(samples: Sequence[SampledSentence]) -> dict[str, float]:
    """Oracle scores of conditional samples: grammatical, acc_<attribute> (the parsed value
    equals the requested one), and per class value acc_<attribute>=<value>."""
    parses = parse_many(sample.text for sample in samples)
    scores = {"n": float(len(samples)),
              "grammatical": _fraction(sum(p.grammatical for p in parses), len(parses))}
    by_value: dict[str, list[int]] = {}
    for sample, parsed in zip(samples, parses):
        for attribute, value in sample.style.items():
            hit = int(parsed.grammatical and parsed.attributes.get(attribute) == value)
            for key in (f"acc_{attribute}", f"acc_{attribute}={value}"):
                by_value.setdefault(key, []).append(hit)
    scores.update({key: _fraction(sum(hits), len(hits)) for key, hits in sorted(by_value.items())})
    return scores


def score_transfers(sources: Sequence[str], outputs: Sequence[str],
                    requested: Mapping[str, str]) -> dict[str, float]:
    """Oracle scores of style transfer from grammatical `sources` to `outputs`.

    grammatical; acc (every requested attribute has its requested value); content (every slot
    equals the source's); other_kept (every attribute not requested keeps the source's value);
    all (acc, content and other_kept together).
    """
    if len(sources) != len(outputs):
        raise ValueError(f"{len(sources)} sources but {len(outputs)} outputs")
    source_parses, output_parses = parse_many(sources), parse_many(outputs)
    counts = dict.fromkeys(("grammatical", "acc", "content", "other_kept", "all"), 0)
    for source, output in zip(source_parses, output_parses):
        if not source.grammatical:
            raise ValueError("score_transfers needs grammatical sources (the oracle rejected "
                             "one): content and kept attributes are defined by its parse")
        verdict = _transfer_verdict(source, output, requested)
        for key, hit in verdict.items():
            counts[key] += hit
    scores = {"n": float(len(sources))}
    scores.update({key: _fraction(hits, len(sources)) for key, hits in counts.items()})
    return scores


def _transfer_verdict(source: Parse, output: Parse, requested: Mapping[str, str]
                      ) -> dict[str, bool]:
    if not output.grammatical:
        return dict.fromkeys(("grammatical", "acc", "content", "other_kept", "all"), False)
    acc = all(output.attributes[name] == value for name, value in requested.items())
    content = output.content == source.content
    other = all(output.attributes[name] == value for name, value in source.attributes.items()
                if name not in requested)
    return {"grammatical": True, "acc": acc, "content": content, "other_kept": other,
            "all": acc and content and other}
