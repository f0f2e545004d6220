"""Tokenizer: determinism, special ids, persistence with its hash, and refusing foreign models."""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2

from textgan.config import TokenizerConfig
from textgan.errors import TokenizerError
from textgan.tokenizer import (BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, _sampled_rows,
                               train_tokenizer)

# Letter-only words: digits would stop sentencepiece from merging (split_by_number).
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def sentences(n: int, seed: int = 0, vocabulary: int = 60) -> list[str]:
    rng = random.Random(seed)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8)))
             for _ in range(vocabulary)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) for _ in range(n)]


def small_config(**changes) -> TokenizerConfig:
    values = dict(vocab_size=120, hard_vocab_limit=False, num_threads=1)
    values.update(changes)
    return TokenizerConfig(**values)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sentences(400)


@pytest.fixture(scope="module")
def tokenizer(texts) -> Tokenizer:
    return train_tokenizer(texts, small_config())


def trainer_spec(tokenizer: Tokenizer):
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.model_bytes)
    return proto.trainer_spec


def foreign_model(texts: list[str], **ids) -> bytes:
    """A sentencepiece model trained outside textgan (its default ids unless given)."""
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=writer,
                                   vocab_size=60, hard_vocab_limit=False, num_threads=1,
                                   minloglevel=2, **ids)
    return writer.getvalue()


# --------------------------------------------------------------------------- special ids


def test_special_ids_are_set_explicitly(tokenizer):
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert [tokenizer.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    sp = tokenizer.processor
    assert sp.IsUnknown(1) and all(sp.IsControl(i) for i in (0, 2, 3))
    # Encoded text never contains a special id: BOS/EOS are the data pipeline's job.
    assert not {0, 1, 2, 3} & {i for row in tokenizer.encode(sentences(50)) for i in row}


def test_every_config_field_reaches_the_trainer(texts):
    cfg = small_config(model_type="bpe", vocab_size=400, character_coverage=0.9995,
                       byte_fallback=True, num_threads=2, input_sentence_size=300)
    spec = trainer_spec(train_tokenizer(texts, cfg))
    assert spec.model_type == sentencepiece_model_pb2.TrainerSpec.BPE
    assert spec.character_coverage == pytest.approx(0.9995)
    assert spec.byte_fallback and not spec.hard_vocab_limit
    assert spec.num_threads == 2
    assert (spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id) == (0, 1, 2, 3)


# --------------------------------------------------------------------------- determinism


def test_same_texts_settings_and_seed_give_a_byte_identical_model(texts, tokenizer):
    again = train_tokenizer(list(texts), small_config())
    assert again.model_bytes == tokenizer.model_bytes
    assert again.sha256 == tokenizer.sha256 == hashlib.sha256(tokenizer.model_bytes).hexdigest()
    assert again == tokenizer


def test_settings_change_the_model(texts, tokenizer):
    assert train_tokenizer(texts, small_config(vocab_size=60)).sha256 != tokenizer.sha256
    assert train_tokenizer(texts, small_config(model_type="bpe")).sha256 != tokenizer.sha256


SUBPROCESS = """
from test_tokenizer import sentences, small_config
from textgan.tokenizer import train_tokenizer
print(train_tokenizer(sentences(600), small_config(input_sentence_size=250), seed=5).sha256)
"""


def test_sampled_training_is_reproducible_across_processes():
    # sentencepiece's own input_sentence_size sampling draws a new sample in every process,
    # whatever its seed; a run repeated or resumed elsewhere must get the same tokenizer.
    here = train_tokenizer(sentences(600), small_config(input_sentence_size=250), seed=5).sha256
    there = subprocess.run([sys.executable, "-c", SUBPROCESS], cwd=Path(__file__).parent,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert there == here


def test_sample_size_and_seed_are_honoured(caplog):
    corpus = sentences(600)
    with caplog.at_level(logging.INFO, logger="textgan.tokenizer"):
        sampled = train_tokenizer(corpus, small_config(input_sentence_size=250), seed=0)
    assert "on 250 sentences (a seeded sample of 600)" in caplog.text
    assert sampled.sha256 != train_tokenizer(corpus, small_config()).sha256
    other_seed = train_tokenizer(corpus, small_config(input_sentence_size=250), seed=1)
    assert other_seed.sha256 != sampled.sha256


def test_the_sample_does_not_depend_on_the_container():
    import datasets

    corpus = sentences(3000)
    cfg = small_config(input_sentence_size=1000)
    dataset = datasets.Dataset.from_dict({"text": corpus})
    shas = {train_tokenizer(texts, cfg, seed=3).sha256
            for texts in (corpus, iter(corpus), dataset, dataset["text"],
                          dataset.to_iterable_dataset())}
    assert len(shas) == 1


def test_reservoir_sample_is_uniform_and_without_repeats():
    rng = np.random.default_rng(0)
    counts = np.zeros(50)
    for _ in range(4000):
        rows = _sampled_rows(50, 10, rng)
        assert len(set(rows.tolist())) == 10 and rows.min() >= 0 and rows.max() < 50
        counts[rows] += 1
    # Each row is kept with probability 1/5: 800 expected, sd ~25.
    assert counts.min() > 650 and counts.max() < 950


# --------------------------------------------------------------------------- encode / decode


def test_encode_decode_round_trip_on_training_sentences(texts, tokenizer):
    assert tokenizer.decode(tokenizer.encode(texts)) == texts


def test_bpe_option_works(texts):
    bpe = train_tokenizer(texts, small_config(model_type="bpe"))
    assert trainer_spec(bpe).model_type == sentencepiece_model_pb2.TrainerSpec.BPE
    assert (bpe.pad_id, bpe.unk_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2, 3)
    assert bpe.decode(bpe.encode(texts)) == texts


def test_decode_stops_at_the_first_eos_and_ignores_padding(texts, tokenizer):
    a, b = tokenizer.encode(texts[:2])
    width = max(len(a), len(b)) + 4
    eos, pad = tokenizer.eos_id, tokenizer.pad_id
    garbage = b[:2]  # generated after EOS: must not show
    rows = [a + [eos] + garbage, b + [eos]]
    padded = torch.tensor([row + [pad] * (width - len(row)) for row in rows])  # (B, T)
    assert tokenizer.decode(padded) == texts[:2]
    assert tokenizer.decode(padded.numpy()) == texts[:2]
    assert tokenizer.decode(rows) == texts[:2]
    assert tokenizer.decode([a]) == [texts[0]]  # no EOS: the whole row
    assert tokenizer.decode([[eos] + a]) == [""]
    assert tokenizer.decode([]) == []
    with pytest.raises(ValueError, match="batch"):
        tokenizer.decode(torch.tensor(a))


def test_byte_fallback_spells_unseen_characters(texts):
    fallback = train_tokenizer(texts, small_config(vocab_size=400, byte_fallback=True))
    unseen = "abc ßé"
    ids = fallback.encode([unseen])[0]
    assert fallback.unk_id not in ids
    assert fallback.decode([ids]) == [unseen]


# --------------------------------------------------------------------------- training errors


def test_vocab_too_large_for_the_corpus_names_the_maximum(texts):
    supported = train_tokenizer(texts, small_config(vocab_size=5000)).vocab_size
    with pytest.raises(TokenizerError, match=rf"at most {supported} unigram pieces") as error:
        train_tokenizer(texts, small_config(vocab_size=5000, hard_vocab_limit=True))
    assert "vocab_size is 5000" in str(error.value) and "hard_vocab_limit" in str(error.value)
    exact = train_tokenizer(texts, small_config(vocab_size=supported, hard_vocab_limit=True))
    assert exact.vocab_size == supported


def test_vocab_too_small_for_the_characters(texts):
    with pytest.raises(TokenizerError, match="too small for the characters"):
        train_tokenizer(texts, small_config(vocab_size=10))
    with pytest.raises(TokenizerError, match="byte_fallback adds 256"):
        train_tokenizer(texts, small_config(vocab_size=200, byte_fallback=True))


def test_empty_or_non_string_training_texts():
    with pytest.raises(TokenizerError, match="no sentences"):
        train_tokenizer([], small_config())
    with pytest.raises(TokenizerError, match="sentence 2 is int"):
        train_tokenizer(["ab cd", "ef gh", 7], small_config())


# --------------------------------------------------------------------------- persistence


def test_save_and_load_round_trip(tmp_path, texts, tokenizer):
    path = tokenizer.save(tmp_path / "run")
    assert path == tmp_path / "run" / "tokenizer.model"
    assert path.read_bytes() == tokenizer.model_bytes
    assert (tmp_path / "run" / "tokenizer.sha256").read_text() == \
        f"{tokenizer.sha256}  tokenizer.model\n"
    for source in (tmp_path / "run", path, str(path)):
        loaded = Tokenizer.load(source)
        assert loaded == tokenizer and loaded.model_bytes == tokenizer.model_bytes
        assert loaded.encode(texts) == tokenizer.encode(texts)
    assert Tokenizer.from_bytes(tokenizer.model_bytes) == tokenizer
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy == tokenizer and copy.encode(texts[:5]) == tokenizer.encode(texts[:5])


def test_a_changed_model_file_is_refused(tmp_path, texts, tokenizer):
    path = tokenizer.save(tmp_path)
    other = train_tokenizer(texts, small_config(vocab_size=60))
    path.write_bytes(other.model_bytes)  # replaced without its hash
    with pytest.raises(TokenizerError, match="does not match"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.sha256").write_text("not a hash\n")
    with pytest.raises(TokenizerError, match="does not hold a sha256"):
        Tokenizer.load(path)
    (tmp_path / "tokenizer.sha256").unlink()  # no hash file: loads, ids still checked
    assert Tokenizer.load(path) == other


def test_missing_or_corrupt_model_is_refused(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"definitely not a model")
    with pytest.raises(TokenizerError, match="not a sentencepiece model"):
        Tokenizer.load(tmp_path)


def test_a_model_with_other_special_ids_is_refused(tmp_path, texts):
    defaults = foreign_model(texts)  # sentencepiece's defaults: unk=0 bos=1 eos=2, no pad
    with pytest.raises(TokenizerError) as error:
        Tokenizer.from_bytes(defaults)
    message = str(error.value)
    assert "pad id is -1 (textgan needs 0)" in message
    assert "unk id is 0 (textgan needs 1)" in message
    assert "eos id is 2 (textgan needs 3)" in message
    (tmp_path / "m.model").write_bytes(foreign_model(texts, pad_id=0, unk_id=1, bos_id=3,
                                                     eos_id=2))
    with pytest.raises(TokenizerError, match="m.model.*bos id is 3") as error:
        Tokenizer.load(tmp_path / "m.model")
    assert "pad id" not in str(error.value)  # only the ids that differ are named


def test_check_compatible_names_the_difference(texts, tokenizer):
    tokenizer.check_compatible(tokenizer.sha256, tokenizer.vocab_size)
    other = train_tokenizer(texts, small_config(vocab_size=60))
    with pytest.raises(TokenizerError, match="another tokenizer"):
        tokenizer.check_compatible(other.sha256, tokenizer.vocab_size)
    with pytest.raises(TokenizerError, match=f"expects a vocabulary of 99 pieces.*"
                                             f"{tokenizer.vocab_size}"):
        tokenizer.check_compatible(vocab_size=99, what="the generator")
