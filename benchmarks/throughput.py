"""Throughput of pretraining, the adversarial stage and sampling, against the machine's matmul peak.

On a CPU (the default preset takes a few minutes on 2 cores; tiny well under one):

    python -m benchmarks.throughput                                # default preset
    python -m benchmarks.throughput --preset tiny --iterations 20
    python -m benchmarks.throughput --preset paper --device cuda --set data.synthetic_size=20000

One process measures, in order:

1. peak: the best FLOP/s of a large square `torch.mm` (fp32; bf16 too on CUDA), after warm-up;
2. pretraining: the model, optimizer, schedules and loader are built by the build function of
   `python -m textgan.pretrain` (`build_pretrain`; the synthetic corpus and a tokenizer trained
   into a temporary run folder under /tmp, removed afterwards), the real Engine runs --warmup
   iterations, then --iterations are timed, data loading included;
3. the adversarial stage the same way (`textgan.train.build_train`, with no D warm-up, so every
   iteration is a full wake-sleep round: D step then G+E step), on freshly initialised weights;
4. sampling: `textgan.sampling.sample_by_style` of --samples sentences from a fresh model.

Model FLOPs are the analytic counts of `textgan.flops` (matrix products over REAL tokens only,
backward = 2x forward; read its docstring), so "% of peak" is a model-FLOPs utilisation: work on
padding, elementwise ops and Python overhead all lower it. After the timed iterations, a few
more (--count-iterations, CPU only) run under `torch.utils.flop_counter` to report the matrix
FLOPs actually executed (padding and the true backward included) beside the model count.

Speed does not depend on what the weights have learnt, so nothing is loaded from checkpoints/.
Figures are printed as a table and written as JSON to --out (default
benchmarks/results/throughput_<preset>.json, git-ignored). Wall-clock figures depend on the
machine and on whatever else runs on it; nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from ignite.engine import Engine, Events
from ignite.utils import manual_seed
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from textgan.runs import RunPaths
from textgan.config import PRESETS, config_to_dict, load_config
from textgan.data import Batch, padding_fraction
from textgan.devices import add_device_argument, denormals_flushed, resolve_device
from textgan.errors import ConfigError
from textgan.flops import (
    adversarial_step_flops,
    decode_flops,
    encoder_flops,
    generator_flops,
    pretrain_step_flops,
)
from textgan.models import build_vae, code_dim
from textgan.prepare import PreparedData, prepare_data
from textgan.pretrain import build_pretrain
from textgan.sampling import DECODE_BATCH, LoadedModel, all_styles, sample_by_style
from textgan.stage import attach_step_handlers
from textgan.train import build_train

RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- device helpers


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a host clock reading covers it (no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak memory so far: GPU tensors since the last reset on CUDA, else the process's max RSS
    (Linux reports ru_maxrss in KiB; it never goes down, so later stages include earlier ones)."""
    if device.type == "cuda":
        return {"kind": "torch.cuda.max_memory_allocated",
                "mib": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"kind": "ru_maxrss (process peak so far)",
            "mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# --------------------------------------------------------------------------- 1. peak


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int,
                inner: int) -> dict[str, Any]:
    """Best FLOP/s of `inner` back-to-back (size x size) @ (size x size) products, timed
    `repeats` times after two untimed warm-up rounds."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(2 * inner):
        torch.mm(a, b, out=out)
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        synchronize(device)
        times.append((time.perf_counter() - start) / inner)
    flops = 2.0 * size**3
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "inner": inner,
            "best_s": min(times), "flops_per_s": flops / min(times),
            "median_flops_per_s": flops / sorted(times)[len(times) // 2]}


def measure_peak(device: torch.device, size: int, repeats: int) -> dict[str, Any]:
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    inner = 10 if device.type == "cuda" else 1  # one GPU product is too short to time alone
    runs = [matmul_peak(device, dtype, size, repeats, inner) for dtype in dtypes]
    by_dtype = {run["dtype"]: run for run in runs}
    return {"flops_per_s": max(run["flops_per_s"] for run in runs),
            "fp32_flops_per_s": by_dtype["float32"]["flops_per_s"], "by_dtype": by_dtype}


# --------------------------------------------------------------------------- timing a stage


def time_engine(engine: Engine, loader: Any, *, device: torch.device, warmup: int,
                iterations: int, count_iterations: int,
                step_flops: Callable[[Batch], float]) -> dict[str, Any]:
    """Run `engine` over `loader` for warmup + iterations + count_iterations iterations.

    Times iterations warmup+1 .. warmup+iterations from the end of iteration `warmup` to the
    end of the last timed one (so data loading is included), counts their real tokens and
    model FLOPs, then runs count_iterations more under torch's flop counter.
    """
    first, last = warmup, warmup + iterations
    stamps: dict[int, float] = {}
    timed = {"tokens": 0, "sentences": 0, "padded": 0, "flops": 0.0}
    counted = {"tokens": 0, "sentences": 0, "flops": 0.0, "executed": 0}
    counter: dict[str, FlopCounterMode] = {}

    @engine.on(Events.ITERATION_COMPLETED)
    def _record(engine: Engine) -> None:
        synchronize(device)
        i = engine.state.iteration
        batch: Batch = engine.state.batch
        if i == first or i == last:
            stamps[i] = time.perf_counter()
        if first < i <= last:
            target = timed
            target["padded"] += batch.tokens.numel()
        elif i > last:
            target = counted
        else:
            return
        target["tokens"] += int(batch.lengths.sum())
        target["sentences"] += batch.tokens.shape[0]
        target["flops"] += step_flops(batch)

    if count_iterations:
        @engine.on(Events.ITERATION_STARTED(once=last + 1))
        def _start_counting() -> None:
            counter["mode"] = FlopCounterMode(display=False)
            counter["mode"].__enter__()

        @engine.on(Events.ITERATION_COMPLETED(once=last + count_iterations))
        def _stop_counting() -> None:
            counter["mode"].__exit__(None, None, None)
            counted["executed"] = counter["mode"].get_total_flops()

    reset_peak_memory(device)
    engine.run(loader, max_iters=last + count_iterations)
    seconds = stamps[last] - stamps[first]
    result = {
        "warmup_iterations": warmup, "iterations": iterations, "seconds": seconds,
        "seconds_per_iteration": seconds / iterations,
        "real_tokens": timed["tokens"], "sentences": timed["sentences"],
        "tokens_per_s": timed["tokens"] / seconds, "sentences_per_s": timed["sentences"] / seconds,
        "model_flops": timed["flops"], "model_flops_per_token": timed["flops"] / timed["tokens"],
        "model_flops_per_s": timed["flops"] / seconds,
        "timed_batches_padding": 1.0 - timed["tokens"] / timed["padded"],
        "peak_memory": peak_memory(device),
    }
    if count_iterations:
        result["flop_counter"] = {
            "iterations": count_iterations, "executed_flops": counted["executed"],
            "executed_flops_per_token": counted["executed"] / counted["tokens"],
            "model_flops_per_token": counted["flops"] / counted["tokens"],
            "model_share_of_executed": counted["flops"] / counted["executed"]
            if counted["executed"] else None}
    return result


def add_fractions(result: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    result["fraction_of_peak"] = result["model_flops_per_s"] / peak["flops_per_s"]
    result["fraction_of_fp32_peak"] = result["model_flops_per_s"] / peak["fp32_flops_per_s"]
    return result


# --------------------------------------------------------------------------- the stages


def fresh_vae(cfg: Any, data: PreparedData, device: torch.device) -> nn.ModuleDict:
    manual_seed(cfg.seed)
    tok = data.tokenizer
    vae = build_vae(cfg.model, vocab_size=tok.vocab_size, code_dim=code_dim(data.num_classes),
                    pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id)
    return nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator}).to(device)


def pretrain_trainer(cfg: Any, data: PreparedData, device: torch.device) -> Engine:
    """The trainer `python -m textgan.pretrain` builds (`textgan.pretrain.build_pretrain`) with
    the handlers its step needs (`textgan.stage.attach_step_handlers`), minus checkpoints,
    validation and logging, on freshly initialised weights."""
    manual_seed(cfg.seed)
    parts = build_pretrain(cfg, data, device)
    attach_step_handlers(parts)
    return parts.trainer


def adversarial_trainer(cfg: Any, data: PreparedData, device: torch.device) -> Engine:
    """The trainer `python -m textgan.train` builds (`textgan.train.build_train`), as
    `pretrain_trainer`, on freshly initialised weights (not the pretrained ones) and with no D
    warm-up: every iteration is a full wake-sleep round (D step, then G+E step)."""
    # the temperature schedule then counts from step 0, as the trainer does
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, d_warmup_steps=0))
    manual_seed(cfg.seed)
    parts = build_train(cfg, data, device)
    attach_step_handlers(parts)
    return parts.trainer


def bench_pretrain(cfg: Any, data: PreparedData, device: torch.device,
                   args: argparse.Namespace) -> dict[str, Any]:
    """`pretrain_trainer`, timed."""
    tok, num_classes = data.tokenizer, data.num_classes
    trainer = pretrain_trainer(cfg, data, device)
    cost = pretrain_step_flops(cfg.model, vocab_size=tok.vocab_size,
                               code_dim=code_dim(num_classes))
    result = time_engine(
        trainer, data.train_loader, device=device, warmup=args.warmup,
        iterations=args.iterations, count_iterations=args.count_iterations,
        step_flops=lambda batch: cost.total(int(batch.lengths.sum()), batch.tokens.shape[0]))
    result["flops_per_token_parts"] = {
        "encoder_per_token": encoder_flops(cfg.model).per_token * 3,
        "generator_per_token": generator_flops(cfg.model, vocab_size=tok.vocab_size,
                                               code_dim=code_dim(num_classes)).per_token * 3,
        "per_sentence": cost.per_sentence}
    return result


def bench_adversarial(cfg: Any, data: PreparedData, device: torch.device,
                      args: argparse.Namespace) -> dict[str, Any]:
    """`adversarial_trainer`, timed.

    The step does not report the lengths of the sentences G samples, so D's reading of them
    (d_fake) and E's reading of the soft sentence (e_soft) are counted at max_len per sentence:
    exact for a fresh G, an upper bound once G learns to end sentences (within the timed
    iterations it starts to), which the flop counter's figure shows.
    """
    tok, num_classes = data.tokenizer, data.num_classes
    max_len = cfg.data.max_tokens
    trainer = adversarial_trainer(cfg, data, device)
    parts_sum: dict[str, float] = {}

    def step_flops(batch: Batch) -> float:
        parts = adversarial_step_flops(
            cfg.model, cfg.discriminator, vocab_size=tok.vocab_size, num_classes=num_classes,
            batch_size=batch.tokens.shape[0], real_tokens=int(batch.lengths.sum()),
            max_len=max_len)
        for key, value in parts.items():
            parts_sum[key] = parts_sum.get(key, 0.0) + value
        return parts["total"]

    result = time_engine(trainer, data.train_loader, device=device, warmup=args.warmup,
                         iterations=args.iterations, count_iterations=args.count_iterations,
                         step_flops=step_flops)
    total = parts_sum.pop("total")
    result["flops_share_by_part"] = {key: value / total for key, value in parts_sum.items()}
    return result


def bench_sampling(cfg: Any, data: PreparedData, device: torch.device,
                   args: argparse.Namespace) -> dict[str, Any]:
    """`sample_by_style` on a fresh model: n_per_style x (number of styles) sentences."""
    model = fresh_vae(cfg, data, device)
    live = LoadedModel(config=cfg, tokenizer=data.tokenizer, attributes=data.corpus.attributes,
                       encoder=model["encoder"], generator=model["generator"], stage="pretrain",
                       checkpoint=None, device=device)
    styles = len(all_styles(live.attributes))
    per_style = math.ceil(args.samples / styles)
    sample_by_style(live, 2, seed=cfg.seed)  # warm-up
    synchronize(device)
    reset_peak_memory(device)
    start = time.perf_counter()
    sentences = sample_by_style(live, per_style, seed=cfg.seed)
    synchronize(device)
    seconds = time.perf_counter() - start
    n, max_len = len(sentences), cfg.data.max_tokens
    # Each DECODE_BATCH chunk runs until all its rows ended; with (almost) none ending, max_len
    # steps: an upper bound on the loop's length, exact for a fresh model.
    flops = decode_flops(cfg.model, vocab_size=data.tokenizer.vocab_size,
                         code_dim=code_dim(data.num_classes), sentences=n, steps=max_len)
    return {"sentences": n, "styles": styles, "per_style": per_style, "seconds": seconds,
            "sentences_per_s": n / seconds, "decode_batch": DECODE_BATCH, "max_len": max_len,
            "ended_fraction": sum(s.ended for s in sentences) / n,
            "mean_words": sum(len(s.text.split()) for s in sentences) / n,
            "model_flops_upper_bound": flops, "model_flops_per_s": flops / seconds,
            "peak_memory": peak_memory(device)}


# --------------------------------------------------------------------------- report


def si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def print_table(report: dict[str, Any]) -> None:
    peak = report["peak"]
    print(f"\npreset {report['preset']} on {report['device_name']} ({report['device']}, "
          f"{report['torch_threads']} torch threads, torch {report['torch']})")
    for name, run in peak["by_dtype"].items():
        print(f"peak matmul {name:>8}: {si(run['flops_per_s'], 'FLOP/s')} "
              f"({run['size']}x{run['size']}, best of {report['settings']['matmul_repeats']})")
    header = (f"{'stage':<12} {'tokens/s':>10} {'sent/s':>9} {'FLOPs/token':>12} "
              f"{'model FLOP/s':>14} {'% peak':>7} {'padding':>8} {'peak mem':>10}")
    print("\n" + header + "\n" + "-" * len(header))
    for name in ("pretrain", "adversarial"):
        run = report[name]
        print(f"{name:<12} {run['tokens_per_s']:>10.0f} {run['sentences_per_s']:>9.1f} "
              f"{si(run['model_flops_per_token']):>12} {si(run['model_flops_per_s'], 'FLOP/s'):>14}"
              f" {100 * run['fraction_of_peak']:>6.2f}% {100 * run['timed_batches_padding']:>7.1f}%"
              f" {run['peak_memory']['mib']:>7.0f} MiB")
    run = report["sampling"]
    print(f"{'sampling':<12} {'':>10} {run['sentences_per_s']:>9.1f} {'':>12} "
          f"{si(run['model_flops_per_s'], 'FLOP/s'):>14} {100 * run['fraction_of_peak']:>6.2f}%"
          f" {'':>8} {run['peak_memory']['mib']:>7.0f} MiB")
    print(f"\nloader padding over epoch 1: {100 * report['loader_padding_fraction']:.1f}% "
          f"(batch {report['config']['data']['batch_size']}, bucket_batches "
          f"{report['config']['data']['bucket_batches']})")
    for name in ("pretrain", "adversarial"):
        run = report[name]
        print(f"{name}: {run['iterations']} iterations in {run['seconds']:.2f} s "
              f"({1000 * run['seconds_per_iteration']:.0f} ms each)")
        counter = run.get("flop_counter")
        if counter and counter["executed_flops"]:
            print(f"  torch flop counter ({counter['iterations']} more iterations): "
                  f"{si(counter['executed_flops_per_token'])} matmul FLOPs executed per real "
                  f"token; the model count is {100 * counter['model_share_of_executed']:.0f}% "
                  "of that")
    shares = report["adversarial"]["flops_share_by_part"]
    print("adversarial model FLOPs by part: " + ", ".join(
        f"{key} {100 * value:.0f}%" for key, value in shares.items())
        + " (d_fake and e_soft at max_len per sentence: an upper bound)")
    run = report["sampling"]
    print(f"sampling: {run['sentences']} sentences ({run['styles']} styles x "
          f"{run['per_style']}) in {run['seconds']:.2f} s, {100 * run['ended_fraction']:.1f}% "
          f"ended with EOS (FLOP/s counted for {run['max_len']} steps per row: an upper bound)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset, --set and --device, as every benchmark that builds the trainers takes them."""
    parser.add_argument("--preset", default="default", choices=PRESETS)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE", help="config override (repeatable)")
    add_device_argument(parser)


def chosen_device(parser: argparse.ArgumentParser, choice: str) -> torch.device:
    """The device of --device (`textgan.devices.resolve_device`); a usage error if unusable."""
    try:
        return resolve_device(choice)
    except ConfigError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations per stage")
    parser.add_argument("--iterations", type=int, default=50, help="timed iterations per stage")
    parser.add_argument("--count-iterations", type=int, default=2,
                        help="iterations run under torch's flop counter after the timed ones "
                             "(CPU only: it cannot see cuDNN's GRU kernels; 0 = off)")
    parser.add_argument("--samples", type=int, default=5000, help="sentences to sample")
    parser.add_argument("--matmul-size", type=int, default=0,
                        help="side of the peak matmul (0 = 2048 on a CPU, 8192 on CUDA)")
    parser.add_argument("--matmul-repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/results/throughput_<preset>.json)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.iterations < 1 or args.count_iterations < 0 or args.samples < 1:
        parser.error("--warmup, --iterations and --samples must be >= 1, --count-iterations >= 0")

    device = chosen_device(parser, args.device)
    if device.type == "cuda" and args.count_iterations:
        args.count_iterations = 0  # the counter has no formula for cuDNN's RNN: it would undercount
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    out = args.out or RESULTS / f"throughput_{args.preset}.json"
    datasets.disable_progress_bars()

    run_dir = Path(tempfile.mkdtemp(prefix="textgan-throughput-"))
    try:
        # The datasets cache (corpus arrow files, tokenised splits) goes to the temporary folder
        # too; data.cache_dir is a runtime knob and does not change the model.
        cfg = load_config(args.preset, overrides=[*args.overrides,
                                                  f"data.cache_dir={run_dir / 'hf-cache'}"])
        print(f"peak matmul ({size}x{size}) on {device} ...", flush=True)
        peak = measure_peak(device, size, args.matmul_repeats)
        print(f"preparing the {cfg.data.source} corpus ({cfg.data.synthetic_size} sentences) "
              f"and tokenizer in {run_dir} ...", flush=True)
        start = time.perf_counter()
        data = prepare_data(cfg, RunPaths(run_dir), device=device)
        prepare_s = time.perf_counter() - start
        with denormals_flushed():  # as the training stages run
            print(f"pretraining: {args.warmup} + {args.iterations} iterations ...", flush=True)
            pretrain = add_fractions(bench_pretrain(cfg, data, device, args), peak)
            print(f"adversarial: {args.warmup} + {args.iterations} iterations ...", flush=True)
            adversarial = add_fractions(bench_adversarial(cfg, data, device, args), peak)
        print(f"sampling {args.samples} sentences ...", flush=True)
        sampling = add_fractions(bench_sampling(cfg, data, device, args), peak)
        loader_padding = padding_fraction(data.train_loader, epoch=1)
        train_sentences = len(data.splits["train"])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    report = {
        "benchmark": "throughput", "preset": args.preset, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else (platform.processor() or platform.machine()),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "platform": platform.platform(),
        "settings": {"warmup": args.warmup, "iterations": args.iterations,
                     "count_iterations": args.count_iterations, "samples": args.samples,
                     "matmul_size": size, "matmul_repeats": args.matmul_repeats,
                     "overrides": args.overrides, "threads_flag": args.threads},
        "config": config_to_dict(cfg), "vocab_size": data.tokenizer.vocab_size,
        "num_classes": data.num_classes, "train_sentences": train_sentences,
        "prepare_data_s": prepare_s, "loader_padding_fraction": loader_padding,
        "peak": peak, "pretrain": pretrain, "adversarial": adversarial, "sampling": sampling,
    }
    print_table(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
