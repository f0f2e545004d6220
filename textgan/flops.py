"""Analytic FLOP counts of the networks and of one training step of each stage.

    from textgan.flops import pretrain_step_flops, adversarial_step_flops
    cost = pretrain_step_flops(cfg.model, vocab_size=V, code_dim=C)      # a Cost
    flops = cost.total(tokens=int(batch.lengths.sum()), sentences=B)     # one pretraining step
    parts = adversarial_step_flops(cfg.model, cfg.discriminator, vocab_size=V,
                                   num_classes=[2, 2], batch_size=B, real_tokens=N, max_len=T)
    parts["total"]                                                       # one wake-sleep round

What is counted, and why (the usual "model FLOPs" convention of MFU figures, PaLM appendix B):

- Only matrix products: one multiply-accumulate (MAC) is 2 FLOPs. Elementwise work (gate
  nonlinearities, biases, dropout, softmax, losses, the optimizer update) is left out: it is a
  few FLOPs per activation against hundreds per weight, and on a CPU or GPU it is memory-bound
  rather than matmul-bound anyway.
- Embedding lookups are 0 FLOPs (a gather). A *soft* input (a distribution over the vocabulary,
  read as `probs @ embedding.weight`) is a real product: 2 V E FLOPs per position.
- Only REAL positions: the tokens of each sentence up to and including EOS. Work that a batch
  does on padding is waste, not model work, so it lowers the achieved fraction of peak instead
  of inflating the count (report the loader's padding fraction beside it).
- Backward costs 2x forward (gradients w.r.t. activations and w.r.t. weights, one product each),
  so a trained network costs 3x its forward pass (`TRAIN`). A network whose weights are frozen
  but whose input needs a gradient (D and E reading the soft sentence in the G step) costs 2x
  (`FROZEN`: forward + the activation half of backward). Under `torch.no_grad` it is 1x
  (`NO_GRAD`). The 3x is the convention, slightly high for a first layer whose input needs no
  gradient (there the activation gradient of the input product is skipped).

Costs split into a part per real token and a part per sentence (projections of a sentence's
summary, initial states, classifier heads), combined by `Cost.total(tokens, sentences)`. Every
function is a pure function of the config and the shapes; `tests/test_flops.py` checks them by
hand and against `torch.utils.flop_counter` on the real modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textgan.config import DiscriminatorConfig, ModelConfig

# Multipliers of a forward pass: trained, frozen (gradient to the input only), no gradient.
TRAIN = 3.0
FROZEN = 2.0
NO_GRAD = 1.0


@dataclass(frozen=True)
class Cost:
    """FLOPs of a forward pass: `per_token` for every real position, `per_sentence` once per row."""

    per_token: float = 0.0
    per_sentence: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.per_token + other.per_token, self.per_sentence + other.per_sentence)

    def __mul__(self, factor: float) -> Cost:
        return Cost(self.per_token * factor, self.per_sentence * factor)

    __rmul__ = __mul__

    def total(self, tokens: float, sentences: float) -> float:
        """FLOPs for `sentences` rows holding `tokens` real positions in all."""
        return self.per_token * tokens + self.per_sentence * sentences


# --------------------------------------------------------------------------- building blocks


def linear_flops(in_features: int, out_features: int) -> float:
    """y = W x + b for one input vector: in x out MACs, 2 FLOPs each (the bias add is ignored)."""
    return 2.0 * in_features * out_features


def gru_flops(input_size: int, hidden_size: int, *, num_layers: int = 1,
              bidirectional: bool = False) -> float:
    """One time step of one row through an nn.GRU (all layers and directions).

    Each layer and direction has 3 gates (reset, update, candidate), each with an input product
    W_i x (input_size x H MACs) and a hidden product W_h h (H x H MACs):
    3 * (2 I H + 2 H H) FLOPs. Layer 1 reads the input; a later layer reads the previous layer's
    output, D * H wide (D = 2 directions when bidirectional, else 1).
    """
    directions = 2 if bidirectional else 1
    total = 0.0
    layer_input = input_size
    for _ in range(num_layers):
        total += directions * 3 * (2.0 * layer_input * hidden_size
                                   + 2.0 * hidden_size * hidden_size)
        layer_input = directions * hidden_size
    return total


def conv1d_flops(in_channels: int, out_channels: int, width: int) -> float:
    """One output position of a Conv1d: in x out x width MACs."""
    return 2.0 * in_channels * out_channels * width


def soft_embedding_flops(vocab_size: int, embedding_dim: int) -> float:
    """One soft input position, probs (V,) @ table (V, E): V x E MACs (a hard id is a lookup)."""
    return 2.0 * vocab_size * embedding_dim


# --------------------------------------------------------------------------- the networks


def encoder_flops(cfg: ModelConfig) -> Cost:
    """Forward pass of the encoder q_E(z|x) (textgan.models.encoder) on hard ids.

    Per real token: the (bidirectional, multi-layer) GRU; the sentence is packed, so padding is
    never read. Per sentence: the projection of the top layer's final state(s), D H wide, to
    [mean; logvar], 2 Z wide.
    """
    directions = 2 if cfg.encoder_bidirectional else 1
    return Cost(
        per_token=gru_flops(cfg.embedding_dim, cfg.hidden_dim, num_layers=cfg.encoder_layers,
                            bidirectional=cfg.encoder_bidirectional),
        per_sentence=linear_flops(directions * cfg.hidden_dim, 2 * cfg.z_dim))


def generator_flops(cfg: ModelConfig, *, vocab_size: int, code_dim: int) -> Cost:
    """Forward pass of the generator p_G(x|z,c) (textgan.models.generator), one step per token.

    Per token (teacher forcing or one free-running step): the GRU, whose input is the word
    embedding concatenated with [z; c] (E + Z + C wide), and the output layer H -> V, the
    softmax projection, usually the largest single product. Per sentence: the initial state
    tanh(W [z; c]), Z + C -> L H. Soft inputs add `soft_embedding_flops` per step on top.
    """
    step_input = cfg.embedding_dim + cfg.z_dim + code_dim
    return Cost(
        per_token=gru_flops(step_input, cfg.hidden_dim, num_layers=cfg.generator_layers)
        + linear_flops(cfg.hidden_dim, vocab_size),
        per_sentence=linear_flops(cfg.z_dim + code_dim, cfg.generator_layers * cfg.hidden_dim))


def discriminator_flops(cfg: DiscriminatorConfig, *, num_classes: Sequence[int]) -> Cost:
    """Forward pass of the discriminator q_D(c|x) (textgan.models.discriminator) on hard ids.

    cnn (Kim 2014): per real token, one window of every width starts there (a Conv1d output
    position per width, E_D x filters x width MACs). By design the reader appends max(width)
    zero vectors to every sentence, so each width w also computes max(width) - w + 1 windows
    that start after the last token: those are counted per sentence (they are the model, not
    batch padding). gru: one GRU step per real token (packed). Per sentence: one Linear head
    per attribute, reader features -> classes.
    """
    if cfg.kind == "cnn":
        widest = max(cfg.filter_widths)
        per_token = sum(conv1d_flops(cfg.embedding_dim, cfg.filters, w)
                        for w in cfg.filter_widths)
        per_sentence = sum((widest - w + 1) * conv1d_flops(cfg.embedding_dim, cfg.filters, w)
                           for w in cfg.filter_widths)
        features = len(cfg.filter_widths) * cfg.filters
    elif cfg.kind == "gru":
        per_token = gru_flops(cfg.embedding_dim, cfg.hidden_dim)
        per_sentence = 0.0
        features = cfg.hidden_dim
    else:
        raise ValueError(f"unknown discriminator kind '{cfg.kind}'")
    heads = sum(linear_flops(features, int(n)) for n in num_classes)
    return Cost(per_token=per_token, per_sentence=per_sentence + heads)


# --------------------------------------------------------------------------- the stages


def pretrain_step_flops(cfg: ModelConfig, *, vocab_size: int, code_dim: int) -> Cost:
    """One pretraining step (textgan.engines.create_pretrain_trainer): encoder and teacher-forced
    generator, forward and backward (3x forward), over the batch's real tokens.

    `cost.total(tokens, sentences)` is the step's model FLOPs; `cost.per_token` plus
    `cost.per_sentence / mean length` is the cost per real token.
    """
    return TRAIN * (encoder_flops(cfg) + generator_flops(cfg, vocab_size=vocab_size,
                                                         code_dim=code_dim))


def adversarial_step_flops(model: ModelConfig, disc: DiscriminatorConfig, *, vocab_size: int,
                           num_classes: Sequence[int], batch_size: int, real_tokens: int,
                           max_len: int, generated_tokens: int | None = None) -> dict[str, float]:
    """One wake-sleep round (textgan.engines.AdversarialSteps): its FLOPs by part, and "total".

    B = batch_size sentences holding N = real_tokens real tokens; T = max_len. Approximate where
    the amount of work depends on what the generator writes: `generated_tokens` is the real
    length of the B hard samples (default B T, exact for a fresh model, which almost never
    writes EOS: decoding then runs all T steps, and it stops early only when EVERY row ended).

    D step:
      d_real     D on the real batch, trained (3x)
      g_sample   hard sampling x_hat ~ G(z, c) without gradient: B T generator steps (1x)
      d_fake     D on x_hat, trained (3x), `generated_tokens` positions
    G+E step:
      d_labels   D's guess of the missing labels of the real batch, no gradient (1x)
      vae        encoder and teacher-forced generator on the real batch, trained (3x)
      g_soft     soft generation G_tau(z, c): B T generator steps, each fed the previous step's
                 distribution as a soft embedding (2 V E), trained (3x); relaxation elementwise
      d_soft     frozen D on the soft sentence (2x): the soft embedding of all B T positions,
                 then the reader over all T positions
      e_soft     frozen E on the soft sentence (2x): the soft embedding of all B T positions,
                 then the GRU up to the hard reading's end (`generated_tokens` positions)
    """
    steps = batch_size * max_len
    generated = steps if generated_tokens is None else generated_tokens
    code = sum(int(n) for n in num_classes)
    d = discriminator_flops(disc, num_classes=num_classes)
    enc = encoder_flops(model)
    gen = generator_flops(model, vocab_size=vocab_size, code_dim=code)
    parts = {
        "d_real": TRAIN * d.total(real_tokens, batch_size),
        "g_sample": NO_GRAD * gen.total(steps, batch_size),
        "d_fake": TRAIN * d.total(generated, batch_size),
        "d_labels": NO_GRAD * d.total(real_tokens, batch_size),
        "vae": TRAIN * (enc + gen).total(real_tokens, batch_size),
        "g_soft": TRAIN * (gen.total(steps, batch_size)
                           + steps * soft_embedding_flops(vocab_size, model.embedding_dim)),
        "d_soft": FROZEN * (d.total(steps, batch_size)
                            + steps * soft_embedding_flops(vocab_size, disc.embedding_dim)),
        "e_soft": FROZEN * (enc.total(generated, batch_size)
                            + steps * soft_embedding_flops(vocab_size, model.embedding_dim)),
    }
    parts["total"] = sum(parts.values())
    return parts


def decode_flops(cfg: ModelConfig, *, vocab_size: int, code_dim: int, sentences: int,
                 steps: int) -> float:
    """Hard decoding (Generator.decode, no gradient) of `sentences` rows for `steps` steps each.

    The decoder runs every row until all rows have ended, so `steps` is the loop's length (at
    most max_len), not each sentence's own length.
    """
    return NO_GRAD * generator_flops(cfg, vocab_size=vocab_size, code_dim=code_dim).total(
        sentences * steps, sentences)
