"""Style markers hidden from the encoder (model.style_marker_salience, textgan.models.markers):
salience on hand-counted cases, the masking of hard and soft sentences, and an encoder that
cannot tell two sentences apart that differ only in a marker."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from textgan.config import ModelConfig
from textgan.models import Encoder
from textgan.models.markers import (class_counts, mask_soft, mask_tokens, salience,
                                    salient_tokens)
from textgan.tokenizer import EOS_ID, UNK_ID

V = 10
GOOD, BAD, FOOD, THE = 4, 5, 6, 7


def test_salience_is_smoothed_count_in_class_over_count_elsewhere():
    counts = np.array([[0, 0, 0, 0, 30, 1, 10, 0, 0, 0],
                       [0, 0, 0, 0, 0, 20, 12, 0, 0, 0]])
    s = salience(counts)
    assert s[0, GOOD] == pytest.approx(31 / 1) and s[1, GOOD] == pytest.approx(1 / 31)
    assert s[1, BAD] == pytest.approx(21 / 2)
    assert s[0, FOOD] == pytest.approx(11 / 13)


def test_class_counts_skip_sentences_without_a_label():
    ids = [[GOOD, FOOD, EOS_ID], [BAD, EOS_ID], [GOOD, GOOD, EOS_ID]]
    counts = class_counts(ids, [1, 0, -1], 2, V)
    assert counts[1, GOOD] == 1 and counts[0, BAD] == 1 and counts[:, GOOD].sum() == 1


def _split(rows: list[tuple[list[int], int]]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"ids": [r for r, _ in rows],
                                       "sentiment": [label for _, label in rows]})


def test_salient_tokens_pick_the_words_of_one_class_and_never_special_ones():
    rows = ([([THE, FOOD, GOOD, EOS_ID], 1)] * 20 + [([THE, FOOD, BAD, EOS_ID], 0)] * 20)
    markers = salient_tokens(_split(rows), ["sentiment"], [2], vocab_size=V, threshold=15)
    assert markers.dtype == torch.bool and markers.shape == (V,)
    assert markers.nonzero().flatten().tolist() == [GOOD, BAD]  # EOS is in every sentence
    # at a threshold above 21/1 neither is salient enough
    assert not salient_tokens(_split(rows), ["sentiment"], [2], vocab_size=V,
                              threshold=22).any()
    with pytest.raises(ValueError, match="positive"):
        salient_tokens(_split(rows), ["sentiment"], [2], vocab_size=V, threshold=0)


def _markers() -> torch.Tensor:
    markers = torch.zeros(V, dtype=torch.bool)
    markers[[GOOD, BAD]] = True
    return markers


def test_mask_tokens_reads_markers_as_unk():
    tokens = torch.tensor([[THE, FOOD, GOOD, EOS_ID], [BAD, EOS_ID, 0, 0]])
    assert mask_tokens(tokens, _markers()).tolist() == [[THE, FOOD, UNK_ID, EOS_ID],
                                                        [UNK_ID, EOS_ID, 0, 0]]


def test_mask_soft_moves_the_mass_on_markers_to_unk_and_is_hard_masking_on_one_hots():
    probs = torch.softmax(torch.randn(2, 3, V), dim=-1).requires_grad_(True)
    masked = mask_soft(probs, _markers())
    assert torch.allclose(masked.sum(-1), torch.ones(2, 3))
    assert torch.all(masked[..., [GOOD, BAD]] == 0)
    expected_unk = probs[..., UNK_ID] + probs[..., GOOD] + probs[..., BAD]
    assert torch.allclose(masked[..., UNK_ID], expected_unk)
    masked[..., UNK_ID].sum().backward()  # the mass that moved still carries gradient
    assert probs.grad[..., GOOD].abs().sum() > 0
    tokens = torch.tensor([[THE, GOOD, EOS_ID]])
    one_hot = torch.nn.functional.one_hot(tokens, V).float()
    assert torch.equal(mask_soft(one_hot, _markers()).argmax(-1), mask_tokens(tokens, _markers()))


def _encoder(salience_threshold: float) -> Encoder:
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden_dim=8, z_dim=4,
                      style_marker_salience=salience_threshold)
    return Encoder(cfg, vocab_size=V, pad_id=0).eval()


def test_an_encoder_with_markers_cannot_tell_great_from_bad():
    good = torch.tensor([[THE, FOOD, GOOD, EOS_ID]])
    bad = torch.tensor([[THE, FOOD, BAD, EOS_ID]])
    lengths = torch.tensor([4])
    plain = _encoder(0.0)
    assert plain.style_markers is None and "style_markers" not in plain.state_dict()
    assert not torch.allclose(plain(good, lengths).mean, plain(bad, lengths).mean)
    hiding = _encoder(15.0)
    hiding.set_style_markers(_markers())
    assert torch.equal(hiding(good, lengths).mean, hiding(bad, lengths).mean)
    # a soft sentence is read the same way: its one-hot version encodes like the hard one
    soft = torch.nn.functional.one_hot(good, V).float()
    assert torch.allclose(hiding.encode_embeddings(hiding.embed_soft(soft), lengths).mean,
                          hiding(good, lengths).mean, atol=1e-6)
    assert torch.equal(hiding.state_dict()["style_markers"], _markers())  # saved with weights


def test_set_style_markers_refuses_an_encoder_without_them_or_a_wrong_size():
    with pytest.raises(ValueError, match="style_marker_salience"):
        _encoder(0.0).set_style_markers(_markers())
    with pytest.raises(ValueError, match=r"\(10,\)"):
        _encoder(15.0).set_style_markers(torch.zeros(3, dtype=torch.bool))
