"""Semi-supervised training data: which training sentences keep their labels.

    keep = choose_labelled(labels, fraction=0.01, count=0, seed=cfg.data.split_seed)
    train = hide_labels(train, attribute_names, keep, tag=[fraction, count, seed])

Why: Hu et al. (2017) train the controllable generator with a few labelled sentences and many
unlabelled ones. data.label_fraction (or data.labelled_sentences) keeps the labels of a subset of
the training split and marks every other training label MISSING_LABEL, so the same corpus can
be trained at 100%, 10% or 1% labels and the runs compared; valid, test and the evaluation
judges still see every label (the stages call this on their tokenised training split only,
`prepare.prepare_data`; the judges load the corpus themselves).

The subset is class-balanced: the candidates (rows with at least one known label; a row with
none has nothing to keep) are grouped by their joint label tuple over all attributes (a missing
label is part of the tuple, so a partly labelled row is a stratum of its own kind), and every
stratum gets an equal quota; a stratum smaller than its quota gives all it has and the remainder
is shared among the others, one more each to the largest strata where it does not divide evenly.
The total is exactly `count` when that is set, else round(fraction x candidates) (half up), and
at least one per stratum. Within a stratum the rows come first-come in one permutation drawn by
numpy's PCG64 seeded with (seed, a stream tag): the same rows on every platform, every process
of a data-parallel run and every resume, and a smaller fraction keeps a subset of what a larger
one keeps when the quotas are not capped. Global RNG state is neither read nor changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from textgan.corpora.bars import datasets_bars
from textgan.corpora.corpus import MISSING_LABEL
from textgan.errors import CorpusError

# A stream of its own beside split_seed's other uses (carving, data.valid_sample): "lab"
_STREAM = 0x6C6162


def label_matrix(ds: datasets.Dataset, attribute_names: Sequence[str]) -> np.ndarray:
    """(N, A) int64: one column per attribute, MISSING_LABEL where unknown (read as columns)."""
    if not attribute_names:
        return np.zeros((len(ds), 0), dtype=np.int64)
    columns = ds.select_columns(list(attribute_names)).with_format("numpy")[:]
    return np.stack([np.asarray(columns[name], dtype=np.int64) for name in attribute_names], 1)


def subset_size(candidates: int, strata: int, fraction: float, count: int) -> int:
    """Labelled rows to keep: `count` when set (above 0), else round(fraction x candidates), half
    up, at least one per stratum and at most every candidate."""
    if count > 0:
        if count > candidates:
            raise CorpusError(
                f"data.labelled_sentences={count} is more than the {candidates:,} labelled "
                "training sentences (after cleaning and data.max_tokens); set it to at most "
                f"{candidates}, or to 0 to keep data.label_fraction of them")
        return count
    size = math.floor(fraction * candidates + 0.5)  # round() would give 0 for 0.5
    return min(candidates, max(size, strata if fraction > 0 else 0))


def stratum_quotas(sizes: np.ndarray, total: int) -> np.ndarray:
    """Rows to take from each stratum (int64, like `sizes`): equal shares of `total`, a stratum
    smaller than its share gives all it has and the others share the remainder; what does not
    divide evenly goes one each to the largest open strata (ties: the first)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    quotas = np.zeros_like(sizes)
    open_ = np.ones(len(sizes), dtype=bool)
    left = min(int(total), int(sizes.sum()))
    while open_.any():
        share = left // int(open_.sum())
        full = open_ & (sizes <= share)
        if not full.any():
            break
        quotas[full] = sizes[full]
        left -= int(sizes[full].sum())
        open_ &= ~full
    if open_.any():
        share, extra = divmod(left, int(open_.sum()))
        quotas[open_] = share
        # open strata are larger than the share, so each has room for one more
        largest = [i for i in np.lexsort((np.arange(len(sizes)), -sizes)) if open_[i]]
        quotas[largest[:extra]] += 1
    return quotas


def choose_labelled(labels: np.ndarray, *, fraction: float = 1.0, count: int = 0,
                    seed: int = 0) -> np.ndarray:
    """(N,) bool: the rows of `labels` ((N, A) int64, MISSING_LABEL where unknown) that keep
    their labels, as the module doc says. Rows without any label are never chosen."""
    labels = np.asarray(labels, dtype=np.int64)
    keep = np.zeros(len(labels), dtype=bool)
    candidates = np.flatnonzero((labels != MISSING_LABEL).any(axis=1))
    if not len(candidates):
        raise CorpusError("no training sentence has a label, so data.label_fraction and "
                          "data.labelled_sentences have nothing to keep; set "
                          "data.label_fraction=1 and data.labelled_sentences=0, or label some "
                          "training sentences")
    # np.unique sorts the tuples: the strata's order, hence the draw, depends on labels only
    _, stratum = np.unique(labels[candidates], axis=0, return_inverse=True)
    stratum = stratum.reshape(-1)
    sizes = np.bincount(stratum)
    quotas = stratum_quotas(sizes, subset_size(len(candidates), len(sizes), fraction, count))
    # one permutation of the candidates; each stratum takes its first `quota` rows in it
    order = np.random.default_rng([seed, _STREAM]).permutation(len(candidates))
    drawn = stratum[order]
    keep[candidates[order[_rank_within_stratum(drawn, sizes) < quotas[drawn]]]] = True
    return keep


def _rank_within_stratum(stratum: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions share its stratum (0, 1, 2, ...)."""
    by_stratum = np.argsort(stratum, kind="stable")
    starts = np.cumsum(sizes) - sizes
    rank = np.empty(len(stratum), dtype=np.int64)
    rank[by_stratum] = np.arange(len(stratum)) - np.repeat(starts, sizes)
    return rank


def kept_per_class(labels: np.ndarray, keep: np.ndarray,
                   attributes: dict[str, list[str]]) -> str:
    """'sentiment negative 553, positive 553; tense ...': the kept labels, counted per class."""
    parts = []
    for column, (name, classes) in enumerate(attributes.items()):
        counts = np.bincount(labels[keep, column][labels[keep, column] != MISSING_LABEL],
                             minlength=len(classes))
        parts.append(f"{name} " + ", ".join(f"{label} {int(n):,}"
                                           for label, n in zip(classes, counts)))
    return "; ".join(parts)


def _hide_batch(*columns_and_indices: np.ndarray, keep: np.ndarray,
                names: Sequence[str]) -> dict[str, np.ndarray]:
    *columns, indices = columns_and_indices
    hidden = ~keep[np.asarray(indices)]
    return {name: np.where(hidden, MISSING_LABEL, np.asarray(column, dtype=np.int64))
            for name, column in zip(names, columns)}


def hide_labels(ds: datasets.Dataset, attribute_names: Sequence[str], keep: np.ndarray, *,
                tag: Sequence[object]) -> datasets.Dataset:
    """The dataset with every label of the rows outside `keep` set to MISSING_LABEL; the other
    columns and the row order as they were. `tag` is what `keep` depends on besides the data
    (fraction, count, seed): with the dataset's fingerprint it names the result, so datasets
    need not hash `keep`, and a resumed run finds the same cache file."""
    names = list(attribute_names)
    fingerprint = Hasher.hash(["textgan-label-subset-v1", ds._fingerprint, names, *tag])
    with datasets_bars(len(ds)):
        # only the label columns are read and written; ids and text stay arrow, untouched
        return ds.with_format("numpy").map(
            _hide_batch, batched=True, with_indices=True, input_columns=names,
            fn_kwargs={"keep": keep, "names": names}, features=ds.features,
            new_fingerprint=fingerprint, desc="textgan: hiding training labels"
        ).with_format(None)
