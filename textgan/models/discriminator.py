"""The discriminator q_D(c|x): reads a sentence (hard ids or a soft generated one) and predicts
every attribute of the structured code c, one classification head per attribute.

    d = Discriminator(cfg.discriminator, vocab_size=V, num_classes=[2, 2], pad_id=tok.pad_id)
    logits = d(batch.tokens, batch.lengths)         # [(B, 2), (B, 2)], one entry per attribute
    soft = soft_generate(generator, z, c, ...)      # SoftSentence: probs (B, T, V), weights
    logits = d.forward_soft(soft.probs, soft.weights)   # weights (B, T) = P(no EOS before t)

The result is a plain list of logits, index a = attribute a of `num_classes` (the order of c's
blocks in `textgan.models.code`): the losses iterate over attributes and zip the list with the
label columns, so a list is what they want; a NamedTuple holding one list would only add a hop.

D owns its embedding table and never shares it with the encoder/generator. D is trained to
classify real and generated text while G is trained (through this very table) to produce text
that D reads as the intended class; with one shared table, G's step would also move D's input
space (a G-updates-D leak that breaks the alternating D/G game: "-log q_D" would fall by
rewriting D's features rather than G's words), and D's step would move the space G writes in
and the encoder reads. Hu et al. keep D a separate network for the same reason.

Two readers, chosen by `cfg.kind`:

- ``cnn`` (Kim 2014): one Conv1d per filter width (`filters` channels), ReLU, max over time,
  concatenated. Both inputs become one computation: every position's embedding is scaled by
  its weight (1/0 from `lengths` for hard input, P(no EOS before t) for soft input), so
  positions after the end are zero vectors, then the sequence is right-padded with `max(width)`
  zero vectors and the max runs over ALL windows. The windows past the end all see only zero
  vectors and give the same value, relu(bias), which is always in the pool (the padding
  guarantees one all-zero window per width). Hence:
    * pad invariance: extra padding adds only more copies of a value already in the pool, and
      ids in padded positions are multiplied by 0;
    * every sentence, even one token long with 5-wide filters, has its windows starting at a
      real token (run into the zero padding on the right, as in a "wide" convolution);
    * hard == soft exactly for one-hot probs and 0/1 weights (same arithmetic);
    * with soft weights the late positions fade continuously toward zero vectors, so the output
      and its gradient are continuous in the weights. The alternative, masking windows with
      log(weight) before the max, puts -inf (and NaN gradients, 0 * inf) wherever a weight
      underflows to 0 and needs clamps; scaling needs none. The price is a floor relu(bias)
      under each pooled feature, which D can set to 0 by a non-positive bias (and ReLU already
      floors at 0).
- ``gru``: one unidirectional GRU layer. Hard input runs unpacked and reads the state at the
  last real token (EOS): the GRU is causal, so the padding after it changes nothing there, and
  unlike packing this needs no lengths on the host (no wait for a GPU). Soft input runs
  unpacked over the UNSCALED expected embeddings and reads out the expected state at the end of
  the sentence,
      sum_t (w_t - w_{t+1}) h_t      (w_T := 0),
  since w_t - w_{t+1} is the probability that the sentence ends at t. The inputs are not scaled
  by w: the state h_t only matters on the branch where the sentence is still running at t, and
  on that branch the tokens before t are real (scaling them would read a faded sentence on every
  branch). For 0/1 weights the read-out picks h at the last real token, i.e. the hard result;
  positions after the end never influence h before it (the GRU is causal).

Then dropout (`cfg.dropout`, only before the heads) and one Linear head per attribute.

Soft input never needs ids, and gradients flow to `probs` (and to `weights`) on both readers:
that is how the generator is trained through D (`-log q_D(c | G_tau(z, c))`). D is a pure
network: losses, accuracy and the choice of real/generated batches live elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan.checks import require
from textgan.config import DiscriminatorConfig
from textgan.losses import length_mask
from textgan.models.code import code_dim

KINDS = ("cnn", "gru")


def hard_weights(lengths: Tensor, max_len: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """The 0/1 weights of hard sentences: 1 at t < lengths[b] (EOS included), 0 after (B, T).

    What `SoftSentence.weights` (textgan.models.soft) is for one-hot rows, so
    `forward_soft(one_hot(tokens), hard_weights(lengths, T))` reads like `forward(tokens, lengths)`.
    """
    return length_mask(lengths, max_len).to(dtype)  # (B, T)


def check_lengths(lengths: Tensor, batch: int, max_len: int) -> None:
    """ValueError unless lengths is (B,) with each value in 1..max_len.

    A length outside the padded width would otherwise be read silently as "the whole row" (CNN)
    or index past it (GRU). On CUDA the value check is a device-side assertion (textgan.checks).
    """
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must be ({batch},), got {tuple(lengths.shape)}")
    require((lengths >= 1) & (lengths <= max_len),
            lambda: f"lengths must lie in 1..{max_len} (the padded width), got {lengths.tolist()}")


class ConvReader(nn.Module):
    """Kim-2014 CNN over weight-scaled embeddings -> (B, len(widths) * filters) features."""

    def __init__(self, embedding_dim: int, *, filter_widths: Sequence[int], filters: int) -> None:
        super().__init__()
        if not filter_widths or min(filter_widths) < 1:
            raise ValueError(f"filter widths must be positive, got {list(filter_widths)}")
        self.max_width = max(filter_widths)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, filters, kernel_size=int(width))
                                   for width in filter_widths)
        self.output_dim = len(filter_widths) * filters

    def forward(self, embedded: Tensor, weights: Tensor) -> Tensor:
        """Embeddings (B, T, E) and position weights (B, T) in [0, 1] -> features (B, F)."""
        scaled = embedded * weights.unsqueeze(-1).to(embedded.dtype)  # (B, T, E)
        # max_width zero vectors after the last position: every position starts a full window
        # of every width, and every width gets at least one all-zero window (see the module
        # docstring: that window's value is what padding contributes, so padding adds nothing).
        padded = F.pad(scaled, (0, 0, 0, self.max_width)).transpose(1, 2)  # (B, E, T+Wmax)
        pooled = [torch.relu(conv(padded)).amax(dim=2) for conv in self.convs]  # n x (B, filters)
        return torch.cat(pooled, dim=1)  # (B, F)


class GRUReader(nn.Module):
    """One-layer GRU -> its state at the (expected) end of the sentence (B, H)."""

    def __init__(self, embedding_dim: int, *, hidden_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(embedding_dim, hidden_dim, batch_first=True)
        self.output_dim = hidden_dim

    def forward_hard(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        """Embeddings (B, T, E), lengths (B,) on any device -> state at the last real token
        (B, H): what a packed run would end in, since the padding after it comes later."""
        outputs, _ = self.gru(embedded)  # (B, T, H)
        last = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
        return outputs.gather(1, last).squeeze(1)  # (B, H)

    def forward_soft(self, embedded: Tensor, weights: Tensor) -> Tensor:
        """Unscaled embeddings (B, T, E), weights (B, T) -> expected final state (B, H)."""
        outputs, _ = self.gru(embedded)  # (B, T, H)
        # P(the sentence ends at t) = w_t - w_{t+1}, with w_T = 0: a sentence still running at
        # the last position is read there, as hard decoding cuts it at max_len.
        ends = weights - F.pad(weights[:, 1:], (0, 1))  # (B, T)
        return (ends.unsqueeze(-1).to(outputs.dtype) * outputs).sum(dim=1)  # (B, H)


class Discriminator(nn.Module):
    """Attribute classifier q_D(c|x) with its own embedding table, a CNN or GRU reader and one
    Linear head per attribute; reads token ids (`forward`) or soft sentences (`forward_soft`)."""

    def __init__(self, cfg: DiscriminatorConfig, *, vocab_size: int, num_classes: Sequence[int],
                 pad_id: int) -> None:
        super().__init__()
        if code_dim(num_classes) == 0:  # also rejects an attribute with < 1 class
            raise ValueError("the discriminator needs at least one attribute (num_classes is "
                             "empty: an unlabelled corpus has nothing for D to predict)")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary (size {vocab_size})")
        self.kind = cfg.kind
        self.vocab_size = vocab_size
        self.num_classes = [int(n) for n in num_classes]
        self.pad_id = pad_id
        # D's own table (see the module docstring for why it is never G's); the pad row is zero,
        # though the weights/lengths masking alone already keeps padding out of the output.
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)
        self.reader: ConvReader | GRUReader
        if cfg.kind == "cnn":
            self.reader = ConvReader(cfg.embedding_dim, filter_widths=cfg.filter_widths,
                                     filters=cfg.filters)
        elif cfg.kind == "gru":
            self.reader = GRUReader(cfg.embedding_dim, hidden_dim=cfg.hidden_dim)
        else:
            raise ValueError(f"unknown discriminator kind '{cfg.kind}' (use one of {KINDS})")
        self.dropout = nn.Dropout(cfg.dropout)
        self.heads = nn.ModuleList(nn.Linear(self.reader.output_dim, n) for n in self.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> list[Tensor]:
        """Token ids (B, T) right-padded, lengths (B,) incl. EOS -> logits [(B, K_a) per attr].

        Positions t >= lengths[b] never influence row b, whatever ids they hold.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T), got {tuple(tokens.shape)}")
        batch, steps = tokens.shape
        check_lengths(lengths, batch, steps)
        embedded = self.embedding(tokens)  # (B, T, E)
        if isinstance(self.reader, GRUReader):
            features = self.reader.forward_hard(embedded, lengths)  # (B, H)
        else:
            weights = hard_weights(lengths, steps, dtype=embedded.dtype)  # (B, T)
            features = self.reader(embedded, weights)  # (B, F)
        return self.classify(features)

    def forward_soft(self, probs: Tensor, weights: Tensor) -> list[Tensor]:
        """Soft sentence: distributions (B, T, V), weights (B, T) = P(no EOS before t) ->
        logits [(B, K_a) per attribute].

        Position t reads the expected embedding probs[:, t] @ E. The weights are expected to
        start at 1 and not increase (`SoftSentence.weights` and `alive_weights` do). One-hot
        probs with weights 1 for t < L and 0 after give the logits of `forward(tokens, L)`.
        """
        if probs.dim() != 3 or probs.shape[-1] != self.vocab_size:
            raise ValueError(f"probs must be (B, T, {self.vocab_size}), got "
                             f"{tuple(probs.shape)}")
        if weights.shape != probs.shape[:2]:
            raise ValueError(f"weights must be {tuple(probs.shape[:2])} (B, T), got "
                             f"{tuple(weights.shape)}")
        embedded = probs @ self.embedding.weight  # (B, T, E)
        if isinstance(self.reader, GRUReader):
            features = self.reader.forward_soft(embedded, weights)  # (B, H)
        else:
            features = self.reader(embedded, weights)  # (B, F)
        return self.classify(features)

    def classify(self, features: Tensor) -> list[Tensor]:
        """Reader features (B, F) -> dropout -> one head per attribute [(B, K_a)]."""
        features = self.dropout(features)
        return [head(features) for head in self.heads]
