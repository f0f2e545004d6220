"""Tokenised datasets, length-bucketed batching and collate -> Batch."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from textgan.config import TokenizerConfig
from textgan.corpora.corpus import MISSING_LABEL, Corpus
from textgan.data import (Batch, BucketBatchSampler, collate, dataset_lengths, make_loader,
                          padding_fraction, tokenize_corpus)
from textgan.errors import CorpusError
from textgan.tokenizer import Tokenizer, train_tokenizer

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ATTRIBUTES = {"sentiment": ["negative", "positive"], "tense": ["past", "present", "future"]}


def make_split(n: int, seed: int, attributes: dict[str, list[str]] = ATTRIBUTES
               ) -> datasets.Dataset:
    """Mixed lengths on purpose (short and long sentences), a third of the labels missing."""
    rng = random.Random(seed)
    words = ["".join(random.Random(i).choice(LETTERS) for _ in range(2 + i % 6))
             for i in range(80)]
    columns: dict[str, list] = {
        "text": [" ".join(rng.choice(words) for _ in range(rng.choice((2, 3, 4, 12, 20, 30))))
                 for _ in range(n)]}
    for name, classes in attributes.items():
        columns[name] = [rng.choice([MISSING_LABEL, *range(len(classes))]) for _ in range(n)]
    return datasets.Dataset.from_dict(columns)


def make_corpus(attributes: dict[str, list[str]] = ATTRIBUTES, n: int = 600) -> Corpus:
    splits = datasets.DatasetDict(train=make_split(n, 0, attributes),
                                  valid=make_split(n // 5, 1, attributes),
                                  test=make_split(n // 5, 2, attributes))
    return Corpus(splits, dict(attributes))


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus) -> Tokenizer:
    return train_tokenizer(corpus.splits["train"]["text"],
                           TokenizerConfig(vocab_size=150, hard_vocab_limit=False))


@pytest.fixture(scope="module")
def tokenized(corpus, tokenizer):
    return tokenize_corpus(corpus, tokenizer, max_tokens=24)


def loader_for(dataset, tokenizer, names=tuple(ATTRIBUTES), **changes):
    settings = dict(batch_size=16, bucket_batches=8, shuffle=True, seed=0)
    settings.update(changes)
    return make_loader(dataset, tokenizer, list(names), **settings)


# --------------------------------------------------------------------------- tokenize_corpus


def test_tokenize_corpus_appends_eos_and_drops_long_sentences(corpus, tokenizer, tokenized):
    result, dropped = tokenized
    assert set(result) == {"train", "valid", "test"}
    for name, split in corpus.splits.items():
        encoded = tokenizer.encode(list(split["text"]))
        fits = [len(ids) + 1 <= 24 for ids in encoded]
        assert dropped[name] == fits.count(False) > 0
        kept = result[name]
        assert len(kept) == fits.count(True)
        # Kept rows stay in corpus order, with their own text and labels.
        expected = [i for i, ok in enumerate(fits) if ok]
        assert list(kept["text"]) == [split["text"][i] for i in expected]
        for attribute in ATTRIBUTES:
            assert list(kept[attribute]) == [split[attribute][i] for i in expected]
        assert list(kept["ids"]) == [encoded[i] + [tokenizer.eos_id] for i in expected]
        assert list(kept["length"]) == [len(encoded[i]) + 1 for i in expected]
    features = result["train"].features
    assert features["ids"] == datasets.List(datasets.Value("int32"))
    assert features["length"] == datasets.Value("int32")
    assert features["sentiment"] == corpus.splits["train"].features["sentiment"]


def test_tokenize_corpus_logs_and_keeps_in_memory_data_in_memory(corpus, tokenizer, caplog):
    with caplog.at_level(logging.INFO, logger="textgan.data"):
        result, dropped = tokenize_corpus(corpus, tokenizer, max_tokens=1000)
    assert dropped == {"train": 0, "valid": 0, "test": 0}
    assert "tokenised train: 600 sentences kept, 0 dropped" in caplog.text
    assert all(split.cache_files == [] for split in result.values())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_dropping_much_of_a_split_for_length_warns_with_the_knobs(corpus, tokenizer, caplog):
    lengths = sorted(len(ids) + 1 for ids in tokenizer.encode(list(corpus.splits["train"]["text"])))
    median = lengths[len(lengths) // 2]
    with caplog.at_level(logging.INFO, logger="textgan.data"):
        _, dropped = tokenize_corpus(corpus, tokenizer, max_tokens=median)
    assert dropped["train"] > 0.1 * len(corpus.splits["train"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("train split" in w and f"data.max_tokens={median}" in w for w in warnings)


def test_tokenize_corpus_refuses_what_it_cannot_do(corpus, tokenizer):
    with pytest.raises(CorpusError, match="every training sentence is longer"):
        tokenize_corpus(corpus, tokenizer, max_tokens=2)
    clash = make_corpus({"length": ["short", "long"]}, n=20)
    with pytest.raises(CorpusError, match=r"\['length'\] collide"):
        tokenize_corpus(clash, tokenizer, max_tokens=24)


def test_file_backed_corpus_goes_through_without_loading_into_memory(tmp_path, tokenizer):
    make_corpus(n=300).splits.save_to_disk(tmp_path / "corpus")
    splits = datasets.load_from_disk(str(tmp_path / "corpus"))
    corpus = Corpus(splits, dict(ATTRIBUTES))
    result, dropped = tokenize_corpus(corpus, tokenizer, max_tokens=24)
    train = result["train"]
    # Written to an arrow cache file next to the corpus and memory-mapped from there.
    assert train.cache_files and all(
        Path(f["filename"]).is_relative_to(tmp_path) for f in train.cache_files)
    assert len(train) == 300 - dropped["train"]
    loader = loader_for(train, tokenizer)
    seen = sum(batch.batch_size for batch in loader)
    assert seen == len(train) and len(loader) == -(-len(train) // 16)


# --------------------------------------------------------------------------- collate / Batch


def test_collate_builds_a_padded_batch_with_label_masks():
    rows = [{"ids": [5, 6, 7, 3], "sentiment": 1, "tense": MISSING_LABEL},
            {"ids": [8, 3], "sentiment": MISSING_LABEL, "tense": 2},
            {"ids": [3], "sentiment": 0, "tense": 0}]
    batch = collate(rows, pad_id=0, attribute_names=["sentiment", "tense"])
    assert isinstance(batch, Batch)
    assert batch.tokens.tolist() == [[5, 6, 7, 3], [8, 3, 0, 0], [3, 0, 0, 0]]
    assert batch.lengths.tolist() == [4, 2, 1]
    assert batch.labels.tolist() == [[1, -1], [-1, 2], [0, 0]]
    assert batch.label_mask.tolist() == [[True, False], [False, True], [True, True]]
    assert (batch.tokens.dtype, batch.lengths.dtype, batch.labels.dtype, batch.label_mask.dtype) \
        == (torch.int64, torch.int64, torch.int64, torch.bool)
    assert batch.num_tokens == 7 and batch.batch_size == 3
    # Another pad id and tensor inputs (a torch-formatted dataset) give the same layout.
    tensors = [{k: torch.tensor(v) for k, v in row.items()} for row in rows]
    other = collate(tensors, pad_id=9, attribute_names=["tense"])
    assert other.tokens.tolist() == [[5, 6, 7, 3], [8, 3, 9, 9], [3, 9, 9, 9]]
    assert other.labels.tolist() == [[-1], [2], [0]]


def test_collate_without_attributes_gives_empty_label_columns():
    batch = collate([{"ids": [4, 3]}, {"ids": [3]}], pad_id=0, attribute_names=[])
    assert batch.labels.shape == batch.label_mask.shape == (2, 0)
    assert batch.labels.dtype == torch.int64 and batch.label_mask.dtype == torch.bool


def test_batch_to_moves_every_tensor():
    batch = collate([{"ids": [4, 3], "a": 1}], pad_id=0, attribute_names=["a"])
    moved = batch.to("cpu")
    assert isinstance(moved, Batch)
    assert all(torch.equal(x, y) for x, y in zip(moved, batch))
    assert moved.to(torch.device("meta")).tokens.device.type == "meta"


def test_loader_batches_match_the_dataset_rows(tokenized, tokenizer):
    valid = tokenized[0]["valid"]
    loader = loader_for(valid, tokenizer, shuffle=False)
    batches = list(loader)
    start = 0
    for batch in batches:
        rows = valid[start:start + batch.batch_size]
        assert batch.lengths.tolist() == rows["length"]
        for i, ids in enumerate(rows["ids"]):
            assert batch.tokens[i, :len(ids)].tolist() == ids
            assert (batch.tokens[i, len(ids):] == tokenizer.pad_id).all()
        assert batch.labels.tolist() == [list(pair) for pair in
                                         zip(rows["sentiment"], rows["tense"])]
        assert torch.equal(batch.label_mask, batch.labels != MISSING_LABEL)
        assert batch.tokens.shape[1] == batch.lengths.max()
        start += batch.batch_size
    assert start == len(valid)
    assert tokenizer.decode(batches[0].tokens) == valid["text"][:batches[0].batch_size]


def test_loader_on_a_corpus_without_attributes(tokenizer):
    result, _ = tokenize_corpus(make_corpus({}, n=100), tokenizer, max_tokens=24)
    batches = list(make_loader(result["train"], tokenizer, [], batch_size=8, bucket_batches=2,
                               shuffle=True, seed=0))
    assert sum(batch.batch_size for batch in batches) == len(result["train"])
    for batch in batches:
        assert batch.labels.shape == batch.label_mask.shape == (batch.batch_size, 0)


def test_make_loader_names_missing_columns(corpus, tokenizer, tokenized):
    with pytest.raises(CorpusError, match="run tokenize_corpus first"):
        loader_for(corpus.splits["train"], tokenizer)
    with pytest.raises(CorpusError, match="'mood'"):
        loader_for(tokenized[0]["train"], tokenizer, names=["sentiment", "mood"])


# --------------------------------------------------------------------------- the sampler


def mixed_lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 40, size=n)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("bucket_batches", [1, 5])
def test_sampler_yields_every_index_once_per_epoch(shuffle, bucket_batches):
    sampler = BucketBatchSampler(mixed_lengths(1003), batch_size=10,
                                 bucket_batches=bucket_batches, shuffle=shuffle, seed=0)
    for epoch in range(2):
        batches = list(sampler)
        assert len(batches) == len(sampler) == 101
        assert sorted(i for b in batches for i in b) == list(range(1003))
        assert sorted(len(b) for b in batches) == [3] + [10] * 100
        assert all(isinstance(i, int) for i in batches[0])


def test_sampler_drop_last_drops_only_the_short_batch():
    sampler = BucketBatchSampler(mixed_lengths(1003), batch_size=10, bucket_batches=5,
                                 shuffle=True, seed=0, drop_last=True)
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert len(batches) == len(sampler) == 100 and all(len(b) == 10 for b in batches)
    assert len(set(flat)) == 1000


def test_sampler_is_deterministic_by_seed_and_epoch():
    def epoch_batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = BucketBatchSampler(mixed_lengths(), 16, 4, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_batches(0, 3) == epoch_batches(0, 3)
    assert epoch_batches(0, 3) != epoch_batches(0, 4)
    assert epoch_batches(0, 3) != epoch_batches(1, 3)
    # Each pass advances the epoch; set_epoch goes back to a given one.
    sampler = BucketBatchSampler(mixed_lengths(), 16, 4, shuffle=True, seed=0)
    assert list(sampler) == epoch_batches(0, 0) and list(sampler) == epoch_batches(0, 1)
    sampler.set_epoch(0)
    assert list(sampler) == epoch_batches(0, 0)


def test_sampler_skips_batches_once_for_a_mid_epoch_resume():
    sampler = BucketBatchSampler(mixed_lengths(), 16, 4, shuffle=True, seed=0)
    sampler.set_epoch(3)
    epoch3, epoch4 = list(sampler), list(sampler)
    sampler.set_epoch(3, skip_batches=5)
    assert list(sampler) == epoch3[5:]
    assert list(sampler) == epoch4  # the next pass is whole again
    assert len(sampler) == len(epoch3)
    sampler.set_epoch(3, skip_batches=len(sampler))
    assert list(sampler) == []
    with pytest.raises(ValueError, match="skip_batches"):
        sampler.set_epoch(3, skip_batches=len(sampler) + 1)


def test_sampler_buckets_similar_lengths_and_shuffles_the_batches():
    lengths = mixed_lengths()
    sampler = BucketBatchSampler(lengths, batch_size=10, bucket_batches=100, shuffle=True,
                                 seed=0)
    batches = list(sampler)
    # One chunk holds the whole corpus: each batch is a run of the length-sorted order ...
    spans = [lengths[b].max() - lengths[b].min() for b in batches]
    assert max(spans) <= 1
    # ... and the batches do not come in length order.
    firsts = [lengths[b].min() for b in batches]
    assert firsts != sorted(firsts)


def test_sampler_without_shuffle_keeps_corpus_order():
    sampler = BucketBatchSampler(mixed_lengths(25), batch_size=10, bucket_batches=4,
                                 shuffle=False, seed=0)
    assert list(sampler) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert list(sampler) == list(sampler)


def test_bucketing_gives_much_less_padding_than_random_batching():
    lengths = mixed_lengths(5000)
    plain = BucketBatchSampler(lengths, 32, 1, shuffle=True, seed=0).padding_fraction()
    bucketed = BucketBatchSampler(lengths, 32, 50, shuffle=True, seed=0).padding_fraction()
    assert plain > 0.4 and bucketed < 0.05


def test_padding_fraction_matches_the_collated_batches(tokenized, tokenizer, caplog):
    train = tokenized[0]["train"]
    fractions = {}
    for bucket_batches in (1, 8):
        with caplog.at_level(logging.INFO, logger="textgan.data"):
            loader = loader_for(train, tokenizer, bucket_batches=bucket_batches)
        predicted = padding_fraction(loader)
        pads = positions = 0
        for batch in loader:  # epoch 0, the one padding_fraction described
            pads += int((batch.tokens == tokenizer.pad_id).sum())
            positions += batch.tokens.numel()
        assert predicted == pytest.approx(pads / positions)
        fractions[bucket_batches] = predicted
    assert fractions[8] < fractions[1] / 2
    assert f"padding {100 * fractions[8]:.1f}%" in caplog.text


def test_padding_fraction_of_length_lists_and_lengths_column(tokenized):
    assert padding_fraction([[1, 3], [2, 2]]) == pytest.approx(0.2)
    assert padding_fraction([]) == 0.0
    train = tokenized[0]["train"]
    assert dataset_lengths(train).tolist() == list(train["length"])
    assert dataset_lengths(train.select([2, 0])).tolist() == [train["length"][2],
                                                               train["length"][0]]


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        BucketBatchSampler([1, 2], batch_size=0, bucket_batches=1, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        BucketBatchSampler([[1, 2]], batch_size=2, bucket_batches=1, shuffle=True, seed=0)


# --------------------------------------------------------------------------- <unk> share

# Real review text (tests/data/yelp_slice: 400 sentences of the Yelp corpus, its README says
# whence): its long tail of words leaves many of them <unk> under a small word vocabulary.
YELP_SLICE = Path(__file__).resolve().parent / "data" / "yelp_slice"


@pytest.fixture(scope="module")
def reviews() -> Corpus:
    from textgan.config import DataConfig
    from textgan.corpora import load_corpus

    return load_corpus(DataConfig(source=str(YELP_SLICE)))


def unk_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "<unk>" in r.getMessage()]


def test_a_400_word_vocabulary_on_real_text_warns_with_the_share_and_the_fixes(reviews, caplog):
    # the default preset's tokenizer, which a user who only changes data.source keeps
    words = train_tokenizer(reviews.splits["train"]["text"],
                            TokenizerConfig(model_type="word", vocab_size=400))
    with caplog.at_level(logging.INFO, logger="textgan.data"):
        result, _ = tokenize_corpus(reviews, words, max_tokens=64)
    ids = [i for row in result["train"]["ids"] for i in row[:-1]]  # EOS left out
    share = ids.count(words.unk_id) / len(ids)
    assert share > 0.05
    (record,) = unk_records(caplog)  # the training split only
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"{100 * share:.1f}% of the training tokens are <unk>" in message
    for fix in ("tokenizer.vocab_size", "tokenizer.model_type=unigram or bpe",
                "tokenizer.byte_fallback=true"):
        assert fix in message


def test_subword_pieces_on_the_same_text_log_the_share_at_info(reviews, caplog):
    pieces = train_tokenizer(reviews.splits["train"]["text"],
                             TokenizerConfig(model_type="unigram", vocab_size=400))
    with caplog.at_level(logging.INFO, logger="textgan.data"):
        tokenize_corpus(reviews, pieces, max_tokens=64)
    (record,) = unk_records(caplog)
    assert record.levelno == logging.INFO
    assert "tokenised train: 0.00% of the tokens are <unk>" in record.getMessage()


def test_the_default_presets_word_vocabulary_covers_the_synthetic_corpus(caplog):
    from textgan.config import load_config
    from textgan.corpora import load_corpus

    cfg = load_config("default")
    cfg.data.synthetic_size = 2000  # the same grammar and words; fewer sentences to generate
    corpus = load_corpus(cfg.data)
    words = train_tokenizer(corpus.splits["train"]["text"], cfg.tokenizer, seed=cfg.seed)
    with caplog.at_level(logging.INFO, logger="textgan.data"):
        tokenize_corpus(corpus, words, cfg.data.max_tokens)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "tokenised train: 0.00% of the tokens are <unk>" in caplog.text


def test_unknown_share_counts_on_the_ids_and_respects_select(tokenizer):
    from textgan.data import unknown_share

    split = datasets.Dataset.from_dict({"ids": [[1, 5, 3], [1, 1, 7, 3], [6, 3]],
                                        "length": [3, 4, 2]})
    assert unknown_share(split, unk_id=1) == (3, 6)  # the three EOS (3) are not tokens
    assert unknown_share(split.select([2, 0]), unk_id=1) == (1, 3)


# --------------------------------------------------------------------------- fixed_sample


def test_fixed_sample_is_bounded_seeded_and_in_corpus_order(tokenized, tokenizer):
    from textgan.data import fixed_sample

    valid = tokenized[0]["valid"]
    numbered = valid.add_column("row", list(range(len(valid))))
    rows = list(fixed_sample(numbered, 50, seed=0)["row"])
    # as many as asked, each once, in the split's order, and the same every time (every epoch,
    # every resume); another seed, other rows
    assert len(rows) == len(set(rows)) == 50 and rows == sorted(rows)
    assert list(fixed_sample(numbered, 50, seed=0)["row"]) == rows
    assert list(fixed_sample(numbered, 50, seed=1)["row"]) != rows
    # 0, or a size the split does not exceed: the split itself
    assert fixed_sample(valid, 0, seed=0) is valid
    assert fixed_sample(valid, len(valid), seed=0) is valid
    with pytest.raises(ValueError, match="size must be >= 0"):
        fixed_sample(valid, -1, seed=0)
    # a loader over the sample yields exactly its rows
    sample = fixed_sample(valid, 50, seed=0)
    loader = loader_for(sample, tokenizer, shuffle=False)
    assert [row for batch in loader for row in batch.lengths.tolist()] == list(sample["length"])
