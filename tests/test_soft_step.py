"""The soft step as a function of tensors (`soft_step`), compiled or not, against the eager
soft generation: the same values and gradients, the same relaxation draws, dropout masks, and a
readable refusal when torch.compile cannot build it. Tiny sizes, on the CPU; `--device cuda`
runs the compiled-against-eager check on a GPU (inductor's triton backend there)."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.exc

from textgan.config import ModelConfig
from textgan.errors import CompileError
from textgan.models import Generator, soft_generate
from textgan.models.relaxation import relaxation_noise
from textgan.models.soft_step import (DropoutMasks, cell_weights, dropout_masks, run_compiled,
                                      soft_step)

PAD, BOS, EOS = 5, 2, 7
VOCAB, Z_DIM, CODE_DIM = 20, 4, 3


def make_generator(*, layers: int = 1, dropout: float = 0.0) -> Generator:
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_dim=8, hidden_dim=12, z_dim=Z_DIM, generator_layers=layers,
                      dropout=dropout)
    return Generator(cfg, vocab_size=VOCAB, code_dim=CODE_DIM, pad_id=PAD, bos_id=BOS,
                     eos_id=EOS)


def condition(batch: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, Z_DIM, generator=g)
    c = torch.nn.functional.one_hot(torch.randint(CODE_DIM, (batch,), generator=g),
                                    CODE_DIM).float()
    return z.to(device), c.to(device)


def run(generator: Generator, kind: str, hard: bool, *, compiled: bool):
    """A soft sentence, and the gradient of an arbitrary function of it w.r.t. every weight."""
    generator.zero_grad(set_to_none=True)
    device = generator.output.weight.device
    z, c = condition(5, device)
    out = soft_generate(generator, z, c, max_len=6, tau=0.6, kind=kind, hard=hard,
                        noise=torch.Generator(device=device).manual_seed(3), compiled=compiled)
    (out.probs * torch.linspace(-1.0, 1.0, VOCAB, device=device)).sum().backward()
    return out, [parameter.grad for parameter in generator.parameters()]


@pytest.mark.parametrize("kind,hard", [("softmax", False), ("gumbel", False),
                                       ("st_gumbel", True), ("reinmax", False)])
def test_one_step_of_the_function_is_the_generators_step_then_relax(kind, hard):
    generator = make_generator(layers=2).eval()  # two layers: the layer loop is exercised
    z, c = condition(5)
    zc, hidden = generator.conditioning(z, c), generator.initial_state(z, c)
    input_emb = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    noise = relaxation_noise(kind, (5, VOCAB), generator=torch.Generator().manual_seed(4))

    y, next_emb, next_hidden = soft_step(input_emb, hidden, zc, torch.tensor(0.6), noise,
                                         dropout_masks(generator, 5), cell_weights(generator),
                                         kind=kind, hard=hard)

    from textgan.models.relaxation import relax
    expected_logits, expected_hidden = generator.step(input_emb, hidden, zc)
    expected_y = relax(generator.forbid_special(expected_logits), 0.6, kind, hard=hard,
                       generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(y, expected_y)
    torch.testing.assert_close(next_hidden, expected_hidden)
    torch.testing.assert_close(next_emb, expected_y @ generator.embedding.weight)
    assert bool((y[:, [PAD, BOS]] == 0).all())


@pytest.mark.slow
@pytest.mark.parametrize("kind,hard", [("softmax", False), ("st_gumbel", True)])
def test_the_compiled_soft_generation_matches_the_eager_one_with_its_gradients(kind, hard,
                                                                              device):
    # dropout 0: training mode draws nothing to compare
    generator = make_generator().to(device).train()
    eager, eager_grads = run(generator, kind, hard, compiled=False)
    compiled, compiled_grads = run(generator, kind, hard, compiled=True)

    torch.testing.assert_close(compiled.probs, eager.probs)
    torch.testing.assert_close(compiled.weights, eager.weights)
    assert torch.equal(compiled.tokens, eager.tokens)
    assert torch.equal(compiled.lengths, eager.lengths)
    for got, expected in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # a new temperature is an input of the compiled step (a 0-d tensor), not a constant baked
    # into it: the soft rows change with it
    again = soft_generate(generator, *condition(5, device), max_len=6, tau=0.3, kind="softmax",
                          compiled=True)
    eager_again = soft_generate(generator, *condition(5, device), max_len=6, tau=0.3,
                                kind="softmax")
    torch.testing.assert_close(again.probs, eager_again.probs)


def test_dropout_masks_follow_the_generators_dropout_and_mode():
    generator = make_generator(layers=3, dropout=0.25).train()
    masks = dropout_masks(generator, 64)
    # the input embedding's, then one per gap between the three layers
    assert tuple(masks.input.shape) == (64, 8)
    assert [tuple(mask.shape) for mask in masks.between] == [(64, 12), (64, 12)]
    for mask in (masks.input, *masks.between):
        assert set(mask.unique().tolist()) == {0.0, torch.tensor(1.0 / 0.75).item()}
    assert dropout_masks(generator.eval(), 64) == DropoutMasks(input=None, between=())
    one_layer = dropout_masks(make_generator(layers=1, dropout=0.25).train(), 64)
    assert one_layer.input is not None and one_layer.between == ()
    assert dropout_masks(make_generator(dropout=0.0).train(), 64) == DropoutMasks(None, ())


def test_keep_all_masks_give_the_eval_step_and_zero_masks_silence_the_input():
    generator = make_generator(layers=2, dropout=0.5).train()
    z, c = condition(4)
    zc, hidden = generator.conditioning(z, c), generator.initial_state(z, c)
    input_emb = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    weights, tau = cell_weights(generator), torch.tensor(1.0)

    def step(emb, masks):
        return soft_step(emb, hidden, zc, tau, None, masks, weights, kind="softmax", hard=False)

    reference = step(input_emb, DropoutMasks(None, ()))
    ones = DropoutMasks(torch.ones(4, 8), (torch.ones(4, 12),))
    for got, expected in zip(step(input_emb, ones), reference, strict=True):
        torch.testing.assert_close(got, expected)
    silenced = step(input_emb, DropoutMasks(torch.zeros(4, 8), (torch.ones(4, 12),)))
    torch.testing.assert_close(silenced[0], step(torch.zeros(4, 8), DropoutMasks(None, ()))[0])
    # a zero mask between the layers cuts layer 2 off from layer 1: its state is as for x = 0
    cut = step(input_emb, DropoutMasks(None, (torch.zeros(4, 12),)))
    w_ih, w_hh, b_ih, b_hh = weights.gru[1]
    torch.testing.assert_close(cut[2][1], torch.gru_cell(torch.zeros(4, 12), hidden[1], w_ih,
                                                         w_hh, b_ih, b_hh))


def test_a_failed_compilation_is_a_readable_refusal():
    def broken(*args, **kwargs):
        raise torch._dynamo.exc.BackendCompilerFailed(
            "inductor", RuntimeError("no C++ compiler found\nlong details"), None)

    with pytest.raises(CompileError, match="train.compile_soft_step=true needs a working "
                                           "torch.compile.*no C\\+\\+ compiler found"):
        run_compiled(broken)
