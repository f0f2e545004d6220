"""Evaluation of generated text, one module per concern.

    from textgan.evaluation import self_bleu, set_bleu, distinct, novelty  # diversity.py
    self_bleu(samples, max_ngram_order=4).score    # leave-one-out self-BLEU-4, 0-100
    set_bleu(samples, test_sentences).score        # BLEU-4 of samples against the test set
    distinct(samples)                              # {"distinct_1": .., "distinct_2": .., ..}
    novelty(samples, train_sentences)              # share of samples not copied from training

Importing the package must not pull in torch (scoring text needs none, and torch costs over a
second to import), so only pure-Python metrics are re-exported here; import modules that need
a model from the module itself.
"""

from textgan.evaluation.diversity import (BLEUResult, SelfBLEU, distinct, distinct_n, novelty,
                                         self_bleu, set_bleu)

__all__ = ["BLEUResult", "SelfBLEU", "distinct", "distinct_n", "novelty", "self_bleu",
           "set_bleu"]
