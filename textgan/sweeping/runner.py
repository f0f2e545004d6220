"""Run a sweep's runs: each one's stages as subprocesses, several runs at once, state on disk.

Each run is `python -m textgan.pretrain`, `python -m textgan.train`, `python -m textgan.evaluate`
in its own folder <out>/runs/<name>, each step's output appended to <run>/sweep-logs/<step>.log.
Runs whose configurations differ only in the adversarial stage's sections ([train],
[discriminator]) share one pretraining (`share_pretraining`, on by default): it runs once in
<out>/pretrain/<preset>,seed=<s>-<hash> (one run at a time pretrains it; the others find it
finished), and each run's adversarial stage starts from it with `train --from`. A run folder
that already holds a pretrain/ of its own (a sweep begun before sharing) keeps it.
Subprocesses, not threads calling main(): a crash, a NaN or a user error in one run cannot take
the sweep (or another run) down, and each gets its own torch thread pool.

State lives in two places. The truth is the run folders: a run is done when its
<run>/sweep-run.json marker (written after evaluate succeeded) holds the same settings and
report.json exists. <out>/sweep.json is the plan and each run's last status, rewritten
atomically on every change, for people and tools to read. Resuming = planning again: done runs
are reused, everything else is run again, and the stages resume from their own checkpoints (a
finished stage says "already finished" and exits at once).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgan.evaluation.jsonfile import write_json_atomic
from textgan.sweeping.plan import RunPlan

log = logging.getLogger("textgan.sweep")

STEPS = ("pretrain", "train", "evaluate")
MARKER = "sweep-run.json"
LOGS = "sweep-logs"
TAIL_LINES = 15
INTERRUPT_GRACE_S = 60.0  # a stage saves a checkpoint on SIGINT; give it time before SIGTERM


def run_dir(out: Path, run: RunPlan) -> Path:
    return out / "runs" / run.name


def run_settings(run: RunPlan, evaluate_args: Sequence[str]) -> dict[str, Any]:
    """What decides a finished run's numbers: its stages' settings and how it was evaluated."""
    return {**run.identity(), "evaluate_args": list(evaluate_args)}


def is_done(folder: Path, settings: dict[str, Any]) -> bool:
    marker = folder / MARKER
    if not marker.is_file() or not (folder / "report.json").is_file():
        return False
    try:
        saved = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False  # a damaged marker: run it again, the stages resume
    return saved.get("settings") == settings


def pretraining_dir(out: Path, run: RunPlan) -> Path:
    """Where a run's shared pretraining lives (`RunPlan.pretraining`)."""
    return out / "pretrain" / run.pretraining


def step_commands(run: RunPlan, folder: Path, evaluate_args: Sequence[str],
                  device: str | None, *,
                  pretrained: Path | None = None) -> list[tuple[str, list[str]]]:
    """(step, argv) of each stage of a run; tests replace this to run something cheaper.

    `pretrained`: the shared pretraining's folder, where the pretrain step runs and the train
    step starts from (--from); None = both in the run's own folder."""
    flags = ["--no-progress", *(["--device", device] if device else [])]
    python = [sys.executable, "-m"]
    own = ["--run-dir", str(folder), *flags]
    if pretrained is None:
        return [
            ("pretrain", [*python, "textgan.pretrain", *own, *run.stage_args]),
            ("train", [*python, "textgan.train", *own, *run.stage_args]),
            ("evaluate", [*python, "textgan.evaluate", *own, *evaluate_args]),
        ]
    # --from gives the new folder the pretraining's weights and tokenizer; --preset gives its
    # [train] and [discriminator] afresh, not as the preset said when the shared pretraining
    # was made (its pretrain sections must match, as the pretraining's name ensures)
    return [
        ("pretrain", [*python, "textgan.pretrain", "--run-dir", str(pretrained), *flags,
                      "--preset", run.preset, *run.pretrain_overrides, f"--seed={run.seed}"]),
        ("train", [*python, "textgan.train", *own, "--from", str(pretrained), *run.stage_args]),
        ("evaluate", [*python, "textgan.evaluate", *own, *evaluate_args]),
    ]


def child_env(jobs: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every stage subprocess.

    torch sizes its thread pool from OMP_NUM_THREADS at start-up; with P runs at once on C
    cores each gets C // P threads (unless the user set the variable), else P runs would each
    start C threads and slow each other down.
    """
    env = {**os.environ, **extra}
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


@dataclass
class Outcome:
    status: str                      # done, failed or interrupted
    step: str | None = None          # the step that failed or was interrupted
    returncode: int | None = None
    error: str | None = None         # the tail of that step's log
    seconds: float = 0.0


class SweepState:
    """<out>/sweep.json: the plan and each run's status; thread-safe, written atomically."""

    def __init__(self, out: Path, grid: Path, runs: Sequence[RunPlan],
                 done: Callable[[RunPlan], bool]) -> None:
        self.path = out / "sweep.json"
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {"version": 1, "grid": str(grid), "runs": {}}
        for run in runs:
            self.data["runs"][run.name] = {
                "name": run.name, "run_dir": str(run_dir(out, run)), "config_id": run.config_id,
                "label": run.label, "preset": run.preset, "settings": run.settings,
                "overrides": run.overrides, "seed": run.seed,
                "status": "done" if done(run) else "pending"}

    def status(self, name: str) -> str:
        with self._lock:
            return str(self.data["runs"][name]["status"])

    def update(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.data["runs"][name].update(fields)
            self._write()

    def interrupt_unfinished(self) -> None:
        """After Ctrl-C: nothing stays 'running' in the file."""
        with self._lock:
            for entry in self.data["runs"].values():
                if entry["status"] == "running":
                    entry["status"] = "interrupted"
            self._write()

    def write(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json_atomic(self.path, self.data)


class Children:
    """The stage subprocesses alive now, so Ctrl-C can pass the interrupt on to them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def interrupt_all(self, grace: float) -> None:
        """SIGINT (the stages checkpoint and exit), then SIGTERM, then SIGKILL."""
        with self._lock:
            procs = list(self._procs)
        for sig, wait_s in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0),
                            (signal.SIGKILL, 5.0)):
            alive = [p for p in procs if p.poll() is None]
            if not alive:
                return
            for proc in alive:
                proc.send_signal(sig)
            deadline = time.monotonic() + wait_s
            for proc in alive:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass


@dataclass
class RunContext:
    """What every run of one sweep invocation shares."""

    out: Path
    evaluate_args: list[str]
    device: str | None
    env: dict[str, str]
    state: SweepState
    share_pretraining: bool = True
    stop: threading.Event = field(default_factory=threading.Event)
    children: Children = field(default_factory=Children)
    # one lock per shared pretraining folder: one run pretrains it, the others wait and find it
    # finished (two at once would be refused by its run.lock)
    pretrain_locks: dict[Path, threading.Lock] = field(default_factory=dict)
    locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def pretrain_lock(self, folder: Path) -> threading.Lock:
        with self.locks_guard:
            return self.pretrain_locks.setdefault(folder, threading.Lock())


def execute_run(run: RunPlan, ctx: RunContext) -> Outcome:
    """Pretrain, train, evaluate one run; never raises for a failing stage (it is recorded)."""
    folder = run_dir(ctx.out, run)
    (folder / LOGS).mkdir(parents=True, exist_ok=True)
    # no marker while the run is being (re)made: an interruption must not leave it looking done
    (folder / MARKER).unlink(missing_ok=True)
    ctx.state.update(run.name, status="running", step=None, returncode=None, error=None)
    start = time.monotonic()
    # a folder pretrained on its own before sharing existed keeps its pretraining
    shared = ctx.share_pretraining and not (folder / "pretrain").exists()
    pretrained = pretraining_dir(ctx.out, run) if shared else None
    for step, argv in step_commands(run, folder, ctx.evaluate_args, ctx.device,
                                    pretrained=pretrained):
        if ctx.stop.is_set():
            return Outcome("interrupted", step, seconds=time.monotonic() - start)
        ctx.state.update(run.name, step=step)
        if step == "pretrain" and pretrained is not None:
            with ctx.pretrain_lock(pretrained):
                if ctx.stop.is_set():  # stopped while another run held the pretraining
                    return Outcome("interrupted", step, seconds=time.monotonic() - start)
                returncode = _run_step(argv, folder / LOGS / f"{step}.log", ctx)
        else:
            returncode = _run_step(argv, folder / LOGS / f"{step}.log", ctx)
        if ctx.stop.is_set() or returncode in (130, -signal.SIGINT):
            return Outcome("interrupted", step, returncode, seconds=time.monotonic() - start)
        if returncode != 0:
            return Outcome("failed", step, returncode, _tail(folder / LOGS / f"{step}.log"),
                           time.monotonic() - start)
    seconds = time.monotonic() - start
    settings = run_settings(run, ctx.evaluate_args)
    write_json_atomic(folder / MARKER, {"settings": settings, "seconds": round(seconds, 1),
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return Outcome("done", seconds=seconds)


def _run_step(argv: list[str], log_path: Path, ctx: RunContext) -> int:
    with open(log_path, "ab") as log_file:
        # appended: a resumed run keeps the log of its earlier attempts above the new one
        header = f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(argv)}\n"
        log_file.write(header.encode("utf-8"))
        log_file.flush()
        # A session of its own: a terminal's Ctrl-C reaches the sweep only, which passes it on
        # exactly once (a second SIGINT would interrupt a stage while it saves its checkpoint).
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=ctx.env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        ctx.children.add(proc)
        try:
            return proc.wait()
        finally:
            ctx.children.discard(proc)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(lines[-TAIL_LINES:])


def run_parallel(todo: Sequence[RunPlan], ctx: RunContext, jobs: int,
                 on_finished: Callable[[RunPlan, Outcome], None]) -> None:
    """Run `todo`, `jobs` at a time; on_finished runs in this (the main) thread, one at a time.

    A run is submitted only when a slot frees *and* the previous result has been handled, so
    an exception from on_finished (a score metric the report lacks) stops the sweep before
    anything else starts. On Ctrl-C or such an exception: launch nothing more, interrupt the
    running stages, record them as interrupted, re-raise.
    """
    queue = iter(todo)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sweep-run")
    futures: dict[Future[Outcome], RunPlan] = {}

    def submit_next() -> None:
        run = next(queue, None)
        if run is not None:
            futures[pool.submit(execute_run, run, ctx)] = run

    try:
        for _ in range(jobs):
            submit_next()
        recorded: set[Future[Outcome]] = set()
        while len(recorded) < len(futures):
            # a timeout, so that the main thread stays responsive to Ctrl-C
            finished, _ = wait(set(futures) - recorded, timeout=0.5,
                               return_when=FIRST_COMPLETED)
            for future in finished:
                recorded.add(future)
                _record(futures[future], future.result(), ctx, on_finished)
                submit_next()
    except BaseException:
        ctx.stop.set()
        ctx.children.interrupt_all(INTERRUPT_GRACE_S)
        pool.shutdown(wait=True, cancel_futures=True)
        for future, run in futures.items():
            if future.cancelled() or future.exception() is not None:
                continue  # never started, or a sweep bug that is being re-raised anyway
            if ctx.state.status(run.name) == "running":
                _store(run, future.result(), ctx)
        ctx.state.interrupt_unfinished()
        raise
    pool.shutdown(wait=True)


def _record(run: RunPlan, outcome: Outcome, ctx: RunContext,
            on_finished: Callable[[RunPlan, Outcome], None]) -> None:
    _store(run, outcome, ctx)
    on_finished(run, outcome)


def _store(run: RunPlan, outcome: Outcome, ctx: RunContext) -> None:
    ctx.state.update(run.name, status=outcome.status, step=outcome.step,
                     returncode=outcome.returncode, error=outcome.error,
                     seconds=round(outcome.seconds, 1))
