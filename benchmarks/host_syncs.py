"""How often a training iteration makes Python wait for the device, by call site.

    python -m benchmarks.host_syncs --device cuda                  # default preset, on a GPU
    python -m benchmarks.host_syncs --preset tiny --iterations 3   # on a CPU

Each stage's trainer is built as benchmarks/throughput.py builds it (fresh weights, the real
Engine and loader; the adversarial stage without D warm-up, so every iteration is a full
wake-sleep round). After --warmup iterations, --iterations more are counted:

- on CUDA, by CUDA itself: torch.cuda.set_sync_debug_mode("warn") makes every synchronising
  call warn, and the warnings are counted by the Python line that made them;
- on a CPU, where nothing waits, by textgan.sync_audit: the operations that would wait on a GPU,
  split into "wait", "check" (textgan.checks: device-side assertions on CUDA, plain reads on a
  CPU) and "host" (reads of tensors that stay on the host in a GPU run too). The CPU path also
  checks for the end of decoding at every time step (every 8 on a GPU), so its "wait" count is
  higher than a GPU's. --as-on-cuda makes the CPU run take the CUDA path's choices (checks as
  device-side assertions, the exit check every 8 steps): its "wait" count previews a GPU's,
  except for copies to the host of tensors already there, which no CPU run can see.

Figures per iteration are printed and written as JSON to --out (default
benchmarks/results/host_syncs_<preset>_<device>.json, git-ignored). Nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import torch
from ignite.engine import Engine, Events

from textgan import checks
from textgan.runs import RunPaths
from textgan.config import load_config
from textgan.prepare import prepare_data
from textgan.sync_audit import SyncAudit

try:
    from benchmarks.throughput import (
        add_run_arguments,
        adversarial_trainer,
        chosen_device,
        pretrain_trainer,
    )
except ModuleNotFoundError as error:  # run as a file: the repository root is not importable
    if error.name != "benchmarks":
        raise
    raise SystemExit("run it from the repository root as: python -m benchmarks.host_syncs ...") \
        from None

RESULTS = Path(__file__).resolve().parent / "results"
# the text of the warning torch.cuda.set_sync_debug_mode("warn") gives for each synchronisation
_SYNC_WARNING = "called a synchronizing CUDA operation"


class CudaSyncCount:
    """Counts CUDA's own synchronisation warnings by the Python line that caused them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._catcher = warnings.catch_warnings(record=True)
        self._records: list[warnings.WarningMessage] = []

    def __enter__(self) -> CudaSyncCount:
        self._records = self._catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.cuda.set_sync_debug_mode("default")
        self._catcher.__exit__(*exc)
        for record in self._records:
            if _SYNC_WARNING in str(record.message):
                self.counts[f"{_short(record.filename)}:{record.lineno} sync"] += 1

    def sites(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def by_kind(self) -> dict[str, int]:
        return {"wait": sum(self.counts.values())}


def _short(filename: str) -> str:
    posix = Path(filename).as_posix()
    for marker in ("/textgan/", "/torch/", "/ignite/", "/benchmarks/"):
        if marker in posix:
            return posix[posix.rindex(marker) + 1:]
    return posix


def count_syncs(engine: Engine, loader: Any, *, device: torch.device, warmup: int,
                iterations: int) -> dict[str, Any]:
    """Run warmup + iterations iterations, counting during the last `iterations`."""
    counter: dict[str, Any] = {}

    @engine.on(Events.ITERATION_STARTED(once=warmup + 1))
    def _start() -> None:
        counter["mode"] = CudaSyncCount() if device.type == "cuda" else SyncAudit()
        counter["mode"].__enter__()

    @engine.on(Events.ITERATION_COMPLETED(once=warmup + iterations))
    def _stop() -> None:
        counter["mode"].__exit__(None, None, None)

    engine.run(loader, max_iters=warmup + iterations)
    mode = counter["mode"]
    return {"iterations": iterations,
            "per_iteration": {kind: n / iterations for kind, n in mode.by_kind().items()},
            "sites_per_iteration": {site: n / iterations for site, n in mode.sites().items()}}


def print_stage(name: str, result: dict[str, Any]) -> None:
    kinds = ", ".join(f"{kind} {n:g}" for kind, n in result["per_iteration"].items())
    print(f"\n{name}: per iteration {kinds}")
    for site, n in result["sites_per_iteration"].items():
        print(f"  {n:8.2f}  {site}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--warmup", type=int, default=3, help="uncounted iterations per stage")
    parser.add_argument("--iterations", type=int, default=10,
                        help="counted iterations per stage")
    parser.add_argument("--as-on-cuda", action="store_true",
                        help="on a CPU, take the CUDA path's choices (see above)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/results/"
                             "host_syncs_<preset>_<device>.json)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.iterations < 1:
        parser.error("--warmup and --iterations must be at least 1")
    device = chosen_device(parser, args.device)
    if args.as_on_cuda and device.type == "cuda":
        parser.error("--as-on-cuda is for CPU runs; on CUDA the choices are taken anyway")
    out = args.out or RESULTS / f"host_syncs_{args.preset}_{device.type}.json"
    datasets.disable_progress_bars()

    run_dir = Path(tempfile.mkdtemp(prefix="textgan-host-syncs-"))
    reading_waits = checks.reading_waits
    if args.as_on_cuda:
        checks.reading_waits = lambda tensor: True  # what textgan.checks decides on CUDA
    try:
        cfg = load_config(args.preset, overrides=[*args.overrides,
                                                  f"data.cache_dir={run_dir / 'hf-cache'}"])
        print(f"preparing the {cfg.data.source} corpus and tokenizer in {run_dir} ...",
              flush=True)
        data = prepare_data(cfg, RunPaths(run_dir), device=device)
        report: dict[str, Any] = {"benchmark": "host_syncs", "preset": args.preset,
                                  "device": str(device), "torch": torch.__version__,
                                  "overrides": args.overrides, "warmup": args.warmup,
                                  "as_on_cuda": args.as_on_cuda}
        for name, build in (("pretrain", pretrain_trainer), ("adversarial", adversarial_trainer)):
            report[name] = count_syncs(build(cfg, data, device), data.train_loader,
                                       device=device, warmup=args.warmup,
                                       iterations=args.iterations)
            print_stage(name, report[name])
    finally:
        checks.reading_waits = reading_waits
        shutil.rmtree(run_dir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return report


if __name__ == "__main__":
    main()
