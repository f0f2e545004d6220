"""Sweep presets and config overrides: one run folder per (configuration, seed), a leaderboard.

On a CPU (the example grid uses the tiny preset: about half a minute per run on 2 cores):

    python -m textgan.sweep --grid configs/sweeps/example.toml
    python -m textgan.sweep --grid configs/sweeps/example.toml --jobs 2 --seeds 3
    python -m textgan.sweep --grid configs/sweeps/example.toml --budget 4 --sample-seed 1
    python -m textgan.sweep --grid configs/sweeps/example.toml --dry-run

Each run is `python -m textgan.pretrain`, `textgan.train` and `textgan.evaluate` as
subprocesses in <out>/runs/<name> (logs in <run>/sweep-logs/), where <name> is the run's grid
values and seed plus a hash of all its settings. Runs that differ only in [train] or
[discriminator] keys share one pretraining, in <out>/pretrain/ (each run's adversarial stage
starts from it with `train --from`): a grid over the adversarial stage pretrains once per seed.
`share_pretraining = false` gives every run its own. A run that fails is recorded with the
tail of its log and the sweep goes on. The results go to <out>/leaderboard.md and leaderboard.json
(<out> is checkpoints/sweeps/<grid file name> unless --out is given), the plan and every run's
status to <out>/sweep.json.

The grid file (TOML):

    [sweep]
    preset = "tiny"                 # base preset of every run (or vary "preset" in [grid])
    seeds = 3                       # seeds 0, 1, 2 of every configuration (or a list [0, 7])
    mode = "grid"                   # every configuration; "random": `budget` of them
    budget = 4                      # (random) configurations drawn ...
    sample_seed = 0                 # ... by this seed; a larger budget keeps the smaller's
    evaluate_args = ["--n=500", "--transfer-n=200", "--no-curve"]   # textgan.evaluate flags
    show = ["generation.oracle.grammatical"]   # extra leaderboard columns (patterns)
    share_pretraining = true        # one pretraining per (preset, pretraining keys, seed)

    [score]                         # how a run's report.json ranks (higher is better)
    metrics = ["transfer.*.judge_acc", "transfer.*.bleu_source"]
    combine = "geomean"             # or "mean"
    scale = { "vae.iw_ppl" = 0.01 } # optional; BLEU metrics default to 0.01, others to 1
    lower_is_better = []            # these enter as 1 - (scaled value)

    [fixed]                         # overrides of every run
    "pretrain.patience" = 2
    "train.time_limit" = 600

    [grid]                          # varied: the cartesian product of these lists
    "train.lambda_c" = [0.05, 0.1, 0.2]
    "train.entropy_weight" = [0.0, 0.1]

Metrics are report.json's numbers with keys joined by dots (transfer.sentiment.bleu_source,
generation.oracle.grammatical, diversity.self_bleu_4, vae.iw_nll_per_token, ...); `*` matches
any part, and each match is one term of the score. A term is value x scale (BLEU, 0-100, is
divided by 100 by default), then 1 - that for lower_is_better metrics; the score is their
geometric mean (a configuration cannot buy style with content) or mean. The score is checked
against the first report: a metric it lacks stops the sweep with the close names. The score is
not part of a run, so changing it and rerunning re-ranks without training anything.

Early stopping: `pretrain.patience` stops pretraining after that many validations without a
better ELBO; `train.patience` stops the adversarial stage after that many validations without a
better `train.early_stop_metric` (D's accuracy on greedy samples by default; on the synthetic
corpus `oracle_grammatical` is the honest choice). Both are off by default; set them in [fixed].
train.time_limit bounds a run's adversarial stage in seconds.

Every configuration is checked (unknown keys, types, values, evaluate flags) before the first
run starts. Seeds are set by the sweep (`--seed=N` for both stages); `seed` may not appear in
[fixed] or [grid]. With several seeds the leaderboard gives the mean and sample standard
deviation of the score and of every metric.

Resume: run the same command again (after Ctrl-C, a crash, a reboot). Finished runs -- with
report.json and the same settings -- are reused; the others run again and their stages resume
from their checkpoints. Changed settings make new run folders, an edited preset file included
(textgan's own defaults are code: after upgrading it, use a new --out); runs no longer in the
grid are left on disk and out of the leaderboard. Ctrl-C passes the interrupt to the running
stages, which save a checkpoint, and exits with status 130. A sweep in which a run failed exits
with status 1 after writing the leaderboard of the others.

Parallel runs (--jobs P) each get OMP_NUM_THREADS = cores // P (unless set), so on a small CPU
P runs share the cores rather than multiply the work; a GPU is shared by all of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from textgan.cli import HelpFormatter, positive_int, run_main, whole_number
from textgan.config import Config
from textgan.devices import DEFAULT_DEVICE, DEVICE_HELP
from textgan.sweeping.leaderboard import build_leaderboard, to_markdown, write_leaderboard
from textgan.sweeping.plan import RunPlan, plan_runs, validate_plan
from textgan.sweeping.runner import (
    Outcome,
    RunContext,
    SweepState,
    child_env,
    is_done,
    pretraining_dir,
    run_dir,
    run_parallel,
    run_settings,
)
from textgan.sweeping.scores import check_patterns, flatten_report
from textgan.sweeping.spec import SweepSpec, apply_cli, read_spec

log = logging.getLogger("textgan.sweep")

SWEEPS_DIR = Path("checkpoints") / "sweeps"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textgan.sweep", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--grid", required=True, metavar="FILE", help="the sweep's TOML file")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="sweep folder; None = checkpoints/sweeps/<grid file name>")
    # --seeds and --budget are checked by the sweep, not argparse: a ConfigError and exit 2
    parser.add_argument("--seeds", metavar="K", type=whole_number, default=None,
                        help="run every configuration with seeds 0..K-1; None = the file's")
    parser.add_argument("--budget", metavar="N", type=whole_number, default=None,
                        help="run a random sample of N configurations; None = the file's")
    parser.add_argument("--sample-seed", metavar="S", type=int, default=None,
                        help="seed of the random sample; None = the file's, else 0")
    parser.add_argument("--jobs", metavar="P", type=positive_int, default=1, help="runs at once")
    parser.add_argument("--device", default=None,
                        help=f"passed to every stage: {DEVICE_HELP}; None = their default, "
                             f"'{DEFAULT_DEVICE}'")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the grid and print the planned runs; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    spec = read_spec(args.grid)
    apply_cli(spec, args)
    runs = plan_runs(spec)
    configs = validate_plan(runs, str(spec.path))
    out = Path(args.out) if args.out else SWEEPS_DIR / spec.path.stem

    def done(run: RunPlan) -> bool:
        return is_done(run_dir(out, run), run_settings(run, spec.evaluate_args))

    if args.dry_run:
        return _dry_run(spec, runs, out, done)
    state = SweepState(out, spec.path, runs, done)
    results = Results(spec)
    todo = _reuse_finished(runs, out, state, results)
    log.info("sweep %s: %s in %s; %d finished before, %d to run%s", spec.path.name,
             _plan_size(spec, runs), out, len(runs) - len(todo), len(todo),
             f", {min(args.jobs, len(todo))} at a time" if todo else "")
    if todo:
        _run(runs, todo, spec, configs, out, args, state, results)
    board = build_leaderboard(spec, runs, state.data["runs"], results.metrics, results.scores)
    paths = write_leaderboard(out, spec, board)
    sys.stdout.write(to_markdown(spec, board))
    log.info("wrote %s, %s", paths["md"], paths["json"])
    failed = [run.name for run in todo if state.status(run.name) == "failed"]
    if failed:
        log.warning("%d of %d runs failed (logs in <run>/sweep-logs/); rerun the command to "
                    "retry them", len(failed), len(runs))
    return {"out": str(out), "ran": len(todo), "reused": len(runs) - len(todo),
            "failed": failed, "files": {k: str(v) for k, v in paths.items()}, **board}


def _reuse_finished(runs: Sequence[RunPlan], out: Path, state: SweepState,
                    results: Results) -> list[RunPlan]:
    """Score the runs a previous invocation finished; the rest is to run."""
    for run in runs:
        if state.status(run.name) != "done":
            continue
        if results.add(run, run_dir(out, run)):
            state.update(run.name, score=results.scores[run.name])
        else:
            state.update(run.name, status="pending")  # unreadable report: evaluate again
    state.write()
    return [run for run in runs if state.status(run.name) != "done"]


class Results:
    """Flattened metrics and scores of the finished runs; checks the score on the first."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.metrics: dict[str, dict[str, float]] = {}
        self.scores: dict[str, float] = {}

    def add(self, run: RunPlan, folder: Path) -> bool:
        path = folder / "report.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            log.warning("cannot read %s (%s); that run will be evaluated again", path, error)
            return False
        flat = flatten_report(report)
        if not self.metrics and self.spec.show_given:  # a typo in a column is worth a stop too
            check_patterns(self.spec.show, flat, "[sweep] show pattern", str(path))
        self.scores[run.name] = self.spec.score.score(flat, str(path))
        self.metrics[run.name] = flat
        return True


def _run(runs: list[RunPlan], todo: list[RunPlan], spec: SweepSpec, configs: dict[str, Config],
         out: Path, args: argparse.Namespace, state: SweepState, results: Results) -> None:
    from tqdm import tqdm

    ctx = RunContext(out=out, evaluate_args=spec.evaluate_args, device=args.device,
                     env=child_env(args.jobs, shared_caches(configs.values())), state=state,
                     share_pretraining=spec.share_pretraining)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=args.no_progress)
    count = 0

    def on_finished(run: RunPlan, outcome: Outcome) -> None:
        nonlocal count
        count += 1
        if outcome.status == "done":
            if results.add(run, run_dir(out, run)):
                state.update(run.name, score=results.scores[run.name])
            else:
                state.update(run.name, status="failed", error="report.json unreadable")
        _log_outcome(count, len(todo), run, outcome, results, out)
        bar.update(1)

    try:
        run_parallel(todo, ctx, args.jobs, on_finished)
    except KeyboardInterrupt:
        board = build_leaderboard(spec, runs, state.data["runs"], results.metrics,
                                  results.scores)
        write_leaderboard(out, spec, board)
        log.warning("interrupted: state saved in %s; run the same command to resume",
                    state.path)
        raise
    finally:
        bar.close()


def _log_outcome(count: int, total: int, run: RunPlan, outcome: Outcome, results: Results,
                 out: Path) -> None:
    what = f"{run.label}, seed {run.seed}"
    if run.name in results.scores:
        log.info("run %d/%d done in %.0f s: score %.4g (%s)", count, total, outcome.seconds,
                 results.scores[run.name], what)
    elif outcome.status == "failed":
        last = (outcome.error or "").strip().splitlines()[-1:] or ["no output"]
        log.warning("run %d/%d failed at %s (exit %s): %s (%s; log %s)", count, total,
                    outcome.step, outcome.returncode, last[0], what,
                    run_dir(out, run) / "sweep-logs" / f"{outcome.step}.log")
    else:
        log.info("run %d/%d %s (%s)", count, total, outcome.status, what)


def shared_caches(configs: Iterable[Config]) -> dict[str, str]:
    """Environment that points every stage at this process's corpus caches, after filling them.

    Synthetic corpora are generated here, once, before any run starts: two runs generating the
    same corpus at once would replace each other's folder under a reader. Passing the folders
    explicitly also makes the children see a redirection this process has (the tests' tmp
    folders) instead of computing their own default.
    """
    import datasets.config

    from textgan.corpora.synthetic import SYNTHETIC_ROOT_ENV, default_root, ensure_corpus

    for key in sorted({(c.data.synthetic_size, c.data.synthetic_seed) for c in configs
                       if c.data.source == "synthetic"}):
        ensure_corpus(*key)
    return {SYNTHETIC_ROOT_ENV: str(default_root()),
            "HF_DATASETS_CACHE": str(datasets.config.HF_DATASETS_CACHE)}


def _plan_size(spec: SweepSpec, runs: Sequence[RunPlan]) -> str:
    configs = len({run.config_id for run in runs})
    seeds = len(spec.seeds)
    return (f"{configs} configuration{'s' * (configs != 1)} x {seeds} seed{'s' * (seeds != 1)}"
            f" = {len(runs)} runs")


def _dry_run(spec: SweepSpec, runs: Sequence[RunPlan], out: Path,
             done: Callable[[RunPlan], bool]) -> dict[str, Any]:
    pretrainings = {run.pretraining for run in runs}
    shared = (f"; {len(pretrainings)} pretraining(s), shared in {out / 'pretrain'}"
              if spec.share_pretraining else "")
    lines = [f"# {_plan_size(spec, runs)}, into {out}{shared}"]
    planned = []
    for run in runs:
        finished = done(run)
        lines.append(f"runs/{run.name}  [{'done' if finished else 'to run'}]")
        lines.append(f"    {' '.join(run.stage_args)}")
        if spec.share_pretraining:
            lines.append(f"    pretrained in pretrain/{run.pretraining}")
        planned.append({"name": run.name, "run_dir": str(run_dir(out, run)), "seed": run.seed,
                        "preset": run.preset, "settings": run.settings,
                        "overrides": run.overrides, "done": finished,
                        "pretraining": (str(pretraining_dir(out, run))
                                        if spec.share_pretraining else None)})
    sys.stdout.write("\n".join(lines) + "\n")
    return {"dry_run": True, "out": str(out), "runs": planned}


def command(argv: Sequence[str] | None = None) -> None:
    """`python -m textgan.sweep`: main, then exit status 1 if a run failed, so that a script or
    a CI job notices (the leaderboard of the finished runs is written either way)."""
    if main(argv).get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    run_main(command)
