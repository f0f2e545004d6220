"""Oracle scores of samples and transfers on hand-picked synthetic sentences."""

from __future__ import annotations

import pytest

from textgan.corpora.oracle import parse
from textgan.evaluation.oracle_scores import score_samples, score_transfers
from textgan.sampling import SampledSentence

NEG_PAST = "my nephew was annoyed with the speaker ."
NEG_PRESENT = "my nephew is annoyed with the speaker ."
POS_PAST = "my nephew was thrilled with the speaker ."
OTHER_ITEM = "my nephew was annoyed with the steak ."
BROKEN = "my nephew was annoyed with ."


def test_hand_sentences_parse_as_the_tests_assume():
    assert parse(NEG_PAST).attributes == {"sentiment": "negative", "tense": "past"}
    assert parse(NEG_PRESENT).attributes == {"sentiment": "negative", "tense": "present"}
    assert parse(POS_PAST).attributes == {"sentiment": "positive", "tense": "past"}
    assert parse(OTHER_ITEM).content != parse(NEG_PAST).content
    assert not parse(BROKEN).grammatical


def test_sample_scores_count_ungrammatical_samples_as_wrong():
    past_negative = {"sentiment": "negative", "tense": "past"}
    samples = [SampledSentence(NEG_PAST, past_negative),
               SampledSentence(NEG_PRESENT, past_negative),   # tense wrong
               SampledSentence(POS_PAST, past_negative),      # sentiment wrong
               SampledSentence(BROKEN, past_negative)]        # wrong on both
    scores = score_samples(samples)
    assert scores["n"] == 4 and scores["grammatical"] == 0.75
    assert scores["acc_sentiment"] == 0.5 and scores["acc_tense"] == 0.5
    assert scores["acc_sentiment=negative"] == 0.5 and "acc_sentiment=positive" not in scores


def test_transfer_scores_by_hand():
    sources = [NEG_PAST, NEG_PAST, NEG_PAST, NEG_PAST]
    outputs = [POS_PAST,                                   # perfect
               "my nephew is thrilled with the speaker .",  # tense not kept
               "my nephew was thrilled with the steak .",   # content lost
               BROKEN]                                      # nothing counts
    scores = score_transfers(sources, outputs, {"sentiment": "positive"})
    assert scores == {"n": 4.0, "grammatical": 0.75, "acc": 0.75, "content": 0.5,
                      "other_kept": 0.5, "all": 0.25}


def test_transfer_scores_refuse_ungrammatical_sources_and_length_mismatch():
    with pytest.raises(ValueError, match="grammatical sources"):
        score_transfers([BROKEN], [POS_PAST], {"sentiment": "positive"})
    with pytest.raises(ValueError, match="1 sources but 2 outputs"):
        score_transfers([NEG_PAST], [POS_PAST, POS_PAST], {"sentiment": "positive"})
