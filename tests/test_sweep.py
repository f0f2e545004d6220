"""python -m textgan.sweep: planning, scores, bad input, failures, Ctrl-C, one real tiny sweep.

Most tests replace the stage commands with tiny Python one-liners (runner.step_commands), so
they exercise the sweep's own machinery -- subprocesses, parallel jobs, state, resume,
leaderboard -- in well under a second each; one test runs the real stages on the tiny preset.
"""

from __future__ import annotations

import _thread
import itertools
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import textgan.sweep as sweep
from textgan.errors import ConfigError
from textgan.sweeping import runner
from textgan.sweeping.leaderboard import build_leaderboard, to_markdown
from textgan.sweeping.plan import RunPlan, plan_runs, sample_indices, validate_plan
from textgan.sweeping.scores import ScoreSpec, aggregate, flatten_report, mean_std
from textgan.sweeping.spec import read_spec

SCORE = """
[score]
metrics = ["transfer.*.judge_acc", "transfer.*.bleu_source"]
"""


def grid_file(tmp_path: Path, body: str, score: str = SCORE, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(body + score, encoding="utf-8")
    return path


def fake_report(judge_acc: float, bleu: float, extra: float = 1.0) -> dict:
    """The shape of report.json, with the numbers a test wants (and a section the sweep skips)."""
    return {
        "settings": {"n": 10, "seed": 0},
        "transfer": {"sentiment": {"judge_acc": judge_acc, "bleu_source": bleu},
                     "tense": {"judge_acc": judge_acc, "bleu_source": bleu}},
        "diversity": {"self_bleu_4": 80.0 * extra},
        "vae": {"kl_per_dim": [1.0, 2.0], "iw_nll_per_token": 2.0 * extra},
    }


# --------------------------------------------------------------------------- planning


def test_the_grid_expands_to_its_cartesian_product_in_file_order(tmp_path):
    spec = read_spec(grid_file(tmp_path, """
[sweep]
preset = "tiny"
[fixed]
"pretrain.epochs" = 1
[grid]
"train.lambda_c" = [0.05, 0.1]
"train.entropy_weight" = [0.0, 0.1, 0.2]
"""))
    runs = plan_runs(spec)
    expected = list(itertools.product([0.05, 0.1], [0.0, 0.1, 0.2]))
    assert [(r.settings["train.lambda_c"], r.settings["train.entropy_weight"]) for r in runs] \
        == expected
    first = runs[0]
    assert first.stage_args == ["--preset", "tiny", "--pretrain.epochs=1",
                                "--train.lambda_c=0.05", "--train.entropy_weight=0.0", "--seed=0"]
    assert len(validate_plan(runs, "grid.toml")) == 6  # every configuration resolves


def test_tables_presets_and_list_values_become_overrides_the_config_reads(tmp_path):
    spec = read_spec(grid_file(tmp_path, """
[sweep]
preset = "tiny"
[fixed.data]
label_columns = ["sentiment"]
[grid]
preset = ["tiny", "default"]
"""))
    runs = plan_runs(spec)
    assert [r.preset for r in runs] == ["tiny", "default"]
    assert runs[0].overrides == ['--data.label_columns=["sentiment"]']
    configs = validate_plan(runs, "grid.toml")
    assert len(configs) == 2
    assert [c.data.label_columns for c in configs.values()] == [["sentiment"], ["sentiment"]]


def test_a_random_sample_is_deterministic_a_subset_and_grows_with_the_budget(tmp_path):
    body = """
[sweep]
preset = "tiny"
mode = "random"
budget = {budget}
sample_seed = {seed}
[grid]
"train.lambda_c" = [0.0, 0.05, 0.1, 0.2]
"train.entropy_weight" = [0.0, 0.05, 0.1, 0.2, 0.3]
"""

    def sample(budget: int, seed: int) -> list[dict]:
        path = grid_file(tmp_path, body.format(budget=budget, seed=seed))
        return [run.settings for run in plan_runs(read_spec(path))]

    full = [dict(zip(["train.lambda_c", "train.entropy_weight"], values))
            for values in itertools.product([0.0, 0.05, 0.1, 0.2], [0.0, 0.05, 0.1, 0.2, 0.3])]
    six = sample(6, seed=1)
    assert len(six) == 6 and six == sample(6, seed=1)
    assert all(settings in full for settings in six)
    assert [full.index(s) for s in six] == sorted(full.index(s) for s in six)  # grid order
    eight = sample(8, seed=1)
    assert all(settings in eight for settings in six)  # a larger budget extends the sample
    assert sample(6, seed=2) != six
    assert sample(50, seed=1) == full
    assert sample_indices(20, 6, 1) == sample_indices(20, 6, 1)


def test_seeds_multiply_the_runs_and_folder_names_are_stable_and_distinct(tmp_path):
    body = """
[sweep]
preset = "tiny"
seeds = 3
[fixed]
"pretrain.epochs" = {epochs}
[grid]
"train.lambda_c" = [0.05, 0.1]
"""
    runs = plan_runs(read_spec(grid_file(tmp_path, body.format(epochs=1))))
    assert len(runs) == 6
    assert [r.seed for r in runs] == [0, 0, 1, 1, 2, 2]  # seed-major: all configs first
    assert len({r.name for r in runs}) == 6
    assert len({r.config_id for r in runs}) == 2
    assert runs[0].name.startswith("lambda_c=0.05,seed=0-")
    assert runs[5].stage_args[-1] == "--seed=2"
    again = plan_runs(read_spec(grid_file(tmp_path, body.format(epochs=1))))
    assert [r.name for r in again] == [r.name for r in runs]
    changed = plan_runs(read_spec(grid_file(tmp_path, body.format(epochs=2))))
    assert not {r.name for r in changed} & {r.name for r in runs}  # other settings, new folders


def test_an_edited_preset_file_maps_to_new_runs_and_only_its_pretrain_sections_to_new_pretrainings(
        tmp_path, monkeypatch):
    import textgan.config as config

    presets = tmp_path / "configs"
    presets.mkdir()
    tiny = (config.CONFIGS_DIR / "tiny.toml").read_text(encoding="utf-8")
    (presets / "tiny.toml").write_text(tiny, encoding="utf-8")
    monkeypatch.setattr(config, "CONFIGS_DIR", presets)
    grid = grid_file(tmp_path, """
[sweep]
preset = "tiny"
[grid]
"train.lambda_c" = [0.05, 0.1]
""")

    def plan() -> list[RunPlan]:
        return plan_runs(read_spec(grid))

    before = plan()
    assert [r.name for r in plan()] == [r.name for r in before]  # stable while unedited
    # a finished run of the old file is not taken for one of the new: the [train] edit makes
    # new run folders, but the pretraining, which never reads [train], is still shared
    assert "lambda_u" not in tiny
    (presets / "tiny.toml").write_text(tiny.replace("[train]", "[train]\nlambda_u = 0.0", 1),
                                       encoding="utf-8")
    train_edit = plan()
    assert not {r.name for r in train_edit} & {r.name for r in before}
    assert [r.pretraining for r in train_edit] == [r.pretraining for r in before]
    assert len({r.config_id for r in train_edit}) == 2
    # an edit of a pretrain section makes a new pretraining too
    (presets / "tiny.toml").write_text(tiny.replace("z_dim = 8", "z_dim = 5", 1),
                                       encoding="utf-8")
    model_edit = plan()
    assert not {r.pretraining for r in model_edit} & {r.pretraining for r in before}


def test_an_unknown_preset_in_a_grid_names_the_grid_file(tmp_path):
    grid = grid_file(tmp_path, """
[sweep]
preset = "nonesuch"
[grid]
"train.lambda_c" = [0.05, 0.1]
""")
    with pytest.raises(ConfigError, match=r"grid\.toml.*unknown preset 'nonesuch'"):
        plan_runs(read_spec(grid))


def test_the_command_line_overrides_seeds_and_budget(tmp_path, capsys):
    path = grid_file(tmp_path, """
[sweep]
preset = "tiny"
[grid]
"train.lambda_c" = [0.05, 0.1, 0.2]
""")
    result = sweep.main(["--grid", str(path), "--out", str(tmp_path / "out"), "--seeds", "2",
                         "--budget", "2", "--sample-seed", "3", "--dry-run"])
    assert result["dry_run"] and len(result["runs"]) == 4
    assert {run["seed"] for run in result["runs"]} == {0, 1}
    assert "4 runs" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_runs_that_differ_only_in_the_adversarial_stage_share_one_pretraining(tmp_path,
                                                                              capsys):
    path = grid_file(tmp_path, """
[sweep]
preset = "tiny"
seeds = 2
[fixed]
"pretrain.epochs" = 1
[grid]
"train.lambda_c" = [0.0, 0.1]
"discriminator.kind" = ["cnn", "gru"]
"model.z_dim" = [4, 8]
""")
    runs = plan_runs(read_spec(path))
    assert len(runs) == 16
    # one pretraining per (z_dim, seed): the [train] and [discriminator] keys do not reach it
    assert len({run.pretraining for run in runs}) == 4
    first = runs[0]
    assert first.pretrain_overrides == ["--pretrain.epochs=1", "--model.z_dim=4"]
    same = [run for run in runs if run.pretraining == first.pretraining]
    assert {(r.settings["train.lambda_c"], r.settings["discriminator.kind"]) for r in same} == {
        (0.0, "cnn"), (0.0, "gru"), (0.1, "cnn"), (0.1, "gru")}
    assert {r.seed for r in same} == {0} and {r.settings["model.z_dim"] for r in same} == {4}
    result = sweep.main(["--grid", str(path), "--out", str(tmp_path / "out"), "--dry-run"])
    assert "4 pretraining(s), shared in" in capsys.readouterr().out
    assert result["runs"][0]["pretraining"].endswith(f"pretrain/{first.pretraining}")
    # commands: the pretraining runs in the shared folder, the train stage starts from it
    shared = tmp_path / "out" / "pretrain" / first.pretraining
    steps = dict(runner.step_commands(first, tmp_path / "run", [], None, pretrained=shared))
    assert steps["pretrain"][steps["pretrain"].index("--run-dir") + 1] == str(shared)
    assert "--train.lambda_c=0.0" not in steps["pretrain"]
    train = steps["train"]
    assert train[train.index("--from") + 1] == str(shared)
    # the adversarial sections come from the preset as it is now, not from the pretraining
    assert train[train.index("--preset") + 1] == "tiny"
    assert "--train.lambda_c=0.0" in train and train[train.index("--run-dir") + 1] == str(
        tmp_path / "run")


def test_a_shared_pretraining_runs_once_at_a_time_and_old_folders_keep_their_own(
        tmp_path, monkeypatch):
    seen: dict[str, Path | None] = {}
    busy = tmp_path / "busy"
    # the pretrain stage fails if another one is running: the lock must keep them apart
    pretrain = (f"import os, sys, time; p = {str(busy)!r}\n"
                "if os.path.exists(p): sys.exit(3)\n"
                "open(p, 'w').close(); time.sleep(0.5); os.remove(p)")

    def commands(run, folder, evaluate_args, device, pretrained=None):
        seen[run.name] = pretrained
        value = run.settings["train.lambda_c"]
        own = "print('pretraining in the run folder')"
        return [("pretrain", [sys.executable, "-c", own if pretrained is None else pretrain]),
                ("train", [sys.executable, "-c", "print('training')"]),
                ("evaluate", [sys.executable, "-c", FAKE_EVALUATE, str(folder), str(value)])]

    monkeypatch.setattr(runner, "step_commands", commands)
    out = tmp_path / "out"
    spec_path = grid_file(tmp_path, FAKE_GRID)
    old = runner.run_dir(out, plan_runs(read_spec(spec_path))[0])
    (old / "pretrain").mkdir(parents=True)  # pretrained in its own folder by an older sweep
    result = sweep.main(["--grid", str(spec_path), "--out", str(out), "--jobs", "3",
                         "--no-progress"])
    assert result["ran"] == 3 and not result["failed"]
    assert seen[old.name] is None
    shared = {path for name, path in seen.items() if name != old.name}
    assert len(shared) == 1 and next(iter(shared)).parent == out / "pretrain"


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs" / "sweeps")
                                         .glob("*.toml")), ids=lambda path: path.name)
def test_the_shipped_grid_files_plan_without_errors(path, tmp_path):
    result = sweep.main(["--grid", str(path), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result["dry_run"] and result["runs"]


# --------------------------------------------------------------------------- scores


def test_the_score_combines_scaled_metrics_by_geometric_or_plain_mean():
    flat = flatten_report(fake_report(judge_acc=0.9, bleu=40.0))
    assert flat["transfer.sentiment.judge_acc"] == 0.9 and "settings.n" not in flat
    assert "vae.kl_per_dim" not in flat
    spec = ScoreSpec(metrics=["transfer.*.judge_acc", "transfer.*.bleu_source"])
    # BLEU is divided by 100 unless told otherwise: geomean(0.9, 0.9, 0.4, 0.4)
    assert spec.score(flat, "r") == pytest.approx(math.sqrt(0.9 * 0.4))
    spec.combine = "mean"
    assert spec.score(flat, "r") == pytest.approx((0.9 + 0.4) / 2)
    lower = ScoreSpec(metrics=["transfer.sentiment.judge_acc", "vae.iw_nll_per_token"],
                      scale={"vae.iw_nll_per_token": 0.1}, lower_is_better=["vae.*"])
    assert lower.terms(flat, "r") == pytest.approx(
        {"transfer.sentiment.judge_acc": 0.9, "vae.iw_nll_per_token": 0.8})
    unscaled = ScoreSpec(metrics=["diversity.self_bleu_4"], scale={"diversity.*": 1.0},
                         lower_is_better=["diversity.self_bleu_4"])
    with pytest.raises(ConfigError, match="geometric mean needs terms >= 0"):
        unscaled.score(flat, "r")


def test_an_unknown_score_metric_names_the_close_ones():
    flat = flatten_report(fake_report(0.9, 40.0))
    spec = ScoreSpec(metrics=["transfer.sentiment.judge_accuracy"])
    with pytest.raises(ConfigError, match="matches no metric.*transfer.sentiment.judge_acc"):
        spec.score(flat, "report.json")
    with pytest.raises(ConfigError, match="scale key 'vae.kl'"):
        ScoreSpec(metrics=["transfer.*.judge_acc"], scale={"vae.kl": 2.0}).score(flat, "r")


def test_seeds_aggregate_to_mean_and_sample_std_of_every_metric():
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}  # ddof = 1
    assert mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    stats = aggregate([{"a": 1.0, "b": 4.0}, {"a": 3.0}])
    assert stats["a"] == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert stats["b"] == {"mean": 4.0, "std": None, "n": 1}


def test_the_leaderboard_ranks_configurations_by_mean_score_with_failures_last(tmp_path):
    spec = read_spec(grid_file(tmp_path, """
[sweep]
preset = "tiny"
seeds = 2
[grid]
"train.lambda_c" = [0.05, 0.1, 0.2]
"""))
    runs = plan_runs(spec)
    by_config = {run.settings["train.lambda_c"]: [] for run in runs}
    for run in runs:
        by_config[run.settings["train.lambda_c"]].append(run)
    accuracies = {0.05: (0.5, 0.7), 0.1: (0.9, 0.8), 0.2: None}  # 0.2: both seeds failed
    entries, metrics, scores = {}, {}, {}
    for value, group in by_config.items():
        for index, run in enumerate(group):
            ok = accuracies[value] is not None
            entries[run.name] = {"run_dir": f"runs/{run.name}", "status": "done" if ok else
                                 "failed", "step": None if ok else "train",
                                 "error": None if ok else "Traceback\nRuntimeError: boom"}
            if ok:
                flat = flatten_report(fake_report(accuracies[value][index], 50.0))
                metrics[run.name] = flat
                scores[run.name] = spec.score.score(flat, run.name)
    board = build_leaderboard(spec, runs, entries, metrics, scores)
    ranked = board["leaderboard"]
    assert [row["settings"]["train.lambda_c"] for row in ranked] == [0.1, 0.05]
    assert [row["rank"] for row in ranked] == [1, 2]
    best = ranked[0]
    assert best["n_seeds"] == 2 and best["score"]["n"] == 2
    assert best["metrics"]["transfer.sentiment.judge_acc"]["mean"] == pytest.approx(0.85)
    assert best["metrics"]["transfer.sentiment.judge_acc"]["std"] == pytest.approx(
        math.sqrt(0.005))
    assert best["score"]["mean"] == pytest.approx(
        (math.sqrt(0.9 * 0.5) + math.sqrt(0.8 * 0.5)) / 2)
    assert [row["settings"]["train.lambda_c"] for row in board["unfinished"]] == [0.2]
    assert board["counts"] == {"done": 4, "failed": 2}
    markdown = to_markdown(spec, board)
    assert "| 1 | 0.6" in markdown and " ± " in markdown
    assert "## Failed or unfinished runs" in markdown and "RuntimeError: boom" in markdown
    json.dumps(board, allow_nan=False)  # strict JSON


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("body", "message"), [
    ("[sweep]\npreset = 'tiny'\n[grid]\n'train.lambda_k' = [0.1]\n",
     "configuration lambda_k=0.1: unknown key 'train.lambda_k' \\(did you mean"),
    ("[sweep]\npreset = 'tiny'\n[grid]\n'train.lambda_c' = [0.1, -1.0]\n",
     "lambda_c=-1.0.*train.lambda_c must be >= 0"),
    ("[sweep]\npreset = 'tiny'\n[fixed]\n'trian.epochs' = 1\n", "\\[fixed\\].*unknown key"),
    ("[sweep]\npreset = 'tiny'\n[grid]\nseed = [1, 2]\n", "set seeds with \\[sweep\\] seeds"),
    ("[sweep]\nseeds = 0\n", "seeds must be at least 1"),
    ("[sweep]\nmode = 'random'\n", "needs budget"),
    ("[sweep]\npreset = 'huge'\n", "unknown preset 'huge'"),
    ("[sweep]\nevaluate_args = ['--run-dir=x']\n", "--run-dir is set by the sweep"),
    ("[sweep]\nevaluate_args = ['--colour=blue']\n", "does not know --colour=blue"),
    ("[sweeep]\n", "unknown section 'sweeep'"),
    ("[sweep]\npreset = 'tiny'\n[grid]\n'train.lambda_c' = 0.1\n", "must be a non-empty list"),
    ("[sweep\n", "is not valid TOML"),
])
def test_bad_grid_files_fail_before_any_run_with_a_clear_message(tmp_path, body, message):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        sweep.main(["--grid", str(grid_file(tmp_path, body)), "--out", str(out)])
    assert not out.exists()


def test_bad_score_sections_and_command_lines_are_user_errors(tmp_path):
    base = "[sweep]\npreset = 'tiny'\n"
    with pytest.raises(ConfigError, match="needs metrics"):
        read_spec(grid_file(tmp_path, base, score=""))
    with pytest.raises(ConfigError, match="combine must be one of geomean, mean"):
        read_spec(grid_file(tmp_path, base, score="[score]\nmetrics = ['a']\ncombine = 'max'\n"))
    with pytest.raises(ConfigError, match="grid file not found"):
        sweep.main(["--grid", str(tmp_path / "missing.toml")])
    with pytest.raises(ConfigError, match="--seeds must be at least 1"):
        sweep.main(["--grid", str(grid_file(tmp_path, base)), "--seeds", "0", "--dry-run"])
    # as a program: one line, exit status 2
    done = subprocess.run([sys.executable, "-m", "textgan.sweep", "--grid",
                           str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: grid file not found")


# --------------------------------------------------------------------------- fake stages


# Each fake stage is a Python one-liner run as the real ones are, a subprocess in the run
# folder's logs; evaluate writes a report whose numbers follow train.lambda_c.
FAKE_EVALUATE = """
import json, sys
folder, acc = sys.argv[1], float(sys.argv[2])
report = {"transfer": {"sentiment": {"judge_acc": acc, "bleu_source": 50.0}}}
open(folder + "/report.json", "w").write(json.dumps(report))
"""


def fake_commands(fail_when: float | None = None, sleep: float = 0.0,
                  evaluate: str = FAKE_EVALUATE):
    def commands(run: RunPlan, folder: Path, evaluate_args, device, pretrained=None):
        value = run.settings["train.lambda_c"]
        stage = f"import time; time.sleep({sleep})"
        if value == fail_when:
            stage = "import sys; sys.stderr.write('RuntimeError: boom\\n'); sys.exit(3)"
        return [("pretrain", [sys.executable, "-c", stage]),
                ("train", [sys.executable, "-c", "print('training')"]),
                ("evaluate", [sys.executable, "-c", evaluate, str(folder), str(value)])]
    return commands


FAKE_GRID = """
[sweep]
preset = "tiny"
[fixed]
"data.source" = "tiny"
[grid]
"train.lambda_c" = [0.3, 0.2, 0.1]
"""


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "step_commands", fake_commands(fail_when=0.2))
    out = tmp_path / "out"
    argv = ["--grid", str(grid_file(tmp_path, FAKE_GRID)), "--out", str(out), "--jobs", "2",
            "--no-progress"]
    result = sweep.main(argv)
    assert result["ran"] == 3 and len(result["failed"]) == 1
    assert [row["settings"]["train.lambda_c"] for row in result["leaderboard"]] == [0.3, 0.1]
    assert result["unfinished"][0]["settings"]["train.lambda_c"] == 0.2
    state = json.loads((out / "sweep.json").read_text())
    failed = next(e for e in state["runs"].values() if e["status"] == "failed")
    assert failed["step"] == "pretrain" and failed["returncode"] == 3
    assert "RuntimeError: boom" in failed["error"]
    assert "RuntimeError: boom" in (Path(failed["run_dir"]) / "sweep-logs" /
                                   "pretrain.log").read_text()
    assert "Failed or unfinished" in (out / "leaderboard.md").read_text()
    assert "| 1 |" in capsys.readouterr().out  # the leaderboard is printed too
    # rerun: the finished runs are reused, the failed one is tried again (and fails again)
    again = sweep.main(argv)
    assert again["ran"] == 1 and again["reused"] == 2
    # the command's exit status says that a run failed
    with pytest.raises(SystemExit) as exited:
        sweep.command(argv)
    assert exited.value.code == 1
    state = json.loads((out / "sweep.json").read_text())
    assert sorted(e["status"] for e in state["runs"].values()) == ["done", "done", "failed"]


def test_an_unknown_score_metric_stops_the_sweep_at_the_first_report(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "step_commands", fake_commands())
    out = tmp_path / "out"
    path = grid_file(tmp_path, FAKE_GRID, score="[score]\nmetrics = ['transfer.*.judge_accc']\n")
    with pytest.raises(ConfigError, match="'transfer.\\*.judge_accc' matches no metric"):
        sweep.main(["--grid", str(path), "--out", str(out), "--no-progress"])
    statuses = [e["status"] for e in json.loads((out / "sweep.json").read_text())["runs"].values()]
    assert statuses == ["done", "pending", "pending"]  # nothing more was launched


def test_ctrl_c_interrupts_the_stages_and_leaves_a_consistent_state(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "step_commands", fake_commands(sleep=60))
    out = tmp_path / "out"
    path = grid_file(tmp_path, FAKE_GRID)
    timer = threading.Timer(2.0, _thread.interrupt_main)  # Ctrl-C, as the main thread sees it
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.main(["--grid", str(path), "--out", str(out), "--jobs", "2", "--no-progress"])
    finally:
        timer.cancel()
    assert time.monotonic() - start < 20  # the sleeping stages were interrupted, not awaited
    state = json.loads((out / "sweep.json").read_text())
    statuses = sorted(e["status"] for e in state["runs"].values())
    assert statuses == ["interrupted", "interrupted", "pending"]
    assert (out / "leaderboard.json").is_file()


def test_parallel_runs_share_the_cores_unless_the_user_set_the_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    assert runner.child_env(3, {"X": "1"})["OMP_NUM_THREADS"] == "2"
    assert runner.child_env(16, {})["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert runner.child_env(3, {})["OMP_NUM_THREADS"] == "5"


# --------------------------------------------------------------------------- real stages


def test_a_tiny_sweep_runs_evaluates_ranks_and_resumes_without_rerunning(tmp_path, capsys):
    path = grid_file(tmp_path, """
[sweep]
preset = "tiny"
evaluate_args = ["--n=20", "--transfer-n=10", "--no-curve", "--iw-samples=2"]
show = ["generation.oracle.grammatical"]
[fixed]
"pretrain.epochs" = 1
"pretrain.patience" = 1
"train.epochs" = 1
[grid]
"train.lambda_c" = [0.05, 0.2]
""")
    out = tmp_path / "out"
    argv = ["--grid", str(path), "--out", str(out), "--jobs", "2", "--no-progress"]
    result = sweep.main(argv)
    assert result["ran"] == 2 and result["reused"] == 0 and not result["failed"]
    rows = result["leaderboard"]
    assert len(rows) == 2 and [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["score"]["mean"] >= rows[1]["score"]["mean"]
    for row in rows:
        assert 0 <= row["score"]["mean"] <= 1 and row["score"]["std"] is None
        assert row["metrics"]["transfer.sentiment.judge_acc"]["n"] == 1
        assert "generation.oracle.grammatical" in row["metrics"]
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["leaderboard"][0]["config_id"] == rows[0]["config_id"]
    markdown = (out / "leaderboard.md").read_text()
    assert "train.lambda_c" in markdown and "generation.oracle.grammatical" in markdown
    folders = [Path(run["run_dir"]) for row in rows for run in row["runs"]]
    for folder in folders:
        assert {"pretrain.log", "train.log", "evaluate.log"} <= {
            p.name for p in (folder / "sweep-logs").iterdir()}
    # the two runs differ only in train.lambda_c: one pretraining, which both start from
    [pretraining] = (out / "pretrain").iterdir()
    [ended] = (pretraining / "pretrain").glob("pretrain_checkpoint_*.pt")
    for folder in folders:
        assert not (folder / "pretrain").exists()
        assert f"starting from the pretrained VAE {ended}" in (
            folder / "sweep-logs" / "train.log").read_text()
    stamps = {p: p.stat().st_mtime_ns for f in folders
              for p in [f / "report.json", *(f / "sweep-logs").iterdir()]}
    capsys.readouterr()

    again = sweep.main(argv)
    assert again["ran"] == 0 and again["reused"] == 2
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing ran, nothing written
    assert [row["score"] for row in again["leaderboard"]] == [row["score"] for row in rows]
    state = json.loads((out / "sweep.json").read_text())
    assert {e["status"] for e in state["runs"].values()} == {"done"}
