"""Read and check a sweep's grid file (format in textgan/sweep.py's docstring).

Everything a user can get wrong in the file is a ConfigError naming the file and the key, raised
before any run starts: unknown sections or keys, wrong types, empty grids, a key both fixed and
varied, `seed` outside [sweep] seeds, evaluate flags the sweep sets itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from textgan.config import PRESETS, Config
from textgan.errors import ConfigError
from textgan.sweeping.scores import ScoreSpec

SECTIONS = {"sweep", "score", "fixed", "grid"}
SWEEP_KEYS = {"preset", "seeds", "mode", "budget", "sample_seed", "evaluate_args", "show",
              "share_pretraining"}
SCORE_KEYS = {"metrics", "combine", "scale", "lower_is_better"}
MODES = ("grid", "random")
# The sweep passes these to `python -m textgan.evaluate` itself (one folder per run, one device).
EVALUATE_FLAGS_SET_BY_SWEEP = ("--run-dir", "--device", "--no-progress")
DEFAULT_SHOW = ["generation.oracle.grammatical", "generation.judge_lm_ppl",
                "diversity.self_bleu_4", "vae.iw_nll_per_token"]


@dataclass
class SweepSpec:
    """A grid file, read and checked. `grid` keeps the file's key order (the plan's order)."""

    path: Path
    preset: str = "default"
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)  # "preset" may be one of its keys
    seeds: list[int] = field(default_factory=lambda: [0])
    mode: str = "grid"
    budget: int | None = None
    sample_seed: int = 0
    evaluate_args: list[str] = field(default_factory=list)
    score: ScoreSpec = field(default_factory=lambda: ScoreSpec(metrics=[]))
    show: list[str] = field(default_factory=list)   # extra leaderboard columns (patterns)
    show_given: bool = False                        # user-given patterns must match; defaults not
    # runs that differ only in [train] / [discriminator] keys start from one pretraining
    share_pretraining: bool = True


def read_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    _no_unknown(data, SECTIONS, str(path), "section")
    sweep = _table(data, "sweep", path)
    _no_unknown(sweep, SWEEP_KEYS, f"{path} [sweep]", "key")
    spec = SweepSpec(path=path)
    spec.preset = _typed(sweep, "preset", str, "default", path)
    spec.fixed = _config_keys(_table(data, "fixed", path), f"{path} [fixed]")
    spec.grid = _grid(_table(data, "grid", path), path)
    spec.seeds = _seeds(sweep.get("seeds", 1), f"{path} [sweep] seeds")
    spec.mode, spec.budget = _mode(sweep, path)
    spec.sample_seed = _typed(sweep, "sample_seed", int, 0, path)
    spec.share_pretraining = _typed(sweep, "share_pretraining", bool, True, path)
    spec.evaluate_args = _string_list(sweep, "evaluate_args", path)
    spec.show_given = "show" in sweep
    spec.show = _string_list(sweep, "show", path) if spec.show_given else list(DEFAULT_SHOW)
    spec.score = _score(_table(data, "score", path), path)
    _check_keys(spec, path)
    check_evaluate_args(spec.evaluate_args, f"{path} [sweep] evaluate_args")
    return spec


def seeds_from_count(count: Any, origin: str) -> list[int]:
    """`--seeds K` / `seeds = K`: seeds 0 .. K-1."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ConfigError(f"{origin} must be a whole number of seeds, got {count!r}")
    if count < 1:
        raise ConfigError(f"{origin} must be at least 1, got {count}")
    return list(range(count))


def check_evaluate_args(args: list[str], origin: str) -> None:
    """Parse them with textgan.evaluate's own parser now, not after the first run trained."""
    from textgan.evaluate import build_parser  # cheap: torch is imported inside its main()

    for item in args:
        if item.split("=", 1)[0] in EVALUATE_FLAGS_SET_BY_SWEEP:
            raise ConfigError(f"{origin}: {item.split('=', 1)[0]} is set by the sweep itself "
                              "(one run folder per run; --device on the sweep's command line)")
    parser = build_parser()
    try:
        parsed, unknown = parser.parse_known_args(["--run-dir", "x", *args])
    except SystemExit:  # argparse has already printed why on stderr
        raise ConfigError(f"{origin}: textgan.evaluate rejects {args} (see above)") from None
    if unknown:
        raise ConfigError(f"{origin}: textgan.evaluate does not know {' '.join(unknown)}")
    if parsed.command != "report":
        raise ConfigError(f"{origin}: the sweep runs evaluate's report command, not "
                          f"{parsed.command!r}")


# --------------------------------------------------------------------------- pieces


def _no_unknown(table: dict[str, Any], known: set[str], origin: str, what: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{origin}: unknown {what} '{key}' (known: "
                              f"{', '.join(sorted(known))})")


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{name}' must be a table ([{name}])")
    return value


def _typed(table: dict[str, Any], key: str, kind: type, default: Any, path: Path) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{path}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _string_list(table: dict[str, Any], key: str, path: Path) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings, got {value!r}")
    return list(value)


def _config_keys(table: dict[str, Any], origin: str) -> dict[str, Any]:
    """Dotted keys, whether written quoted ("train.lambda_c" = ..) or as TOML tables.

    Only a config *section* is flattened: a dict-valued field such as data.label_values
    stays whole.
    """
    base = Config()
    sections = {f.name for f in dataclasses.fields(base)
                if dataclasses.is_dataclass(getattr(base, f.name))}
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key in sections and isinstance(value, dict):
            for inner, item in value.items():
                flat[f"{key}.{inner}"] = item
        else:
            flat[key] = value
    for key in flat:
        if key == "seed":
            raise ConfigError(f"{origin}: set seeds with [sweep] seeds (or --seeds K), "
                              "not as a config key: each seed is a repetition, not a setting")
    return flat


def _grid(table: dict[str, Any], path: Path) -> dict[str, list[Any]]:
    grid = _config_keys(table, f"{path} [grid]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path} [grid]: '{key}' must be a non-empty list of values "
                              f"(got {values!r}); put single values in [fixed]")
    if "preset" in grid:
        bad = [p for p in grid["preset"] if p not in PRESETS]
        if bad:
            raise ConfigError(f"{path} [grid]: unknown preset(s) {bad} (known: "
                              f"{', '.join(PRESETS)})")
    return grid


def _seeds(value: Any, origin: str) -> list[int]:
    if isinstance(value, list):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{origin} must be a count or a non-empty list of integers, "
                              f"got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{origin} lists a seed twice: {value}")
        return list(value)
    return seeds_from_count(value, origin)


def _mode(sweep: dict[str, Any], path: Path) -> tuple[str, int | None]:
    budget = sweep.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        raise ConfigError(f"{path} [sweep] budget must be a whole number >= 1, got {budget!r}")
    mode = sweep.get("mode", "random" if budget is not None else "grid")
    if mode not in MODES:
        raise ConfigError(f"{path} [sweep] mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "random" and budget is None:
        raise ConfigError(f"{path} [sweep] mode = \"random\" needs budget = N (configurations)")
    if mode == "grid" and budget is not None:
        raise ConfigError(f"{path} [sweep] budget is for mode = \"random\"; the grid runs "
                          "every configuration")
    return mode, budget


def _score(table: dict[str, Any], path: Path) -> ScoreSpec:
    _no_unknown(table, SCORE_KEYS, f"{path} [score]", "key")
    if "metrics" not in table:
        raise ConfigError(f"{path} [score] needs metrics = [...], the report metrics to rank "
                          "by (e.g. [\"transfer.*.judge_acc\", \"transfer.*.bleu_source\"])")
    scale = table.get("scale", {})
    if not isinstance(scale, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale.values()):
        raise ConfigError(f"{path} [score] scale must be a table of metric = number")
    spec = ScoreSpec(metrics=_string_list(table, "metrics", path),
                     combine=_typed(table, "combine", str, "geomean", path),
                     scale={str(k): float(v) for k, v in scale.items()},
                     lower_is_better=_string_list(table, "lower_is_better", path))
    try:
        spec.check()
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return spec


def _check_keys(spec: SweepSpec, path: Path) -> None:
    both = sorted(set(spec.fixed) & set(spec.grid))
    if both:
        raise ConfigError(f"{path}: {', '.join(both)} both in [fixed] and in [grid]")
    if "preset" in spec.fixed:
        raise ConfigError(f"{path} [fixed]: the base preset goes in [sweep] preset")
    if spec.preset not in PRESETS:
        raise ConfigError(f"{path} [sweep] preset: unknown preset '{spec.preset}' (known: "
                          f"{', '.join(PRESETS)})")


def apply_cli(spec: SweepSpec, args: argparse.Namespace) -> None:
    """Command-line values win over the file's: --seeds, --budget, --sample-seed."""
    if args.seeds is not None:
        spec.seeds = seeds_from_count(args.seeds, "--seeds")
    if args.sample_seed is not None:
        spec.sample_seed = args.sample_seed
    if args.budget is not None:
        if args.budget < 1:
            raise ConfigError(f"--budget must be at least 1, got {args.budget}")
        spec.mode, spec.budget = "random", args.budget
