"""Corpora: the synthetic grammar, the shipped tiny corpus, user files and hub datasets.

    from textgan.corpora import load_corpus
    corpus = load_corpus(cfg.data)      # -> Corpus (splits train/valid/test, attributes, report)

See loading.py for the steps and corpora/README.md for the formats a user can bring.
"""

from textgan.corpora.corpus import MISSING_LABEL, TEXT, CleaningReport, Corpus
from textgan.corpora.loading import load_corpus

__all__ = ["MISSING_LABEL", "TEXT", "CleaningReport", "Corpus", "load_corpus"]
