"""The generator p_G(x | z, c): a GRU decoder conditioned on [z; c].

    gen = Generator(cfg.model, vocab_size=V, code_dim=C, pad_id=..., bos_id=..., eos_id=...)
    inputs = gen.teacher_inputs(batch.tokens)                     # BOS + tokens[:, :-1]
    inputs = apply_word_dropout(inputs, rate, unk_id=..., pad_id=..., bos_id=...)
    logits = gen(inputs, z, c)                                    # (B, T, V), teacher forcing
    out = gen.decode(z, c, max_len=15, strategy="sample", top_p=0.9, generator=g)
    out = gen.decode(z, c, max_len=15, no_repeat_ngram=2)    # greedy, no bigram written twice

Conditioning: [z; c] sets the initial hidden state of every layer (one linear layer, tanh) and is
concatenated to the input of every step, so the code cannot fade out of a long sentence.

With `model.attention` every step also attends to the source sentence's encoder states when
there is one (`memory`; textgan.models.attention): reconstruction and style transfer pass it,
sampling from the prior passes None. With `model.tie_output` the output layer is a projection to
the embedding size followed by the word embedding table, transposed.

Teacher forcing runs nn.GRU over the whole padded sequence (one fused cuDNN call on a GPU); the
loss masks what comes after EOS, so there is nothing to gain from packing here. Free running calls
the SAME nn.GRU on one-step sequences (`step`), so both paths compute the same function.

The pieces are public so that soft generation (another module) reuses these weights:
`embed` / `embed_soft` (the input side), `initial_state` and `conditioning`, `step` (one decoder
step from an input embedding), `project` (hidden state -> logits). A soft step is

    logits, hidden = gen.step(gen.embed_soft(probs), hidden, zc)

with `probs` the (relaxed) softmax of the previous step's logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan import checks
from textgan.config import ModelConfig
from textgan.models.attention import Attention, Memory
from textgan.models.categorical import sample_categorical
from textgan.models.encoder import gru_dropout, word_table

STRATEGIES = ("greedy", "sample")
# How often decoding checks for its early exit where that check waits for the device (a GPU):
# at most this many - 1 wasted steps, against one wait per step.
GPU_EXIT_CHECK_EVERY = 8


class Step(NamedTuple):
    """One decoder step."""

    logits: Tensor  # (B, V)
    hidden: Tensor  # (L, B, H)


class Decoded(NamedTuple):
    """Hard decoded sentences."""

    tokens: Tensor  # (B, L) ids, EOS kept, pad after it; L <= max_len
    lengths: Tensor  # (B,) tokens up to and including the first EOS; max_len if none
    ended: Tensor  # (B,) bool, True where an EOS was produced


def shift_right(tokens: Tensor, bos_id: int) -> Tensor:
    """Teacher-forcing inputs: BOS followed by tokens[:, :-1] (B, T).

    Position t predicts tokens[:, t] from the words before it. The last column is dropped because
    nothing is predicted after it; a shorter row's EOS does enter as an input, but its prediction
    (of padding) is masked by the loss.
    """
    bos = torch.full_like(tokens[:, :1], bos_id)  # (B, 1)
    return torch.cat([bos, tokens[:, :-1]], dim=1)  # (B, T)


def apply_word_dropout(inputs: Tensor, rate: float, *, unk_id: int, pad_id: int,
                       bos_id: int | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
    """Replace each decoder input by <unk> with probability `rate` (Bowman et al. 2016).

    Padding is never touched (it is not a word, and the pad row of the embedding is fixed at 0).
    The leading BOS is kept when `bos_id` is given, as Bowman et al. do: they drop *words*, and
    BOS is the start signal that free-running decoding always sees; replacing it would only
    teach the first step something it never meets at test time. rate 0 returns `inputs` itself
    and draws no random numbers; rate 1 replaces every real word.

    The generator, if given, must live on the inputs' device.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"word dropout rate must lie in [0, 1], got {rate}")
    if rate == 0.0:
        return inputs
    draw = torch.rand(inputs.shape, generator=generator, device=inputs.device)  # (B, T)
    protected = inputs == pad_id  # (B, T)
    if bos_id is not None:
        protected = protected | (inputs == bos_id)
    # rand is in [0, 1), so rate 1 selects every position.
    replace = (draw < rate) & ~protected
    return inputs.masked_fill(replace, unk_id)


def filter_top_k(logits: Tensor, top_k: int) -> Tensor:
    """Keep the k largest logits of each row (ties with the k-th kept), -inf elsewhere."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: Tensor, top_p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose mass reaches top_p.

    A token is kept when the mass of the tokens ranked before it is below top_p, so the most
    likely token always survives (top_p -> 0 is greedy).
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V) each
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V), exactly 0 for the first
    remove_sorted = mass_before >= top_p
    # Back from rank order to vocabulary order.
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def ban_repeated_ngrams(logits: Tensor, history: Tensor, n: int,
                        active: Tensor | None = None) -> Tensor:
    """Logits (B, V) with -inf on every token that would repeat an n-gram of its row's history.

    history: (B, t) the tokens each row has written so far. The token that followed an earlier
    occurrence of the row's last n - 1 tokens is banned (n = 1: every token already written),
    as `no_repeat_ngram_size` does in Hugging Face's generate. EOS is never in an active row's
    history (a row ends at its first EOS), so a row can always end. n = 0: no ban. active (B,)
    bool: rows to ban in (None: all); a finished row's choice is discarded anyway, and banning
    in it could leave no token at all in a small vocabulary.
    """
    t = history.shape[1]
    if n <= 0 or t < n:  # no earlier n-gram to repeat yet
        return logits
    windows = history.unfold(1, n, 1)  # (B, t - n + 1, n): every n-gram written
    tail = history[:, t - n + 1:]  # (B, n - 1): the n-gram the next token would complete
    repeats = (windows[:, :, :-1] == tail.unsqueeze(1)).all(dim=-1)  # (B, W)
    if active is not None:
        repeats = repeats & active.unsqueeze(1)
    # scatter_add, not scatter: a token may follow several occurrences, matched or not
    banned = torch.zeros_like(logits, dtype=torch.long).scatter_add_(
        1, windows[:, :, -1], repeats.long()) > 0  # (B, V)
    return logits.masked_fill(banned, float("-inf"))


def choose_next(logits: Tensor, *, strategy: str = "greedy", temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """Next token ids (B,) from logits (B, V): argmax, or a draw after temperature/top-k/top-p.

    Greedy ignores temperature, top_k and top_p. Sampling works in fp32 whatever the logits'
    dtype, since a half-precision softmax over a large vocabulary loses the tail.
    """
    if strategy == "greedy":
        return logits.argmax(dim=-1)
    if strategy != "sample":
        raise ValueError(f"unknown decoding strategy '{strategy}' (use one of {STRATEGIES})")
    scaled = logits.float() / temperature  # (B, V)
    scaled = filter_top_p(filter_top_k(scaled, top_k), top_p)
    probs = torch.softmax(scaled, dim=-1)
    return sample_categorical(probs, generator=generator)  # (B,)


def check_decoding(*, max_len: int, strategy: str, temperature: float, top_k: int,
                   top_p: float, no_repeat_ngram: int = 0) -> None:
    """Reject impossible decoding settings before any work is done."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decoding strategy '{strategy}' (use one of {STRATEGIES})")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1] (1 = off), got {top_p}")
    if isinstance(no_repeat_ngram, bool) or not isinstance(no_repeat_ngram, int) \
            or no_repeat_ngram < 0:
        raise ValueError(f"no_repeat_ngram must be a whole number >= 0 (0 = off), "
                         f"got {no_repeat_ngram!r}")


class Generator(nn.Module):
    """GRU decoder p(x | z, c) with teacher forcing, step-wise and batched free-running decoding."""

    def __init__(self, cfg: ModelConfig, *, vocab_size: int, code_dim: int, pad_id: int,
                 bos_id: int, eos_id: int, embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        embedding = word_table(embedding, cfg, vocab_size=vocab_size, pad_id=pad_id)
        self.vocab_size = vocab_size
        self.z_dim = cfg.z_dim
        self.code_dim = code_dim
        self.num_layers = cfg.generator_layers
        self.hidden_dim = cfg.hidden_dim
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        cond_dim = cfg.z_dim + code_dim
        self.embedding = embedding
        self.dropout = nn.Dropout(cfg.dropout)
        self.init_hidden = nn.Linear(cond_dim, cfg.generator_layers * cfg.hidden_dim)
        self.gru = nn.GRU(cfg.embedding_dim + cond_dim, cfg.hidden_dim,
                          num_layers=cfg.generator_layers, batch_first=True,
                          dropout=gru_dropout(cfg.dropout, cfg.generator_layers))
        # the encoder's state size: what a memory of the source holds per position
        memory_dim = cfg.hidden_dim * (2 if cfg.encoder_bidirectional else 1)
        self.attention = Attention(cfg.hidden_dim, memory_dim) if cfg.attention else None
        self.memory_dropout = cfg.memory_dropout  # read by the training steps
        self.tied = cfg.tie_output
        if self.tied:
            self.to_embedding = nn.Linear(cfg.hidden_dim, cfg.embedding_dim)
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.output = nn.Linear(cfg.hidden_dim, vocab_size)
        # kept on the module's device, so forbidding them never copies from the host (a copy to a
        # GPU waits for it); non-persistent: derived from the ids, not part of a checkpoint
        self.register_buffer("special_ids", torch.tensor(
            sorted({pad_id, bos_id} - {eos_id}), dtype=torch.long), persistent=False)

    # ---------------------------------------------------------------- pieces

    def embed(self, tokens: Tensor) -> Tensor:
        """Token ids (...) -> embeddings (..., E); dropout is applied where they enter the GRU."""
        return self.embedding(tokens)

    def embed_soft(self, probs: Tensor) -> Tensor:
        """Distributions over the vocabulary (..., V) -> expected embeddings (..., E)."""
        return probs @ self.embedding.weight

    def project(self, outputs: Tensor, memory: Memory | None = None) -> Tensor:
        """GRU outputs (B, T, H) -> logits (B, T, V), attending to `memory` if the generator
        has attention (None: no source, a zero context)."""
        if self.attention is not None:
            outputs = self.attention(outputs, memory)  # (B, T, H)
        if self.tied:
            return F.linear(self.to_embedding(outputs), self.embedding.weight, self.output_bias)
        return self.output(outputs)

    def memory(self, states: Tensor, mask: Tensor) -> Memory:
        """The source's encoder states (B, S, M) and mask (B, S) as this generator attends to
        them (their keys computed once for every step)."""
        if self.attention is None:
            raise ValueError("this generator has no attention (model.attention = false)")
        return self.attention.memory(states, mask)

    def forbid_special(self, logits: Tensor) -> Tensor:
        """Logits (..., V) with PAD and BOS at -inf: neither is ever a word to produce.

        A PAD inside a sentence would read as its end to everything downstream, and BOS is never
        a training target; an untrained model can still rank them first, so decoding (hard or
        soft) removes them rather than trusting the model to have learnt it.
        """
        return logits.index_fill(-1, self.forbidden_ids(device=logits.device), float("-inf"))

    def forbidden_ids(self, *, device: torch.device | None = None) -> Tensor:
        """The ids `forbid_special` sets to -inf (k,): PAD and BOS, unless one of them is EOS."""
        return self.special_ids if device is None else self.special_ids.to(device)

    def teacher_inputs(self, tokens: Tensor) -> Tensor:
        """BOS + tokens[:, :-1] (B, T), the inputs that predict `tokens`."""
        return shift_right(tokens, self.bos_id)

    def start_tokens(self, batch_size: int, *, device: torch.device | None = None) -> Tensor:
        """The first input of free-running decoding: BOS for every row (B,)."""
        return torch.full((batch_size,), self.bos_id, dtype=torch.long, device=device)

    def conditioning(self, z: Tensor, c: Tensor) -> Tensor:
        """[z; c] (B, Z + C), checked against the sizes this generator was built for."""
        if z.shape[-1] != self.z_dim or c.shape[-1] != self.code_dim:
            raise ValueError(f"z is {tuple(z.shape)} and c is {tuple(c.shape)}; this generator "
                             f"expects (B, {self.z_dim}) and (B, {self.code_dim})")
        return torch.cat([z, c.to(z.dtype)], dim=-1)

    def initial_state(self, z: Tensor, c: Tensor) -> Tensor:
        """Initial hidden state of every layer, tanh(W [z; c] + b) (L, B, H)."""
        zc = self.conditioning(z, c)  # (B, Z+C)
        flat = torch.tanh(self.init_hidden(zc))  # (B, L*H)
        return flat.view(zc.shape[0], self.num_layers, self.hidden_dim).transpose(0, 1).contiguous()

    def step(self, input_emb: Tensor, hidden: Tensor, zc: Tensor,
             memory: Memory | None = None) -> Step:
        """One decoder step: input embedding (B, E), hidden (L, B, H), [z; c] (B, Z+C)."""
        x = torch.cat([self.dropout(input_emb), zc], dim=-1).unsqueeze(1)  # (B, 1, E+Z+C)
        out, hidden = self.gru(x, hidden)  # (B, 1, H), (L, B, H)
        return Step(logits=self.project(out, memory).squeeze(1), hidden=hidden)

    # ---------------------------------------------------------------- teacher forcing

    def forward(self, inputs: Tensor, z: Tensor, c: Tensor, memory: Memory | None = None
                ) -> Tensor:
        """Teacher forcing: inputs (B, T) (BOS + tokens[:, :-1]) -> logits (B, T, V)."""
        return self.forward_embeddings(self.embed(inputs), z, c, memory)

    def forward_embeddings(self, embedded: Tensor, z: Tensor, c: Tensor,
                           memory: Memory | None = None) -> Tensor:
        """Teacher forcing from input embeddings (B, T, E) -> logits (B, T, V)."""
        zc = self.conditioning(z, c)  # (B, Z+C)
        hidden = self.initial_state(z, c)  # (L, B, H)
        steps = embedded.shape[1]
        x = torch.cat([self.dropout(embedded), zc.unsqueeze(1).expand(-1, steps, -1)],
                      dim=-1)  # (B, T, E+Z+C)
        out, _ = self.gru(x, hidden)  # (B, T, H)
        return self.project(out, memory)  # (B, T, V)

    # ---------------------------------------------------------------- free running

    @torch.no_grad()
    def decode(self, z: Tensor, c: Tensor, *, max_len: int, strategy: str = "greedy",
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               generator: torch.Generator | None = None,
               exit_check_every: int | None = None, memory: Memory | None = None,
               no_repeat_ngram: int = 0) -> Decoded:
        """Hard decoding of every row in parallel, each stopped at its first EOS.

        One Python loop over time steps; a finished row keeps running through the GRU (cheaper
        than compacting the batch) but its outputs are replaced by padding. PAD and BOS are never
        produced (`forbid_special`). Every `exit_check_every` steps the loop stops if every row
        has ended, so `tokens` may be narrower than max_len; with a check every k steps it may
        hold up to k - 1 all-padding columns after the longest sentence (the tokens, lengths and
        ended flags are the same whatever k). Each check reads a flag from the device, which on
        a GPU waits for it; None checks every step on a CPU, where a read is free, and every
        GPU_EXIT_CHECK_EVERY steps where it waits (`textgan.checks.reading_waits`). `memory`
        is the source to attend to (reconstruction, transfer; rows as z's), None for none.
        `no_repeat_ngram` n > 0 never writes an n-gram twice in a row's sentence
        (`ban_repeated_ngrams`): against the loops a greedy decoder falls into. Dropout
        applies if the module is in training mode: call `.eval()` for test-time decoding. No gradients: the result is discrete (soft generation
        is the differentiable path).
        """
        check_decoding(max_len=max_len, strategy=strategy, temperature=temperature,
                       top_k=top_k, top_p=top_p, no_repeat_ngram=no_repeat_ngram)
        if exit_check_every is None:
            exit_check_every = GPU_EXIT_CHECK_EVERY if checks.reading_waits(z) else 1
        if exit_check_every < 1:
            raise ValueError(f"exit_check_every must be at least 1, got {exit_check_every}")
        zc = self.conditioning(z, c)  # (B, Z+C)
        hidden = self.initial_state(z, c)  # (L, B, H)
        batch = zc.shape[0]
        inputs = self.start_tokens(batch, device=zc.device)  # (B,)
        tokens = torch.full((batch, max_len), self.pad_id, dtype=torch.long,
                            device=zc.device)  # (B, max_len)
        lengths = torch.full((batch,), max_len, dtype=torch.long, device=zc.device)  # (B,)
        ended = torch.zeros(batch, dtype=torch.bool, device=zc.device)  # (B,)
        steps = max_len
        for t in range(max_len):
            logits, hidden = self.step(self.embed(inputs), hidden, zc, memory)  # (B, V)
            logits = ban_repeated_ngrams(self.forbid_special(logits), tokens[:, :t],
                                         no_repeat_ngram, active=~ended)
            chosen = choose_next(logits, strategy=strategy,
                                 temperature=temperature, top_k=top_k, top_p=top_p,
                                 generator=generator)  # (B,)
            chosen = chosen.masked_fill(ended, self.pad_id)
            tokens[:, t] = chosen
            first_eos = (chosen == self.eos_id) & ~ended
            lengths = lengths.masked_fill(first_eos, t + 1)
            ended = ended | first_eos
            # A host read buys the early exit, which saves far more on short outputs.
            if (t + 1) % exit_check_every == 0 and bool(ended.all()):
                steps = t + 1
                break
            inputs = chosen
        return Decoded(tokens=tokens[:, :steps], lengths=lengths, ended=ended)
