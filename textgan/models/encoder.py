"""The VAE encoder q_E(z|x): a GRU over packed sentences, projected to a diagonal Gaussian.

    encoder = Encoder(cfg.model, vocab_size=V, pad_id=tok.pad_id)
    posterior = encoder(batch.tokens, batch.host_lengths)  # Posterior(mean, logvar), (B, Z) each
    z = reparameterize(posterior, generator=g)             # (B, Z), fresh noise per row

The sentence is packed, so the GRU stops at each row's last real token (EOS): appending padding,
or changing what sits in padded positions, never changes the encoding, and the backward direction
of a bidirectional GRU starts at the last real token rather than at the end of the padding.

mean and logvar are a linear projection of the TOP layer's final state, both directions
concatenated (2H when bidirectional). The lower layers' final states are not used: they are
already summarised in the top layer's input, and including them would make the projection grow
with depth and offer a shortcut around the top layer.

Soft sentences (a generator's per-step distributions, (B, T, V)) are read through the same
table as `embed_soft(probs) = probs @ embedding.weight`, then `encode_embeddings`; that is how the
independence constraint -log q_E(z | G_tau(z, c)) reaches the generator.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textgan.config import ModelConfig
from textgan.models.markers import mask_soft, mask_tokens


class Posterior(NamedTuple):
    """Diagonal Gaussian q(z|x)."""

    mean: Tensor  # (B, Z)
    logvar: Tensor  # (B, Z)


def make_embedding(cfg: ModelConfig, *, vocab_size: int, pad_id: int) -> nn.Embedding:
    """The word embedding table; the pad row is zero and never trained."""
    return nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)


def word_table(shared: nn.Embedding | None, cfg: ModelConfig, *, vocab_size: int,
               pad_id: int) -> nn.Embedding:
    """A network's word table: the `shared` one, which must match this network's sizes (or
    weights would be silently misread), else a new one (`make_embedding`)."""
    if shared is None:
        return make_embedding(cfg, vocab_size=vocab_size, pad_id=pad_id)
    if shared.num_embeddings != vocab_size or shared.embedding_dim != cfg.embedding_dim:
        raise ValueError(
            f"shared embedding is {shared.num_embeddings} x {shared.embedding_dim}, this "
            f"network needs {vocab_size} x {cfg.embedding_dim}")
    return shared


def gru_dropout(cfg_dropout: float, num_layers: int) -> float:
    """nn.GRU's dropout acts only between layers and warns when there is one layer: pass 0 then."""
    return cfg_dropout if num_layers > 1 else 0.0


def reparameterize(posterior: Posterior, *, generator: torch.Generator | None = None) -> Tensor:
    """z = mean + eps * exp(logvar / 2), eps ~ N(0, I) drawn independently for every row.

    With a generator, eps comes from it (it must live on the posterior's device); without one,
    from the global stream via randn_like.
    """
    std = torch.exp(0.5 * posterior.logvar)  # (B, Z)
    if generator is None:
        eps = torch.randn_like(std)
    else:
        eps = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
    return posterior.mean + eps * std  # (B, Z)


class Encoder(nn.Module):
    """Bidirectional (configurable) multi-layer GRU encoder producing q(z|x)."""

    def __init__(self, cfg: ModelConfig, *, vocab_size: int, pad_id: int,
                 embedding: nn.Embedding | None = None) -> None:
        super().__init__()
        embedding = word_table(embedding, cfg, vocab_size=vocab_size, pad_id=pad_id)
        self.pad_id = pad_id
        self.num_layers = cfg.encoder_layers
        self.num_directions = 2 if cfg.encoder_bidirectional else 1
        self.embedding = embedding
        self.dropout = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.embedding_dim, cfg.hidden_dim, num_layers=cfg.encoder_layers,
                          bidirectional=cfg.encoder_bidirectional, batch_first=True,
                          dropout=gru_dropout(cfg.dropout, cfg.encoder_layers))
        # One projection to [mean; logvar], split afterwards: one matmul instead of two.
        self.to_posterior = nn.Linear(self.num_directions * cfg.hidden_dim, 2 * cfg.z_dim)
        # model.style_marker_salience: the words hidden from this encoder (textgan.models.markers),
        # chosen from the training split when pretraining starts and saved with the weights
        self.register_buffer(
            "style_markers",
            torch.zeros(vocab_size, dtype=torch.bool) if cfg.style_marker_salience > 0 else None)

    def set_style_markers(self, markers: Tensor) -> None:
        """The tokens (V,) bool this encoder reads as <unk> (model.style_marker_salience)."""
        if self.style_markers is None:
            raise ValueError("this encoder hides no style markers (model.style_marker_salience "
                             "= 0)")
        if markers.shape != self.style_markers.shape:
            raise ValueError(f"style markers must be ({self.style_markers.shape[0]},) bool, got "
                             f"{tuple(markers.shape)}")
        self.style_markers.copy_(markers)

    def embed(self, tokens: Tensor) -> Tensor:
        """Token ids (B, T) -> embeddings (B, T, E), style markers read as <unk>; dropout is
        applied in encode_embeddings."""
        if self.style_markers is not None:
            tokens = mask_tokens(tokens, self.style_markers)
        return self.embedding(tokens)

    def embed_soft(self, probs: Tensor) -> Tensor:
        """Per-position distributions over the vocabulary (B, T, V) -> expected embeddings, the
        mass on style markers read as <unk>."""
        if self.style_markers is not None:
            probs = mask_soft(probs, self.style_markers)
        return probs @ self.embedding.weight  # (B, T, E)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Posterior:
        """tokens (B, T) right-padded, lengths (B,) real tokens incl. EOS -> q(z|x)."""
        return self.encode_embeddings(self.embed(tokens), lengths)

    def encode_with_states(self, tokens: Tensor, lengths: Tensor) -> tuple[Posterior, Tensor]:
        """q(z|x) and the top layer's state at every position (B, T, D*H), zero after each
        row's end: the memory a generator with attention reads (`textgan.models.attention`)."""
        return self._encode(self.embed(tokens), lengths, with_states=True)

    def encode_embeddings_with_states(self, embedded: Tensor, lengths: Tensor
                                      ) -> tuple[Posterior, Tensor]:
        """`encode_with_states` from embeddings (B, T, E), e.g. a soft sentence's."""
        return self._encode(embedded, lengths, with_states=True)

    def encode_embeddings(self, embedded: Tensor, lengths: Tensor | None) -> Posterior:
        """Embeddings (B, T, E) -> q(z|x), reading row b up to lengths[b] only.

        lengths=None reads all T positions of every row (soft sentences whose positions are
        weighted rather than cut).
        """
        return self._encode(embedded, lengths, with_states=False)[0]

    def _encode(self, embedded: Tensor, lengths: Tensor | None, *, with_states: bool
                ) -> tuple[Posterior, Tensor | None]:
        embedded = self.dropout(embedded)  # (B, T, E)
        states = None
        if lengths is None:
            outputs, h_n = self.gru(embedded)  # h_n: (L*D, B, H)
            states = outputs if with_states else None
        else:
            # pack_padded_sequence wants the lengths on the CPU as int64, whatever the device of
            # the data. Lengths already there (Batch.host_lengths) cost nothing; lengths on a GPU
            # cost one wait for it here. The checks below read the CPU copy: free.
            cpu_lengths = lengths.detach().to(device="cpu", dtype=torch.int64)
            if cpu_lengths.dim() != 1 or cpu_lengths.shape[0] != embedded.shape[0]:
                raise ValueError(f"lengths must be ({embedded.shape[0]},), got "
                                 f"{tuple(cpu_lengths.shape)}")
            if bool((cpu_lengths < 1).any()) or bool((cpu_lengths > embedded.shape[1]).any()):
                raise ValueError(f"lengths must lie in 1..{embedded.shape[1]} (the padded "
                                 f"width), got {cpu_lengths.tolist()}")
            packed = pack_padded_sequence(embedded, cpu_lengths, batch_first=True,
                                          enforce_sorted=False)
            # nn.GRU restores the batch order of h_n for packed input with enforce_sorted=False.
            outputs, h_n = self.gru(packed)  # (L*D, B, H)
            if with_states:
                # zero after each row's end; unpacking also restores the batch order
                states, _ = pad_packed_sequence(outputs, batch_first=True,
                                                total_length=embedded.shape[1])  # (B, T, D*H)
        batch = h_n.shape[1]
        top = h_n.reshape(self.num_layers, self.num_directions, batch, -1)[-1]  # (D, B, H)
        summary = top.transpose(0, 1).reshape(batch, -1)  # (B, D*H)
        # The posterior's parameters in fp32 whatever autocast does: the Gaussian losses divide
        # by exp(logvar), which magnifies bf16's rounding of the mean.
        with torch.autocast(summary.device.type, enabled=False):
            mean, logvar = self.to_posterior(summary.float()).chunk(2, dim=-1)  # (B, Z) each
        return Posterior(mean=mean, logvar=logvar), states
