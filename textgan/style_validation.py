"""Validation of the adversarial stage: does D read styles, does G write the style it is given?

    evaluator = create_style_evaluator(encoder, generator, discriminator, ...)
    evaluator.run(valid_loader).metrics   # d_acc_real, d_acc_soft, d_acc_greedy, usage_..., oracle_...

Per validation batch: D's accuracy on the real labelled sentences; then as many sentences
generated from the prior (z ~ N(0, I), c uniform, drawn from a generator seeded at every run, so
each validation sees the same noise and the global RNG is untouched) and D's accuracy on them
read softly (at the current temperature) and as greedy hard sentences; the share of each class
D predicts on the greedy samples (code usage: a D that always answers one class shows here).
On the synthetic corpus the exact oracle also judges the greedy samples: the share that is
grammatical, and among those the share whose attributes are the requested ones.

With the encoder given, `z_recovery` says how much of z survives G then E (what the
independence loss asks for): the encoder reads each greedy sample back, and the Pearson
correlation between z_d and E's posterior mean over the validation's samples, averaged over the
dimensions d, is 1 when every dimension of z can be read off the sentence and ~0 when the
sentence does not depend on z.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from torch import nn

from textgan.data import Batch
from textgan.losses import attribute_accuracy
from textgan.metrics import LatentRecovery
from textgan.models import (Encoder, Generator, one_hot_code, position_weights, sample_code,
                            soft_generate)
from textgan.models.modes import eval_mode
from textgan.parallel import gather_lists, rank, sum_over_processes

Oracle = Callable[[list[str]], list[Any]]  # textgan.corpora.oracle.parse_many


def style_metric_names(attributes: dict[str, list[str]], oracle: bool) -> list[str]:
    """Every name `create_style_evaluator`'s runs put in `state.metrics`."""
    names = []
    for ratio in ("d_acc_real", "d_acc_greedy", "d_acc_soft"):
        names += [ratio, *(f"{ratio}_{attribute}" for attribute in attributes)]
    names += [f"usage_{attribute}_{value}" for attribute, values in attributes.items()
              for value in values]
    if oracle:
        names += ["oracle_grammatical", *(f"oracle_acc_{attribute}" for attribute in attributes)]
    return [*names, "z_recovery"]


class CountRatio(Metric):
    """sum(numerator) / sum(denominator) of two (A,) count vectors, per attribute."""

    def __init__(self, numerator: str, denominator: str, names: Sequence[str],
                 device: str | torch.device = "cpu") -> None:
        self.numerator, self.denominator, self.names = numerator, denominator, list(names)
        super().__init__(output_transform=lambda out: (out[numerator], out[denominator]),
                         device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._num = torch.zeros(len(self.names), dtype=torch.float64, device=self._device)
        self._den = torch.zeros(len(self.names), dtype=torch.float64, device=self._device)

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._num += output[0].to(self._device, torch.float64)
        self._den += output[1].to(self._device, torch.float64)

    @sync_all_reduce("_num", "_den")
    def compute(self) -> dict[str, float]:
        ratios = (self._num / self._den.clamp(min=1)).tolist()
        return dict(zip(self.names, ratios))

    def completed(self, engine: Engine, name: str) -> None:
        # (called by ignite at the end of each run) one scalar per attribute, plus their mean
        per_attribute = self.compute()
        for attribute, value in per_attribute.items():
            engine.state.metrics[f"{name}_{attribute}"] = value
        if per_attribute:
            engine.state.metrics[name] = sum(per_attribute.values()) / len(per_attribute)


class OracleJudge(Metric):
    """Grammaticality and attribute accuracy of generated text by the synthetic oracle."""

    def __init__(self, oracle: Oracle, attributes: dict[str, list[str]]) -> None:
        self.oracle, self.attributes = oracle, attributes
        super().__init__(output_transform=lambda out: (out["texts"], out["styles"]))

    @reinit__is_reduced
    def reset(self) -> None:
        self._texts: list[str] = []
        self._styles: list[dict[str, str]] = []

    @reinit__is_reduced
    def update(self, output: tuple[list[str], list[dict[str, str]]]) -> None:
        self._texts.extend(output[0])
        self._styles.extend(output[1])

    def compute(self) -> dict[str, float]:
        # every process's sentences (data-parallel runs), parsed by each
        parses = self.oracle(gather_lists(self._texts))
        styles = gather_lists(self._styles)
        grammatical = [(parse, style) for parse, style in zip(parses, styles)
                       if parse.grammatical]
        result = {"oracle_grammatical": len(grammatical) / max(1, len(parses))}
        for attribute in self.attributes:
            hits = sum(parse.attributes[attribute] == style[attribute]
                       for parse, style in grammatical)
            result[f"oracle_acc_{attribute}"] = hits / max(1, len(grammatical))
        return result

    def completed(self, engine: Engine, name: str) -> None:
        engine.state.metrics.update(self.compute())


def create_style_evaluator(generator: Generator, discriminator: nn.Module, *, tokenizer: Any,
                           attributes: dict[str, list[str]], max_len: int,
                           device: torch.device, tau: Callable[[], float], relaxation: str,
                           seed: int = 0, oracle: Oracle | None = None,
                           encoder: Encoder | None = None,
                           soft_mask: str = "detached") -> Engine:
    """`soft_mask`: how D reads the soft samples (`position_weights`), as the stage trains it;
    `encoder`: given, `z_recovery` is measured."""
    names = list(attributes)
    num_classes = [len(values) for values in attributes.values()]

    def step(engine: Engine, batch: Batch) -> dict[str, Any]:
        batch = batch.to(device, non_blocking=True)
        noise = engine.state.noise
        size = batch.tokens.shape[0]
        with torch.no_grad(), eval_mode(generator, discriminator):
            real_correct, real_counted = attribute_accuracy(
                discriminator(batch.tokens, batch.lengths), batch.labels, batch.label_mask)
            z = torch.randn(size, generator.z_dim, generator=noise, device=device)
            labels = sample_code(size, num_classes, generator=noise, device=device)
            c = one_hot_code(labels, num_classes)
            greedy = generator.decode(z, c, max_len=max_len, strategy="greedy")
            greedy_logits = discriminator(greedy.tokens, greedy.lengths)
            greedy_correct, counted = attribute_accuracy(greedy_logits, labels)
            soft = soft_generate(generator, z, c, max_len=max_len, tau=tau(), kind=relaxation,
                                 hard=False, noise=noise)
            soft_correct, _ = attribute_accuracy(
                discriminator.forward_soft(soft.probs, position_weights(soft, soft_mask)),
                labels)
            z_read = z
            if encoder is not None:
                with eval_mode(encoder):
                    z_read = encoder(greedy.tokens, greedy.lengths.cpu()).mean
            usage = [torch.bincount(logits.argmax(-1), minlength=k).cpu()
                     for logits, k in zip(greedy_logits, num_classes)]
        styles = [{name: attributes[name][int(index)] for name, index in zip(names, row)}
                  for row in labels.tolist()]
        return {"real_correct": real_correct, "real_counted": real_counted,
                "greedy_correct": greedy_correct, "soft_correct": soft_correct,
                "counted": counted, "usage": usage, "texts": tokenizer.decode(greedy.tokens),
                "styles": styles, "z": z, "z_read": z_read}

    evaluator = Engine(step)

    @evaluator.on(Events.STARTED)
    def _seed(engine: Engine) -> None:
        # each data-parallel process samples its own sentences
        engine.state.noise = torch.Generator(device=device).manual_seed(seed + rank())

    for name, numerator, denominator in (("d_acc_real", "real_correct", "real_counted"),
                                         ("d_acc_greedy", "greedy_correct", "counted"),
                                         ("d_acc_soft", "soft_correct", "counted")):
        CountRatio(numerator, denominator, names).attach(evaluator, name)

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _usage(engine: Engine) -> None:
        totals = getattr(engine.state, "usage_counts", None)
        counts = engine.state.output["usage"]
        engine.state.usage_counts = counts if totals is None else [
            a + b for a, b in zip(totals, counts)]

    @evaluator.on(Events.COMPLETED)
    def _usage_metrics(engine: Engine) -> None:
        for name, counts in zip(names, engine.state.usage_counts):
            counts = sum_over_processes(counts)
            shares = (counts.double() / counts.sum().clamp(min=1)).tolist()
            for value, share in zip(attributes[name], shares):
                engine.state.metrics[f"usage_{name}_{value}"] = share
        engine.state.usage_counts = None

    if encoder is not None:
        LatentRecovery().attach(evaluator, "z_recovery")
    if oracle is not None:
        OracleJudge(oracle, attributes).attach(evaluator, "oracle")
    return evaluator
