"""Style markers: words that give a sentence's style away, hidden from the encoder
(`model.style_marker_salience`).

    markers = salient_tokens(dataset, attribute_names, num_classes, vocab_size=V, threshold=15)
    encoder.set_style_markers(markers)  # (V,) bool, saved with the encoder's weights
    encoder(tokens, lengths)            # reads "the food was <unk> ." for "the food was great ."

Why: with attention the generator can copy every word of its source, the style words too, so a
model trained to reconstruct learns to copy them and style transfer keeps the source's style (on
Yelp the pretrained model's transfers reached 4% accuracy). Li et al. 2018 ("Delete, retrieve,
generate") delete the words that mark a style before the source is encoded; the generator must
then write them from the style code c, which it learns by plain reconstruction: with c flipped,
the same slots get words of the other style, and everything else is still copied.

A word's salience for class v is (count in v + 1) / (count in the other classes + 1) over the
labelled training sentences (Li et al.'s smoothing of 1), and it is a marker when its salience
for some class of some attribute reaches the threshold (Li et al. used 15 on Yelp). The hidden
word becomes <unk>, not a deletion, so the generator's attention still sees where a style word
stood. Soft sentences are masked in expectation: a position's probability mass on markers moves
to <unk> (`mask_soft`), which keeps the independence and cycle losses differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from textgan.tokenizer import SPECIAL_IDS, UNK_ID

SMOOTHING = 1.0  # Li et al. 2018's lambda


def salience(counts: np.ndarray) -> np.ndarray:
    """Per-class token counts (K, V) -> salience (K, V): (count in class + 1) / (count in the
    other classes + 1)."""
    others = counts.sum(axis=0, keepdims=True) - counts
    return (counts + SMOOTHING) / (others + SMOOTHING)


def class_counts(ids: Sequence[Sequence[int]], labels: Sequence[int], num_classes: int,
                 vocab_size: int) -> np.ndarray:
    """How often each token occurs in the sentences of each class (K, V); sentences whose label
    is missing (negative) are not counted."""
    counts = np.zeros((num_classes, vocab_size), dtype=np.int64)
    for label in range(num_classes):
        rows = [row for row, row_label in zip(ids, labels) if row_label == label]
        if rows:
            counts[label] = np.bincount(np.concatenate([np.asarray(r, dtype=np.int64)
                                                        for r in rows]),
                                        minlength=vocab_size)[:vocab_size]
    return counts


def salient_tokens(dataset, attribute_names: Sequence[str], num_classes: Sequence[int], *,
                   vocab_size: int, threshold: float, ids_column: str = "ids") -> Tensor:
    """The tokens (V,) bool whose salience for some class of some attribute reaches
    `threshold`, counted over a tokenised split (a datasets.Dataset with an ids column and one
    label column per attribute). Special tokens (pad, unk, bos, eos) are never markers."""
    if threshold <= 0:
        raise ValueError(f"the salience threshold must be positive, got {threshold}")
    table = dataset.select_columns([ids_column, *attribute_names]).with_format(None)[:]
    markers = np.zeros(vocab_size, dtype=bool)
    for name, classes in zip(attribute_names, num_classes):
        counts = class_counts(table[ids_column], table[name], classes, vocab_size)
        markers |= (salience(counts) >= threshold).any(axis=0)
    markers[list(SPECIAL_IDS.values())] = False
    return torch.from_numpy(markers)


def mask_tokens(tokens: Tensor, markers: Tensor) -> Tensor:
    """Token ids (...) with every marker replaced by <unk>; markers (V,) bool."""
    return tokens.masked_fill(markers[tokens], UNK_ID)


def mask_soft(probs: Tensor, markers: Tensor) -> Tensor:
    """Distributions over the vocabulary (..., V) with the mass on markers moved to <unk>, so
    the expected embedding is the hard masking's in expectation."""
    is_marker = markers.to(probs.dtype)  # (V,)
    masked = probs * (1.0 - is_marker)
    masked[..., UNK_ID] += probs @ is_marker  # the mass on markers, (...,)
    return masked
