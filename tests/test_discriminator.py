"""The discriminator D: shapes per attribute, pad invariance, hard == soft reading, short
sentences, gradients, EOS weights, and learning the tiny corpus labels. Tiny sizes, CPU only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from textgan.config import DiscriminatorConfig
from textgan.models import Discriminator, alive_weights, hard_weights

# Deliberately not 0/1/2/3, so a hard-coded special id anywhere in D shows up.
PAD, EOS = 5, 7
VOCAB = 30
WORDS = [i for i in range(VOCAB) if i not in (PAD, EOS)]
NUM_CLASSES = [2, 3, 4]
KINDS = ["cnn", "gru"]
TINY = Path(__file__).resolve().parent.parent / "corpora" / "tiny" / "train.jsonl"


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny, so intra-op threads buy nothing, and beside another torch process
    on 2 cores they spin against it: the 100-step training test took 13.6 s with 2 threads and
    0.5 s with 1 on the dev machine. Restored afterwards, so other test files are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cfg(kind: str, **overrides) -> DiscriminatorConfig:
    values = {"kind": kind, "embedding_dim": 8, "filter_widths": [3, 4, 5], "filters": 6,
              "hidden_dim": 10, "dropout": 0.5}
    values.update(overrides)
    return DiscriminatorConfig(**values)


def make_d(kind: str, seed: int = 0, num_classes=NUM_CLASSES, **overrides) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(small_cfg(kind, **overrides), vocab_size=VOCAB,
                         num_classes=num_classes, pad_id=PAD)


def random_sentences(lengths: list[int], width: int | None = None, seed: int = 0) -> torch.Tensor:
    """Right-padded (B, T) batch: words, then EOS at lengths[b]-1, then PAD."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    words = torch.tensor(WORDS)
    tokens = torch.full((len(lengths), width), PAD, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, :n - 1] = words[torch.randint(len(WORDS), (n - 1,), generator=g)]
        tokens[row, n - 1] = EOS
    return tokens


def assert_logits_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- construction


def test_kind_in_the_config_picks_the_reader():
    cnn, gru = make_d("cnn"), make_d("gru")
    assert cnn.kind == "cnn" and gru.kind == "gru"
    cnn_modules = [type(m) for m in cnn.modules()]
    gru_modules = [type(m) for m in gru.modules()]
    assert nn.Conv1d in cnn_modules and nn.GRU not in cnn_modules
    assert nn.GRU in gru_modules and nn.Conv1d not in gru_modules
    # One conv per width, `filters` channels each, of the configured widths.
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv1d)]
    assert [c.kernel_size[0] for c in convs] == [3, 4, 5]
    assert all(c.out_channels == 6 for c in convs)
    assert next(m for m in gru.modules() if isinstance(m, nn.GRU)).hidden_size == 10


def test_discriminator_has_its_own_embedding_table():
    d = make_d("cnn")
    assert d.embedding.num_embeddings == VOCAB and d.embedding.embedding_dim == 8
    assert d.embedding.padding_idx == PAD


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="unknown discriminator kind"):
        Discriminator(DiscriminatorConfig(kind="lstm"), vocab_size=VOCAB, num_classes=[2],
                      pad_id=PAD)
    with pytest.raises(ValueError, match="at least one attribute"):
        Discriminator(small_cfg("cnn"), vocab_size=VOCAB, num_classes=[], pad_id=PAD)
    with pytest.raises(ValueError, match="pad_id"):
        Discriminator(small_cfg("cnn"), vocab_size=VOCAB, num_classes=[2], pad_id=VOCAB)


# --------------------------------------------------------------------------- shapes, padding


@pytest.mark.parametrize("kind", KINDS)
def test_one_logit_block_per_attribute(kind):
    d = make_d(kind).eval()
    lengths = [6, 3, 8, 1]
    tokens = random_sentences(lengths)
    logits = d(tokens, torch.tensor(lengths))
    assert isinstance(logits, list)
    assert [tuple(x.shape) for x in logits] == [(4, n) for n in NUM_CLASSES]
    probs = F.softmax(torch.randn(4, 8, VOCAB), dim=-1)
    soft = d.forward_soft(probs, torch.ones(4, 8))
    assert [tuple(x.shape) for x in soft] == [(4, n) for n in NUM_CLASSES]


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_the_logits(kind):
    d = make_d(kind).eval()
    lengths = torch.tensor([6, 3, 8, 2])
    tokens = random_sentences(lengths.tolist())
    reference = d(tokens, lengths)
    # More padding columns.
    wider = F.pad(tokens, (0, 5), value=PAD)
    assert_logits_close(d(wider, lengths), reference)
    # Arbitrary ids (not PAD) in every padded position.
    g = torch.Generator().manual_seed(1)
    garbage = torch.randint(VOCAB, wider.shape, generator=g)
    padded = torch.arange(wider.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    scrambled = torch.where(padded, garbage, wider)
    assert not torch.equal(scrambled, wider)
    assert_logits_close(d(scrambled, lengths), reference)
    # The same sentence alone in a batch of its own width.
    alone = d(tokens[3:, :2], lengths[3:])
    assert_logits_close(alone, [x[3:] for x in reference])


def test_padding_is_invisible_even_where_a_padding_window_would_win_the_max():
    """Weights chosen so that every real window scores below a window of zero vectors: the pool
    of an unpadded batch must already contain that window's value, or padding would show."""
    d = make_d("cnn", filter_widths=[3]).eval()
    conv = next(m for m in d.modules() if isinstance(m, nn.Conv1d))
    with torch.no_grad():
        d.embedding.weight.abs_()
        conv.weight.copy_(-conv.weight.abs())
        conv.bias.fill_(1.0)
    lengths = torch.tensor([4])
    tokens = random_sentences([4])  # exactly as wide as the sentence: no padding column
    assert_logits_close(d(F.pad(tokens, (0, 6), value=PAD), lengths), d(tokens, lengths))


@pytest.mark.parametrize("kind", KINDS)
def test_real_positions_do_change_the_logits(kind):
    """The converse of pad invariance: the masking must not hide the sentence itself."""
    d = make_d(kind).eval()
    lengths = torch.tensor([6, 6])
    tokens = random_sentences([6, 6])
    changed = tokens.clone()
    changed[:, 0] = torch.where(tokens[:, 0] == WORDS[0], WORDS[1], WORDS[0])  # another word
    before, after = d(tokens, lengths), d(changed, lengths)
    assert not torch.allclose(torch.cat(before, 1), torch.cat(after, 1))
    # Reading one more token (the first padded one) changes the output too.
    longer = d(F.pad(tokens, (0, 1), value=WORDS[4]), torch.tensor([7, 7]))
    assert not torch.allclose(torch.cat(before, 1), torch.cat(longer, 1))


@pytest.mark.parametrize("kind", KINDS)
def test_sentences_shorter_than_the_widest_filter(kind):
    d = make_d(kind).eval()
    for lengths in ([1], [2], [1, 2], [2, 1, 1]):
        tokens = random_sentences(lengths)  # width max(lengths) < 5
        logits = d(tokens, torch.tensor(lengths))
        assert all(torch.isfinite(x).all() for x in logits)
    # A one-token sentence is not read as empty: its token matters.
    a = d(torch.tensor([[WORDS[0]]]), torch.tensor([1]))
    b = d(torch.tensor([[WORDS[1]]]), torch.tensor([1]))
    assert not torch.allclose(torch.cat(a, 1), torch.cat(b, 1))


def test_a_filter_of_width_one_works():
    d = make_d("cnn", filter_widths=[1, 2]).eval()
    lengths = torch.tensor([1, 4])
    logits = d(random_sentences([1, 4]), lengths)
    assert [tuple(x.shape) for x in logits] == [(2, n) for n in NUM_CLASSES]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_lengths_are_refused(kind):
    d = make_d(kind)
    tokens = random_sentences([3, 2])
    for lengths in ([0, 2], [4, 2], [3]):
        with pytest.raises(ValueError, match="lengths"):
            d(tokens, torch.tensor(lengths))


# --------------------------------------------------------------------------- soft input


@pytest.mark.parametrize("kind", KINDS)
def test_soft_reading_of_one_hot_sentences_equals_the_hard_reading(kind):
    d = make_d(kind).eval()
    lengths = torch.tensor([6, 3, 8, 1, 2])
    tokens = random_sentences(lengths.tolist(), width=10)
    # Garbage after the end: the soft reader must ignore it through the weights alone.
    g = torch.Generator().manual_seed(2)
    padded = torch.arange(10).unsqueeze(0) >= lengths.unsqueeze(1)
    tokens = torch.where(padded, torch.randint(VOCAB, tokens.shape, generator=g), tokens)
    hard = d(tokens, lengths)
    soft = d.forward_soft(F.one_hot(tokens, VOCAB).float(), hard_weights(lengths, 10))
    assert_logits_close(soft, hard)


@pytest.mark.parametrize("kind", KINDS)
def test_soft_positions_with_zero_weight_never_change_the_logits(kind):
    d = make_d(kind).eval()
    g = torch.Generator().manual_seed(3)
    probs = F.softmax(torch.randn(3, 6, VOCAB, generator=g), dim=-1)
    weights = torch.tensor([[1.0, 0.9, 0.5, 0.2, 0.1, 0.05],
                            [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                            [1.0, 0.7, 0.7, 0.3, 0.0, 0.0]])
    reference = d.forward_soft(probs, weights)
    more = F.softmax(torch.randn(3, 4, VOCAB, generator=g), dim=-1)
    extended = d.forward_soft(torch.cat([probs, more], 1), F.pad(weights, (0, 4)))
    assert_logits_close(extended, reference)
    # Replacing the distributions where the weight is 0 changes nothing either.
    replaced = probs.clone()
    replaced[1, 2:] = more[1, 0]
    replaced_logits = d.forward_soft(replaced, weights)
    assert_logits_close([x[1:2] for x in replaced_logits], [x[1:2] for x in reference])


@pytest.mark.parametrize("kind", KINDS)
def test_soft_weights_matter_between_hard_lengths(kind):
    """Fractional weights give an output that is neither length's hard reading."""
    d = make_d(kind).eval()
    tokens = random_sentences([4], width=6)
    tokens[0, 3:] = torch.tensor([WORDS[0], WORDS[1], EOS])  # a 6-token sentence
    probs = F.one_hot(tokens, VOCAB).float()
    short = torch.cat(d.forward_soft(probs, hard_weights(torch.tensor([4]), 6)), 1)
    long = torch.cat(d.forward_soft(probs, hard_weights(torch.tensor([6]), 6)), 1)
    mixed_weights = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.5, 0.5]])
    mixed = torch.cat(d.forward_soft(probs, mixed_weights), 1)
    assert not torch.allclose(mixed, short) and not torch.allclose(mixed, long)


def test_soft_input_of_the_wrong_shape_is_refused():
    d = make_d("cnn")
    with pytest.raises(ValueError, match="probs"):
        d.forward_soft(torch.ones(2, 3, VOCAB - 1), torch.ones(2, 3))
    with pytest.raises(ValueError, match="weights"):
        d.forward_soft(torch.ones(2, 3, VOCAB), torch.ones(2, 4))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_soft_sentence(kind):
    d = make_d(kind).eval()
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 7, VOCAB, generator=g, requires_grad=True)
    eos_logit = torch.randn(3, 7, generator=g, requires_grad=True)
    probs = F.softmax(logits, dim=-1)
    weights = alive_weights(torch.sigmoid(eos_logit))  # as soft generation weighs
    out = d.forward_soft(probs, weights)
    target = [torch.zeros(3, dtype=torch.long) for _ in NUM_CLASSES]
    loss = sum(F.cross_entropy(x, y) for x, y in zip(out, target))
    loss.backward()
    for grad in (logits.grad, eos_logit.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Every position contributes (none is cut off while its weight is positive).
    assert (logits.grad.abs().sum(dim=(0, 2)) > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter(kind):
    d = make_d(kind).train()
    lengths = torch.tensor([6, 3, 8, 1])
    out = d(random_sentences(lengths.tolist()), lengths)
    sum(F.cross_entropy(x, torch.zeros(4, dtype=torch.long)) for x in out).backward()
    for name, param in d.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    # The pad row is never trained.
    assert d.embedding.weight.grad[PAD].abs().sum() == 0


# --------------------------------------------------------------------------- learning


def tiny_corpus() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """tokens (16, T), lengths (16,), labels (16, 2) [sentiment, tense] of corpora/tiny/train."""
    rows = [json.loads(line) for line in TINY.read_text(encoding="utf-8").splitlines() if line]
    words = sorted({w for row in rows for w in row["text"].split()})
    # Word ids skip PAD and EOS, which stay at the odd ids above.
    free = (i for i in range(len(words) + 2) if i not in (PAD, EOS))
    vocab = {w: next(free) for w in words}
    vocab_size = max(len(words) + 2, PAD + 1, EOS + 1)
    attributes = ["sentiment", "tense"]
    classes = {a: sorted({row[a] for row in rows}) for a in attributes}
    sentences = [[vocab[w] for w in row["text"].split()] + [EOS] for row in rows]
    lengths = torch.tensor([len(s) for s in sentences])
    tokens = torch.full((len(rows), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(sentences):
        tokens[i, :len(s)] = torch.tensor(s)
    labels = torch.tensor([[classes[a].index(row[a]) for a in attributes] for row in rows])
    return tokens, lengths, labels, [vocab_size, len(classes["sentiment"]),
                                     len(classes["tense"])]


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_learns_the_tiny_corpus_labels(kind):
    tokens, lengths, labels, (vocab_size, n_sentiment, n_tense) = tiny_corpus()
    assert tokens.shape[0] == 16 and n_sentiment == 2 and n_tense == 2
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(kind=kind, embedding_dim=16, filter_widths=[3, 4, 5], filters=16,
                              hidden_dim=24, dropout=0.5)
    d = Discriminator(cfg, vocab_size=vocab_size, num_classes=[n_sentiment, n_tense], pad_id=PAD)

    def accuracies() -> list[float]:
        d.eval()
        with torch.no_grad():
            out = d(tokens, lengths)
        d.train()
        return [float((x.argmax(-1) == labels[:, a]).float().mean()) for a, x in enumerate(out)]

    assert min(accuracies()) < 1.0  # an untrained D does not already know the labels
    optimizer = torch.optim.Adam(d.parameters(), lr=1e-2)
    # 100% is reached by step ~35 (seeds 0-5, both kinds): 100 steps leave a margin.
    for _ in range(100):
        optimizer.zero_grad()
        out = d(tokens, lengths)
        loss = sum(F.cross_entropy(x, labels[:, a]) for a, x in enumerate(out))
        loss.backward()
        optimizer.step()
    assert accuracies() == [1.0, 1.0]
