"""The command line before any work: --help shows the chosen preset's values, and a mistyped
key is refused (exit status 2) before torch, datasets and ignite are imported."""

import subprocess
import sys
from pathlib import Path

import pytest

from textgan.cli import check_config_args_early, config_parser, parse_config_args
from textgan.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "datasets", "ignite")


def help_text(argv, capsys, prog="python -m textgan.pretrain"):
    with pytest.raises(SystemExit) as stopped:
        parse_config_args(config_parser(prog, "doc"), argv)
    assert stopped.value.code == 0
    return capsys.readouterr().out


def test_help_shows_the_chosen_presets_values(capsys):
    yelp, builtin = load_config("yelp"), Config()
    assert (yelp.data.batch_size, yelp.model.attention) != (builtin.data.batch_size,
                                                            builtin.model.attention)
    text = help_text(["--preset", "yelp", "--help"], capsys)
    assert "preset 'yelp'" in text
    assert (f"data.batch_size = {yelp.data.batch_size!r}  "
            f"(built-in: {builtin.data.batch_size!r})") in text
    assert f"model.attention = {yelp.model.attention!r}  (built-in: False)" in text
    assert f"data.source = {yelp.data.source!r}" in text


def test_help_without_a_preset_shows_the_default_presets_values(capsys):
    default, builtin = load_config("default"), Config()
    assert default.pretrain.kl_max != builtin.pretrain.kl_max
    text = help_text(["-h"], capsys)
    assert "preset 'default'" in text
    assert (f"pretrain.kl_max = {default.pretrain.kl_max!r}  "
            f"(built-in: {builtin.pretrain.kl_max!r})") in text


def test_help_applies_a_config_file_and_overrides(tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text("[model]\nz_dim = 12\n", encoding="utf-8")
    text = help_text(["--help", "--preset", "tiny", "--config", str(mine),
                      "--model.hidden_dim=40"], capsys)
    assert f"preset 'tiny' + {mine} + the overrides given" in text
    assert "model.z_dim = 12  (built-in: 32)" in text
    assert "model.hidden_dim = 40  (built-in: 256)" in text


@pytest.mark.parametrize("module", ["pretrain", "train"])
def test_entry_points_help_lists_their_own_flags_and_the_presets_values(module, capsys):
    import importlib

    entry = importlib.import_module(f"textgan.{module}")
    with pytest.raises(SystemExit) as stopped:
        entry.main(["--preset", "yelp", "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "--run-dir" in text and "--preset" in text
    assert f"data.batch_size = {load_config('yelp').data.batch_size!r}" in text


def test_parsed_args_carry_no_help_attribute():
    args, overrides = parse_config_args(config_parser("p", None),
                                        ["--preset", "tiny", "--model.z_dim=8"])
    assert not hasattr(args, "help") and args.preset == "tiny"
    assert overrides == ["--model.z_dim=8"]


@pytest.mark.parametrize("argv", [
    ["--run-dir=runs/a.b", "--device=cpu", "--model.z_dim=8"],
    ["--preset", "tiny", "--run-dir", "x", "--from", "ckpt.pt", "--seed=3"],
    ["--data.max_words=0"],  # a range that depends on the run folder's config: checked later
    ["--help", "--bogus.key=1"],  # help is the full parser's
    ["--preset", "nonsense"],  # argparse's own "invalid choice" message, later
    ["--preset"],  # argparse's own "expected one argument", later
    [],
])
def test_early_check_passes_what_the_full_parse_decides(argv, capsys):
    check_config_args_early(argv)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, message", [
    (["--bogus.key=1"], "unknown key 'bogus'"),
    (["--model.z_dimm=8"], "did you mean 'z_dim'"),
    (["--model.z_dim=abc"], "model.z_dim expects int"),
    (["--preset", "tiny", "--model.z_dim=0"], "model.z_dim must be > 0"),
])
def test_early_check_refuses_config_mistakes_with_exit_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        check_config_args_early(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


# One interpreter per case: a command-line mistake must not need torch. runpy runs the module
# as `python -m` does, then the modules loaded so far are printed.
PROBE = """
import runpy, sys
sys.argv = [{module!r}] + {argv!r}
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
except SystemExit as stopped:
    print("exit", stopped.code)
print("heavy", sorted(name for name in {heavy!r} if name in sys.modules))
"""


@pytest.mark.parametrize("module, argv, message", [
    ("textgan.pretrain", ["--bogus.key=1"], "unknown key 'bogus'"),
    ("textgan.train", ["--preset", "tiny", "--model.z_dim=abc"], "model.z_dim expects int"),
    ("textgan.sample", ["--bogus"], "unrecognized arguments: --bogus"),
    ("textgan.evaluate", ["--run-dir", "x", "--n", "0"], "must be at least 1"),
])
def test_a_mistake_is_refused_before_torch_is_imported(module, argv, message):
    code = PROBE.format(module=module, argv=argv, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "exit 2" in done.stdout, done.stdout + done.stderr
    assert "heavy []" in done.stdout, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
