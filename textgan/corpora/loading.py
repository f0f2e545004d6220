"""load_corpus: from data.source to a cleaned, split, labelled Corpus.

    from textgan.config import load_config
    from textgan.corpora import load_corpus
    corpus = load_corpus(load_config("tiny").data)

The steps, each in its own module:

1. sources.py resolves data.source and reads every file or hub split into the raw shape
   (raw.py): text, string labels, and where each row came from;
2. cleaning.py cleans train, valid, test, then the extra unlabelled files, in that order, so
   deduplication keeps the earliest copy (test never repeats train);
3. labels.py fixes the classes of each attribute and turns labels into class indices;
4. splitting.py carves the splits the source did not provide out of train; the extra unlabelled
   sentences join train after that, so valid and test stay labelled data.

Every user mistake surfaces as a CorpusError naming the file, line and value.
"""

from __future__ import annotations

import logging

import datasets

from textgan.config import DataConfig
from textgan.corpora.cleaning import Cleaner, describe_drops
from textgan.corpora.corpus import MISSING_LABEL, SPLITS, TEXT, CleaningReport, Corpus
from textgan.corpora.labels import encode_labels, infer_classes
from textgan.corpora.raw import align, value_counts
from textgan.corpora.sources import resolve_source
from textgan.corpora.splitting import carve, held_out_size
from textgan.errors import CorpusError

logger = logging.getLogger(__name__)


def load_corpus(cfg: DataConfig) -> Corpus:
    """The corpus data.source names, cleaned and split as DataConfig says (see the module doc)."""
    report = CleaningReport()
    raw = resolve_source(cfg, report)
    cleaner = Cleaner(cfg, report)

    labelled: dict[str, datasets.Dataset] = {}
    for role in SPLITS:
        if role in raw.splits:
            labelled[role] = cleaner.clean(align(raw.splits[role], raw.attributes), role)
    unlabelled = None
    if raw.unlabelled:
        unlabelled = cleaner.clean(align(raw.unlabelled, raw.attributes), "unlabelled")

    if len(labelled["train"]) == 0:
        raise CorpusError(
            f"{raw.name}: no training sentences left after cleaning: read {report.read}, "
            f"dropped {describe_drops(report, cfg)}. Check data.text_column, data.min_words "
            "and data.max_words")

    classes = infer_classes(labelled, raw.attributes, raw.label_values, raw.origins, raw.name)
    encoded = {role: encode_labels(ds, classes, role) for role, ds in labelled.items()}
    missing = [role for role in SPLITS if role not in encoded]
    too_few = _too_few_to_carve(raw.name, len(encoded["train"]), cfg, missing)
    if missing:
        carved = carve(encoded.pop("train"),
                       cfg.valid_fraction if "valid" in missing else None,
                       cfg.test_fraction if "test" in missing else None, cfg.split_seed,
                       valid_size=cfg.valid_size, test_size=cfg.test_size)
        encoded.update(carved)
        logger.info("%s: carved %s from train (seed %d)", raw.name,
                    ", ".join(f"{role} {len(carved[role])}" for role in missing), cfg.split_seed)
    if unlabelled is not None and len(unlabelled):
        encoded["train"] = datasets.concatenate_datasets(
            [encoded["train"], encode_labels(unlabelled, classes, "unlabelled")])

    splits = datasets.DatasetDict(
        {role: encoded[role].select_columns([TEXT, *classes]) for role in SPLITS})
    report.kept = {role: len(splits[role]) for role in SPLITS}
    empty = {role: _why_empty(raw.name, role, cfg, missing, too_few)
             for role in ("valid", "test") if len(splits[role]) == 0}
    # One warning: a corpus too small to carve empties both held-out splits for one reason.
    # Not an error here: a stage that needs a split refuses its absence (Corpus.empty_splits).
    for message in dict.fromkeys(empty.values()):
        logger.warning("%s", message)
    corpus = Corpus(splits=splits, attributes=classes, report=report, source=cfg.source,
                    empty_splits=empty)
    _log_corpus(raw.name, corpus)
    return corpus


# A bound on the search of `sentences_needed`: with fractions it stops at 3 or a few more (each
# fraction above 0 carves at least one sentence from 3 on), with sizes at their sum plus one.
_MOST_NEEDED = 10_000


def sentences_needed(cfg: DataConfig, missing: list[str]) -> int:
    """The fewest cleaned training sentences from which the `missing` splits (valid, test) are
    carved with at least one sentence each and leave one or more for train; a split whose share
    is zero (data.*_fraction 0 and no size) is not counted, as the user asked for none."""
    fractions = {"valid": (cfg.valid_fraction, cfg.valid_size),
                 "test": (cfg.test_fraction, cfg.test_size)}
    wanted = [fractions[role] for role in missing if fractions[role] != (0.0, 0)]
    if not wanted:
        return 1
    fixed = sum(size for _, size in wanted)
    for total in range(max(fixed + 1, 2), _MOST_NEEDED + fixed):
        held = [held_out_size(total, fraction, size) for fraction, size in wanted]
        if min(held) >= 1 and total - sum(held) >= 1:
            return total
    return _MOST_NEEDED + fixed


def _too_few_to_carve(name: str, total: int, cfg: DataConfig, missing: list[str]) -> str | None:
    """Why the `missing` splits carved from `total` training sentences will come out empty, or
    None when there are enough: the message a stage needing them gives, where it would otherwise
    blame data.max_tokens."""
    needed = sentences_needed(cfg, missing) if missing else 1
    if total >= needed:
        return None
    splits = " and ".join("validation" if role == "valid" else role for role in missing)
    settings = ", ".join(f"data.{role}_size={getattr(cfg, f'{role}_size')}"
                         if getattr(cfg, f"{role}_size") else
                         f"data.{role}_fraction={getattr(cfg, f'{role}_fraction')}"
                         for role in missing)
    return (f"{name}: {total} sentence{'s' if total != 1 else ''} after cleaning, too few to "
            f"carve the {splits} split{'s' if len(missing) > 1 else ''} from: at least {needed} "
            f"are needed (one or more for each split, with {settings}). Add sentences, or give "
            "the held-out sentences as files (a folder with train, valid and test files)")


def _why_empty(name: str, role: str, cfg: DataConfig, missing: list[str],
               too_few: str | None) -> str:
    """The message for an empty held-out split (Corpus.empty_splits)."""
    if role not in missing:
        return (f"{name}: the {role} split is empty: no sentence of its file is left after "
                "cleaning (see the counts of what cleaning dropped)")
    if getattr(cfg, f"{role}_fraction") == 0 and getattr(cfg, f"{role}_size") == 0:
        return (f"{name}: the {role} split is empty: data.{role}_fraction=0 carves none; set "
                f"data.{role}_fraction or data.{role}_size")
    return too_few or f"{name}: the {role} split is empty"


def _log_corpus(name: str, corpus: Corpus) -> None:
    logger.info("%s: %s", name, corpus.report.summary())
    if corpus.report.skipped_lines:
        logger.info("%s: undecodable lines skipped, first: %s", name,
                    ", ".join(map(str, corpus.report.skipped_lines)))
    if not corpus.attributes:
        logger.info("%s: unlabelled (no attributes)", name)
    for attribute, classes in corpus.attributes.items():
        per_split = []
        for role, ds in corpus.splits.items():
            counts = value_counts(ds, attribute)
            labelled = len(ds) - counts.get(MISSING_LABEL, 0)
            per_class = ", ".join(f"{label} {counts.get(index, 0)}"
                                  for index, label in enumerate(classes))
            per_split.append(f"{role} {labelled}/{len(ds)} labelled ({per_class})")
        logger.info("attribute %s: classes %s; %s", attribute, ", ".join(classes),
                    "; ".join(per_split))
