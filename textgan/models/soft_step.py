"""One step of soft generation as a function of tensors alone, so that `torch.compile` can fuse it.

    weights = cell_weights(generator)
    masks = dropout_masks(generator, batch)                 # none in eval mode
    noise = relaxation_noise(kind, (batch, vocab), generator=g)
    y, next_emb, hidden = compiled_soft_step()(input_emb, hidden, zc, tau, noise, masks,
                                               weights, kind=kind, hard=hard)

`soft.soft_generate(..., compiled=True)` runs this loop; `train.compile_soft_step` turns it on.

Why: the eager soft step launches ~20 small kernels (the GRU cell's gates, the output layer,
PAD/BOS masking, the tempered softmax, the soft embedding) forward and as many backward, for
each of max_len steps. On a GPU at the default preset those launches, not arithmetic, bound the
loop; inductor fuses the elementwise work around the three matrix products into a few kernels.

Why a function of tensors and not `generator.step`: dynamo refuses to trace anything that
touches an `nn.GRU` module, even reading its weights ("Dynamo does not support RNN, GRU, or
LSTM"), and then runs the function eagerly without a word. So the GRU is written with
`torch.gru_cell` (the same equations and weights as nn.GRU, layer by layer) and every weight
is an argument. Everything random is drawn outside, eagerly, from the same streams as the eager
path: the relaxation's Gumbel noise or ReinMax uniform (`relaxation_noise`) and the dropout
masks (`dropout_masks`, from the global RNG as nn.Dropout; the masks differ from nn.Dropout's
draws, not in law). With the same inputs the cell computes what `Generator.step` + `relax` +
`embed_soft` compute, to rounding; a test checks values and gradients against the eager path.
tau is a 0-d tensor, so a new temperature does not recompile the cell.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
from torch import Tensor

from textgan.errors import CompileError
from textgan.models.generator import Generator
from textgan.models.relaxation import relax_drawn


class CellWeights(NamedTuple):
    """The generator's weights that one soft step reads (views, not copies)."""

    gru: tuple[tuple[Tensor, Tensor, Tensor, Tensor], ...]  # per layer: w_ih, w_hh, b_ih, b_hh
    output_weight: Tensor  # (V, H)
    output_bias: Tensor  # (V,)
    embedding: Tensor  # (V, E)
    forbidden: Tensor  # (k,) long: PAD and BOS ids, whose logits are -inf


def cell_weights(generator: Generator) -> CellWeights:
    gru = generator.gru
    if not gru.bias:
        raise ValueError("the soft step cell expects a GRU with biases, as Generator builds it")
    layers = tuple(tuple(gru.all_weights[layer]) for layer in range(gru.num_layers))
    forbidden = generator.forbidden_ids(device=generator.output.weight.device)
    return CellWeights(gru=layers, output_weight=generator.output.weight,
                       output_bias=generator.output.bias, embedding=generator.embedding.weight,
                       forbidden=forbidden)


class DropoutMasks(NamedTuple):
    """Scaled keep-masks (0 or 1 / (1 - p)) for one step, as nn.Dropout would apply them."""

    input: Tensor | None  # (B, E) on the input embedding; None: no dropout there
    between: tuple[Tensor, ...]  # (B, H) on the input of GRU layer l + 1, l = 0..L-2; or ()


def dropout_masks(generator: Generator, batch: int) -> DropoutMasks:
    """The masks of one step: none in eval mode or without dropout."""
    weight = generator.embedding.weight
    p_input = generator.dropout.p if generator.training else 0.0
    p_between = generator.gru.dropout if generator.training else 0.0
    return DropoutMasks(
        input=_keep_mask((batch, weight.shape[1]), p_input, weight) if p_input > 0 else None,
        between=tuple(_keep_mask((batch, generator.hidden_dim), p_between, weight)
                      for _ in range(generator.num_layers - 1)) if p_between > 0 else ())


def _keep_mask(shape: tuple[int, int], p: float, like: Tensor) -> Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p) / (1 - p)


def soft_step(input_emb: Tensor, hidden: Tensor, zc: Tensor, tau: Tensor, noise: Tensor | None,
              masks: DropoutMasks, weights: CellWeights, *, kind: str,
              hard: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(relaxed row y (B, V) fp32, next input y @ E (B, E), next hidden (L, B, H))."""
    if masks.input is not None:
        input_emb = input_emb * masks.input
    x = torch.cat([input_emb, zc], dim=-1)  # (B, E+Z+C)
    states = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights.gru):
        if layer > 0 and masks.between:
            x = x * masks.between[layer - 1]
        x = torch.gru_cell(x, hidden[layer], w_ih, w_hh, b_ih, b_hh)  # (B, H)
        states.append(x)
    logits = torch.nn.functional.linear(x, weights.output_weight, weights.output_bias)  # (B, V)
    logits = logits.index_fill(-1, weights.forbidden, float("-inf"))
    y = relax_drawn(logits, tau, kind, hard=hard, noise=noise)  # (B, V) fp32
    return y, y @ weights.embedding, torch.stack(states)


_compiled_step: Any = None


def compiled_soft_step() -> Any:
    """`soft_step` under `torch.compile` (inductor), compiled on first call per shape and kind."""
    global _compiled_step
    if _compiled_step is None:
        _compiled_step = torch.compile(soft_step, dynamic=None)
    return _compiled_step


def run_compiled(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a compiled function, turning a failed compilation into a readable refusal."""
    try:
        with warnings.catch_warnings():
            # dynamo reads `.grad` of every tensor input while it traces, and the loop's inputs
            # (the previous step's state) are not leaves: torch's warning addresses a user who
            # reads .grad by mistake, not the compiler
            warnings.filterwarnings("ignore", category=UserWarning, message=(
                r"The \.grad attribute of a Tensor that is not a leaf Tensor is being accessed"))
            return function(*args, **kwargs)
    except torch._dynamo.exc.BackendCompilerFailed as error:
        raise CompileError(
            "train.compile_soft_step=true needs a working torch.compile (inductor: a C++ "
            "compiler on a CPU, triton on a GPU); set it to false, or fix this: "
            f"{type(error.inner_exception).__name__}: "
            f"{str(error.inner_exception).splitlines()[0]}") from error
