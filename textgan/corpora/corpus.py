"""The Corpus: cleaned, split and labelled sentences, the input of the tokenizer and the batches.

Every loader (synthetic, local files, one-file-per-class, hub) ends in this one shape:

- `splits`: a `datasets.DatasetDict` with the splits "train", "valid" and "test". Each has a
  string column "text" and one int64 column per attribute holding the class index, or
  MISSING_LABEL (-1) where the sentence has no label for that attribute (semi-supervised data).
  A missing label is never a class.
- `attributes`: attribute name -> class names in index order, e.g.
  {"sentiment": ["negative", "positive"], "tense": ["past", "present"]}. Empty when unlabelled.
- `report`: what cleaning did, in counts, so runs can log and save it.
- `empty_splits`: why a held-out split is empty, where one is (loading allows it; the stages
  that need the split refuse it with that message).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

TEXT = "text"
MISSING_LABEL = -1
SPLITS = ("train", "valid", "test")


@dataclass
class CleaningReport:
    """Counts of what loading and cleaning did, per reason (e.g. {"empty": 3, "duplicate": 10})."""

    read: int = 0                                   # sentences read from the source
    added: int = 0                                  # extra sentences from sentence splitting
    dropped: dict[str, int] = field(default_factory=dict)
    skipped_lines: list[int] = field(default_factory=list)  # first undecodable line numbers
    kept: dict[str, int] = field(default_factory=dict)      # split -> sentences

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items()) if n)
        kept = ", ".join(f"{split} {n}" for split, n in self.kept.items())
        added = f"; {self.added} more from sentence splitting" if self.added else ""
        return f"read {self.read} sentences{added}; dropped {dropped or 'none'}; kept {kept}"


@dataclass
class Corpus:
    splits: datasets.DatasetDict
    attributes: dict[str, list[str]]
    report: CleaningReport = field(default_factory=CleaningReport)
    source: str = ""
    # split -> why it is empty (a corpus too small to carve it, a file emptied by cleaning), as
    # the one-line error a stage that needs the split raises; absent for a split with sentences
    empty_splits: dict[str, str] = field(default_factory=dict)

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attributes)

    def label_name(self, attribute: str, index: int) -> str:
        return "?" if index == MISSING_LABEL else self.attributes[attribute][index]
