"""The judges' sizes and training knobs (`JudgeSettings`), saved with each judge and in the report.

`evaluation.judges` is the judges' front end (training for a run folder, loading, the files).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textgan.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class JudgeSettings:
    """Sizes and training knobs of both judges; saved with them and into the report.

    The defaults train both judges on the 20k-sentence synthetic corpus in well under a minute
    on two CPU cores. On a real corpus of ~115k training sentences (Yelp) the LM's epochs are
    bounded by its sample of `lm_max_sentences` (an epoch over every sentence took ~4.5 minutes
    on a slow CPU, and six of them with nothing shown made `evaluate` look hung) and the epoch
    count is what stops both judges: the time limits are guards that a slow machine should not
    reach, because a judge cut by the clock depends on the machine's speed, and so would every
    number it judges (an LM cut at 180 s kept 3.3 epochs on one machine, test perplexity 59.4,
    and one epoch on a loaded one, 101.9).
    """

    # classifier: unigrams (one row per piece) + hashed bigrams, mean-pooled, linear heads
    classifier_dim: int = 64            # size of the pooled n-gram embedding
    bigram_buckets: int = 1 << 16       # hash buckets of the bigrams (BOS/EOS included)
    # lr and epochs: at 5e-3 and 4 epochs the judge under-fitted 2,700 synthetic sentences (0.98
    # test accuracy, misreading adjectives seen 39 times); 2e-2 and 6 reach 1.0 there and on 18k
    classifier_lr: float = 2e-2
    classifier_epochs: int = 6          # at most; the best validation accuracy epoch is kept
    # seconds of training, validation included (0: no limit): a guard, not the plan (above).
    # When it runs out mid-epoch the part trained is validated like an epoch, and the best
    # validation score so far is kept.
    classifier_time_limit: float = 900.0
    # language model: GRU over the run's tokenizer, BOS -> pieces -> EOS
    lm_embedding_dim: int = 64
    lm_hidden_dim: int = 128
    lm_dropout: float = 0.1
    lm_lr: float = 3e-3
    lm_epochs: int = 6                  # at most; the best validation NLL epoch is kept
    lm_patience: int = 2                # stop after this many epochs without a better NLL
    lm_clip_norm: float = 5.0
    lm_time_limit: float = 900.0        # as classifier_time_limit
    # Training sentences of the LM, a seeded sample of the training split (0: all of them).
    # Its cost is the softmax over the vocabulary at every token; it only has to rank real text
    # above scrambled text and compare samples with the corpus, and 40k sentences do that,
    # while the whole synthetic corpus (18k training sentences) stays under the cap.
    lm_max_sentences: int = 40_000
    lm_check_sentences: int = 1000      # test sentences of the real-vs-shuffled check of the LM
    # batching
    batch_size: int = 64
    bucket_batches: int = 50            # length bucketing of training batches (textgan.data)
    score_batch_size: int = 512         # sentences per forward pass when scoring

    def __post_init__(self) -> None:
        for name in ("classifier_dim", "bigram_buckets", "classifier_epochs", "lm_embedding_dim",
                     "lm_hidden_dim", "lm_epochs", "lm_patience", "lm_check_sentences",
                     "batch_size", "bucket_batches", "score_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"JudgeSettings.{name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        for name in ("classifier_lr", "lm_lr", "lm_clip_norm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"JudgeSettings.{name} must be > 0, got {getattr(self, name)}")
        for name in ("classifier_time_limit", "lm_time_limit", "lm_max_sentences"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"JudgeSettings.{name} must be >= 0 (0: no limit), got "
                                  f"{getattr(self, name)}")
        if not 0.0 <= self.lm_dropout < 1.0:
            raise ConfigError(f"JudgeSettings.lm_dropout must be in [0, 1), got "
                              f"{self.lm_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def of(self, kind: str) -> dict[str, Any]:
        """The settings that shape one judge, "classifier" or "lm": a saved judge file is
        reused when these (and the seed, tokenizer and corpus) are the same, so changing only
        the LM's settings keeps a finished classifier."""
        own = {"classifier": ("classifier_", "bigram_"), "lm": ("lm_",)}[kind]
        return {key: value for key, value in self.to_dict().items()
                if key.startswith(own) or key in _SHARED_SETTINGS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str) -> JudgeSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CheckpointError(f"{origin}: unknown judge setting(s) {unknown}; it was written "
                                  "by another textgan version")
        return cls(**values)


# settings of both judges (score_batch_size too: it batches the validation that picks the epoch)
_SHARED_SETTINGS = ("batch_size", "bucket_batches", "score_batch_size")
