"""File-system faults of a run folder (issue 21): each a clear one-line error or a recovery.

Read-only and under-a-file run folders, a failed first start that must leave nothing behind,
two processes on one folder and a stale lock, damaged newest checkpoints (resume and
inference), and a full disk during a checkpoint save.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import textgan.pretrain as pretrain
import textgan.train as train
from textgan import cli
from textgan.checkpoint import RunLock, latest_checkpoint, read_checkpoint
from textgan.errors import CheckpointError, ConfigError, CorpusError, RunFolderError
from textgan.runs import LOCK_FILE
from textgan.sampling import load_for_inference

# 600 sentences: 17 batches an epoch, so a stage takes a few seconds on one thread
COMMON = ["--preset", "tiny", "--no-progress", "--data.synthetic_size=600"]
PER_EPOCH = 17


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run folder whose pretrain (2 epochs) and train (1 epoch) stages are finished.

    Built once; tests work on copies (`run_copy`). Module-scoped, so the corpus and cache
    redirections of conftest (function-scoped) are done here by hand.
    """
    import datasets.config

    import textgan.corpora.synthetic as synthetic

    base = tmp_path_factory.mktemp("finished")
    corpora = tmp_path_factory.getbasetemp() / "synthetic-corpora"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "default_root", lambda: corpora)
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(base / "hf-cache"))
        run = base / "run"
        pretrain.main([*COMMON, "--run-dir", str(run), "--pretrain.epochs=2"])
        train.main([*COMMON, "--run-dir", str(run), "--train.epochs=1"])
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under folder with its size and modification time (ns)."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))}


def run_cli(main, argv, monkeypatch, capsys):
    """A main through `run_main` as the command line runs it: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["textgan", *argv])
    with pytest.raises(SystemExit) as stopped:
        cli.run_main(main)
    return stopped.value.code, capsys.readouterr().err


# --------------------------------------------------------------------------- read-only


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: chmod where that binds; as root (where it does not) every
    write under the folder fails with EROFS, as on a read-only mount."""
    chmodded: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
                chmodded.append(path)
            return
        inside = str(folder.resolve())

        def under(path) -> bool:
            try:
                return os.path.abspath(os.fspath(path)).startswith(inside)
            except TypeError:  # a file descriptor, not a path
                return False

        def refuse(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

        def guard(original, writes=lambda *a, **k: True, paths=1):
            def guarded(*args, **kwargs):
                if writes(*args, **kwargs) and any(under(a) for a in args[:paths]):
                    refuse(args[0])
                return original(*args, **kwargs)
            return guarded

        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        monkeypatch.setattr(os, "open", guard(os.open, lambda p, flags, *a, **k:
                                                    bool(flags & write_flags)))
        for name in ("mkdir", "rmdir", "unlink", "remove"):
            monkeypatch.setattr(os, name, guard(getattr(os, name)))
        for name in ("replace", "rename", "link"):
            monkeypatch.setattr(os, name, guard(getattr(os, name), paths=2))
        opener = guard(builtins.open, lambda f, mode="r", *a, **k: any(c in mode for c in "wax+"))
        monkeypatch.setattr(builtins, "open", opener)
        monkeypatch.setattr(io, "open", opener)

    yield make
    for path in reversed(chmodded):
        path.chmod(path.stat().st_mode | 0o200)


def test_a_read_only_finished_run_still_says_finished(run_copy, read_only, caplog):
    before = tree(run_copy)
    read_only(run_copy)
    with caplog.at_level(logging.INFO, logger="textgan"):
        done = pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=2"])
        trained = train.main([*COMMON, "--run-dir", str(run_copy), "--train.epochs=1"])
    assert done["already_finished"] and trained["already_finished"]
    assert "pretrain already finished" in caplog.text and "train already finished" in caplog.text
    # and with work left: one clear refusal, before anything is written
    with pytest.raises(RunFolderError, match="read-only .*epochs left .*copy it"):
        pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=3"])
    assert tree(run_copy) == before  # not even config.toml or a lock file was written


def test_file_system_faults_of_the_run_dir_are_one_line_errors(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    cases = [(a_file / "run", f"{a_file} is a file, not a folder"),
             (a_file, "is a file, not a folder"),
             (Path("/proc/textgan-test/run"), "/proc does not take new folders")]
    for run_dir, expected in cases:
        status, err = run_cli(pretrain.main, [*COMMON, "--run-dir", str(run_dir)], monkeypatch,
                              capsys)
        assert status == 2 and expected in err and str(run_dir) in err
        assert "Traceback" not in err and err.count("\n") == 1, err
    assert a_file.read_text() == "not a folder"

    # a folder that cannot be created (read-only mount, no permission): named, with the fix
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    status, err = run_cli(pretrain.main, [*COMMON, "--run-dir", str(tmp_path / "new")],
                          monkeypatch, capsys)
    assert status == 2 and "Read-only file system" in err and "writable" in err
    assert "Traceback" not in err


def test_an_os_error_elsewhere_is_one_line_naming_the_path(monkeypatch, capsys):
    def fails(argv):
        raise PermissionError(errno.EACCES, "Permission denied", "/some/run/report.json")

    monkeypatch.setattr(sys, "argv", ["textgan"])
    with pytest.raises(SystemExit) as stopped:
        cli.run_main(fails)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: permission denied: /some/run/")

    def bug(argv):  # an OSError without a path is not the user's: it keeps its traceback
        raise OSError(errno.EINVAL, "Invalid argument")

    with pytest.raises(OSError):
        cli.run_main(bug)


# --------------------------------------------------------------------------- failed starts


def test_a_failed_first_start_leaves_nothing_and_the_fixed_rerun_works(tmp_path):
    run = tmp_path / "runs" / "mine"
    with pytest.raises(CorpusError, match="typo.csv"):
        pretrain.main([*COMMON, "--run-dir", str(run), "--data.source=typo.csv"])
    assert not (tmp_path / "runs").exists()  # nor the folder above it, created with it
    # an existing folder is left exactly as it was
    run.mkdir(parents=True)
    (run / "notes.md").write_text("mine")
    with pytest.raises(CorpusError):
        pretrain.main([*COMMON, "--run-dir", str(run), "--data.source=typo.csv"])
    assert sorted(p.name for p in run.iterdir()) == ["notes.md"]
    # the fixed command starts afresh: no "created with another config"
    result = pretrain.main([*COMMON, "--run-dir", str(run), "--pretrain.epochs=1"])
    assert result["iteration"] == PER_EPOCH and not (run / LOCK_FILE).exists()
    assert "source = \"synthetic\"" in (run / "config.toml").read_text()


def test_train_from_a_checkpoint_of_another_config_names_it_and_leaves_no_folder(
        finished_run, tmp_path):
    other = tmp_path / "other"
    checkpoint = latest_checkpoint(finished_run / "pretrain", "pretrain")
    with pytest.raises(ConfigError) as refused:
        train.main([*COMMON, "--run-dir", str(other), "--from", str(checkpoint),
                    "--model.z_dim=4"])
    message = str(refused.value)
    assert f"{checkpoint} was pretrained with another config" in message
    assert "model.z_dim: 8 -> 4" in message and "created with another config" not in message
    assert not other.exists()  # the config and tokenizer --from copied are gone with it


def test_train_from_another_run_folder_starts_where_its_pretraining_ended(
        finished_run, tmp_path, caplog):
    """--from RUN_DIR: a new folder shares another folder's pretraining (as sweeps do)."""
    other = tmp_path / "other"
    ended = latest_checkpoint(finished_run / "pretrain", "pretrain")
    with caplog.at_level(logging.INFO, logger="textgan"):
        result = train.main(["--no-progress", "--run-dir", str(other), "--from",
                             str(finished_run), "--train.epochs=1", "--train.lambda_c=0.5"])
    assert f"starting from the pretrained VAE {ended}" in caplog.text
    assert result["iteration"] == PER_EPOCH
    assert "lambda_c = 0.5" in (other / "config.toml").read_text()
    assert not (finished_run / "train" / f"train_checkpoint_{2 * PER_EPOCH}.pt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="that run folder has no pretrain checkpoint"):
        train.main(["--no-progress", "--run-dir", str(tmp_path / "third"), "--from", str(empty)])
    assert not (tmp_path / "third").exists()


# --------------------------------------------------------------------------- the lock


def test_a_second_process_on_a_run_folder_is_refused_by_name(run_copy):
    lock = RunLock(run_copy / LOCK_FILE)
    lock.acquire()  # this test's process runs a stage there, as far as anyone can tell
    try:
        command = [sys.executable, "-m", "textgan.pretrain", *COMMON, "--run-dir", str(run_copy),
                   "--pretrain.epochs=9"]
        second = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        lock.release()
    assert second.returncode == 2, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    error = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and str(os.getpid()) in error[0] and socket.gethostname() in error[0]
    assert str(run_copy / LOCK_FILE) in error[0]
    assert not (run_copy / LOCK_FILE).exists()  # released by its holder, not by the refused
    assert latest_checkpoint(run_copy / "pretrain", "pretrain").name.endswith(
        f"_{2 * PER_EPOCH}.pt")  # the refused process trained nothing


def test_the_lock_is_held_while_a_stage_runs_and_released_after_an_error(run_copy):
    seen = {}

    def inspect_lock(*args, **kwargs):
        seen["holder"] = json.loads((run_copy / LOCK_FILE).read_text())
        raise CorpusError("stop here")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain, "prepare_data", inspect_lock)
        with pytest.raises(CorpusError):
            pretrain.main([*COMMON, "--run-dir", str(run_copy)])
    assert seen["holder"]["pid"] == os.getpid()
    assert seen["holder"]["host"] == socket.gethostname()
    assert not (run_copy / LOCK_FILE).exists()
    assert (run_copy / "config.toml").is_file()  # a started run's files are not undone


def test_a_stale_lock_is_taken_over_with_a_warning(run_copy, caplog):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (run_copy / LOCK_FILE).write_text(json.dumps(
        {"pid": ended.pid, "host": socket.gethostname(), "started": None}))
    with caplog.at_level(logging.WARNING, logger="textgan"):
        result = pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=2"])
    assert result["already_finished"]
    assert f"left by process {ended.pid}" in caplog.text and "taking the lock over" in caplog.text
    assert not (run_copy / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_not_taken_over(run_copy):
    (run_copy / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunFolderError, match="process 1 on host elsewhere.*delete the lock"):
        pretrain.main([*COMMON, "--run-dir", str(run_copy)])
    assert json.loads((run_copy / LOCK_FILE).read_text())["host"] == "elsewhere"


# --------------------------------------------------------------------------- damaged checkpoints


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "zero-byte":
        path.write_bytes(b"")
    else:  # a whole zip file, but not a checkpoint torch can load
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("nothing", b"")


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "whole-but-unloadable"])
def test_resume_skips_a_damaged_newest_checkpoint(run_copy, how, caplog):
    stage_dir = run_copy / "pretrain"
    newest = stage_dir / f"pretrain_checkpoint_{2 * PER_EPOCH}.pt"
    older = stage_dir / f"pretrain_checkpoint_{PER_EPOCH}.pt"
    damage(newest, how)
    with caplog.at_level(logging.WARNING, logger="textgan"):
        result = pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=2"])
    assert result["resumed_from"] == str(older)
    assert result["iteration"] == 2 * PER_EPOCH and not result["already_finished"]
    warning = next(r.getMessage() for r in caplog.records if "damaged" in r.getMessage())
    assert str(newest) in warning and older.name in warning
    assert (stage_dir / (newest.name + ".damaged")).is_file()  # kept, renamed
    read_checkpoint(newest)  # the epoch it lost was trained again and saved


@pytest.mark.parametrize("how", ["truncated", "zero-byte", "whole-but-unloadable"])
def test_inference_skips_a_damaged_newest_checkpoint(run_copy, how, caplog):
    train_dir = run_copy / "train"
    (newest,) = train_dir.glob("train_checkpoint_*.pt")
    damage(newest, how)
    with caplog.at_level(logging.WARNING, logger="textgan"):
        model = load_for_inference(run_copy)
    # the train stage has no other checkpoint: the newest intact one is the pretrained VAE's
    expected = run_copy / "pretrain" / f"pretrain_checkpoint_{2 * PER_EPOCH}.pt"
    assert model.checkpoint == expected and model.stage == "pretrain"
    warning = next(r.getMessage() for r in caplog.records if "damaged" in r.getMessage())
    assert newest.name in warning and str(expected) in warning
    assert (train_dir / (newest.name + ".damaged")).is_file() and not newest.exists()


def test_no_intact_checkpoint_left_is_a_clear_error(run_copy):
    for path in (run_copy / "pretrain").glob("pretrain_checkpoint_*.pt"):
        damage(path, "truncated")
    with pytest.raises(CheckpointError, match="no intact pretrain checkpoint .*move the damaged"):
        pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=3"])
    # a rerun does not quietly start the stage over
    with pytest.raises(CheckpointError, match="no intact pretrain checkpoint"):
        pretrain.main([*COMMON, "--run-dir", str(run_copy), "--pretrain.epochs=3"])
    for folder in ("pretrain", "train"):
        for path in (run_copy / folder).glob("*.pt"):
            damage(path, "zero-byte")
    with pytest.raises(CheckpointError, match="no intact checkpoint in the run folder"):
        load_for_inference(run_copy)
    assert len(list(run_copy.rglob("*.damaged*"))) == len(list(run_copy.rglob("*.pt*")))


# --------------------------------------------------------------------------- a full disk


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(
        run_copy, monkeypatch, capsys):
    stage_dir = run_copy / "pretrain"
    previous = {path.name: path.read_bytes() for path in stage_dir.glob("*.pt")}
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        """Write half the checkpoint, then fail as the kernel does when the disk fills up."""
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    # keep_last=1: the save of epoch 3 would have dropped the only other checkpoint first
    status, err = run_cli(pretrain.main, [*COMMON, "--run-dir", str(run_copy),
                                          "--pretrain.epochs=3", "--pretrain.keep_last=1"],
                          monkeypatch, capsys)
    assert status == 2 and "Traceback" not in err
    error = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error == [err.splitlines()[-1]]
    assert error[0].startswith(f"error: no space left on device: {stage_dir}")
    needed = float(re.search(r"need ~([\d.]+) MB", error[0]).group(1))
    size = len(previous[f"pretrain_checkpoint_{2 * PER_EPOCH}.pt"]) / 2**20
    assert 0.75 < needed / size < 1.25  # the estimate is near what a checkpoint takes
    assert "Engine run is terminating" not in err  # said once, by us
    monkeypatch.setattr(torch, "save", real_save)
    # nothing half-written left behind; every earlier checkpoint as it was, and loadable
    assert {path.name: path.read_bytes() for path in stage_dir.iterdir()} == previous
    read_checkpoint(stage_dir / f"pretrain_checkpoint_{2 * PER_EPOCH}.pt")
    assert not (run_copy / LOCK_FILE).exists()


def test_a_run_killed_during_its_saves_resumes_from_its_newest_whole_checkpoint(tmp_path, caplog):
    """SIGKILL while a checkpoint is written every iteration (so the kill lands in or next to a
    save): the next start takes over the dead process's lock, resumes from the newest whole
    checkpoint, and finishes the run."""
    import signal
    import time

    run = tmp_path / "run"
    args = [*COMMON, "--run-dir", str(run), "--pretrain.epochs=2",
            "--pretrain.checkpoint_every=1"]
    process = subprocess.Popen([sys.executable, "-m", "textgan.pretrain", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while len(list((run / "pretrain").glob("pretrain_checkpoint_*.pt"))) < 2:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoints within 300 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert (run / LOCK_FILE).exists()  # the dead process could not release it
    whole = latest_checkpoint(run / "pretrain", "pretrain")
    assert whole is not None
    with caplog.at_level(logging.INFO):
        result = pretrain.main(args)
    messages = [record.getMessage() for record in caplog.records]
    assert any("was left by process" in message for message in messages), messages
    resumed = [message for message in messages if message.startswith("resumed from")]
    assert resumed and str(whole) in resumed[0], messages
    assert result["iteration"] == 2 * PER_EPOCH
    assert not (run / LOCK_FILE).exists()
