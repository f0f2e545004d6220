"""Turn a SweepSpec into runs: configurations (the grid, or a random sample of it) x seeds.

A run is identified by what its stages are given -- the preset and what its file says,
overrides, seed -- and its folder name encodes that: a readable part (the grid's values and the
seed) plus a short hash of all of it, so the same settings always map to the same folder (that
is how an interrupted sweep finds its runs again) and changed settings map to a new one (never
to a folder trained otherwise), an edited preset file included. A shared pretraining's name
hashes only the preset's pretrain sections: editing the preset's [train] trains the adversarial
stages again from the same pretraining. (textgan's own defaults are code: after upgrading it,
sweep into a new --out.)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from textgan.config import (
    STAGE_SECTIONS,
    Config,
    keys_pretraining_ignores,
    load_config,
    read_preset,
)
from textgan.errors import ConfigError
from textgan.sweeping.spec import SweepSpec

MAX_CONFIGURATIONS = 100_000  # the plan is materialised; beyond this, sample with a budget
NAME_LIMIT = 80               # readable part of a folder name, before the hash
# the config sections only the adversarial stage reads ([discriminator], [train])
ADVERSARIAL_SECTIONS = tuple(section for section in STAGE_SECTIONS["train"]
                             if section not in STAGE_SECTIONS["pretrain"])


@dataclass
class RunPlan:
    """One run: a configuration at one seed, in its own folder <out>/runs/<name>."""

    name: str
    config_id: str              # shared by the seeds of one configuration
    label: str                  # the configuration's grid values, readable
    preset: str
    settings: dict[str, Any]    # grid key -> value for this configuration
    overrides: list[str]        # `--key=value` for the stages: [fixed], then [grid]
    seed: int
    # digests of the preset file's settings: all of them, and its pretrain sections alone
    preset_digest: str = ""
    preset_pretrain_digest: str = ""
    # pretrain keys its pretraining does not read (config.keys_pretraining_ignores), noted by
    # validate_plan: overrides of them do not make another pretraining
    pretraining_ignores: tuple[str, ...] = ()

    @property
    def stage_args(self) -> list[str]:
        """What textgan.pretrain and textgan.train get besides --run-dir and runtime flags."""
        return ["--preset", self.preset, *self.overrides, f"--seed={self.seed}"]

    def identity(self) -> dict[str, Any]:
        return {"preset": self.preset, "overrides": self.overrides, "seed": self.seed,
                "preset_settings": self.preset_digest}

    @property
    def pretrain_overrides(self) -> list[str]:
        """The overrides pretraining reads: all but those of the adversarial stage's sections."""
        free = tuple(f"--{s}." for s in ADVERSARIAL_SECTIONS)
        return [item for item in self.overrides if not item.startswith(free)
                and item[2:].split("=", 1)[0] not in self.pretraining_ignores]

    @property
    def pretraining(self) -> str:
        """The name of this run's pretraining: runs whose configurations differ only in the
        adversarial stage's sections share it (`python -m textgan.train --from`)."""
        identity = {"preset": self.preset, "overrides": self.pretrain_overrides,
                    "seed": self.seed, "preset_settings": self.preset_pretrain_digest}
        return f"{_sanitise(self.preset)},seed={self.seed}-{_digest(identity)}"


def toml_value(value: Any) -> str:
    """A TOML literal: what config.py reads back for lists and tables in an override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string uses JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise ConfigError(f"cannot pass {value!r} ({type(value).__name__}) as a config value")


def override(key: str, value: Any) -> str:
    # A top-level string is taken verbatim by config.py (--data.source=reviews.csv), so no
    # quotes; lists and tables go in TOML syntax, which config.py parses.
    text = value if isinstance(value, str) else toml_value(value)
    return f"--{key}={text}"


def configurations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The grid's configurations in file order (cartesian product), or the random sample."""
    keys = list(spec.grid)
    sizes = [len(spec.grid[key]) for key in keys]
    total = 1
    for size in sizes:
        total *= size
    if total > MAX_CONFIGURATIONS and spec.mode == "grid":
        raise ConfigError(f"{spec.path}: the grid has {total} configurations (limit "
                          f"{MAX_CONFIGURATIONS}); sample it with mode = \"random\", budget = N")
    if spec.mode == "random":
        indices = sample_indices(total, spec.budget or total, spec.sample_seed)
    else:
        indices = list(range(total))
    return [_configuration(spec.grid, keys, sizes, index) for index in indices]


def sample_indices(total: int, budget: int, seed: int) -> list[int]:
    """`budget` distinct configuration indices, drawn by `seed`, in grid order.

    Drawn one at a time from a seeded generator, so a larger budget with the same seed keeps
    every configuration of the smaller one: raising the budget extends a finished sweep.
    """
    rng = random.Random(seed)
    if budget >= total:
        return list(range(total))
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < budget:
        index = rng.randrange(total)
        if index not in seen:
            seen.add(index)
            chosen.append(index)
    return sorted(chosen)


def _configuration(grid: dict[str, list[Any]], keys: Sequence[str], sizes: Sequence[int],
                   index: int) -> dict[str, Any]:
    """The index-th element of the cartesian product, last key fastest (itertools.product)."""
    values: dict[str, Any] = {}
    for key, size in zip(reversed(keys), reversed(sizes)):
        index, position = divmod(index, size)
        values[key] = grid[key][position]
    return {key: values[key] for key in keys}


def plan_runs(spec: SweepSpec) -> list[RunPlan]:
    """Every run, seed-major: each configuration's first seed before any second seed, so a
    sweep stopped early has a leaderboard over all configurations."""
    labels = _short_keys(list(spec.grid))
    runs = []
    configs = configurations(spec)
    digests: dict[str, tuple[str, str]] = {}
    for seed in spec.seeds:
        for settings in configs:
            preset = settings.get("preset", spec.preset)
            if preset not in digests:
                digests[preset] = _preset_digests(preset, str(spec.path))
            overrides = [override(k, v) for k, v in spec.fixed.items()]
            overrides += [override(k, v) for k, v in settings.items() if k != "preset"]
            identity = {"preset": preset, "overrides": overrides,
                        "preset_settings": digests[preset][0]}
            config_id = _digest(identity)
            label = ",".join(f"{labels[k]}={_readable(v)}" for k, v in settings.items()) or "base"
            run_id = _digest({**identity, "seed": seed})
            name = f"{_sanitise(label)[:NAME_LIMIT]},seed={seed}-{run_id}"
            runs.append(RunPlan(name=name, config_id=config_id, label=label, preset=preset,
                                settings=dict(settings), overrides=overrides, seed=seed,
                                preset_digest=digests[preset][0],
                                preset_pretrain_digest=digests[preset][1]))
    names = [run.name for run in runs]
    assert len(set(names)) == len(names), "run names collide"  # the hash makes this a bug
    return runs


def _preset_digests(preset: str, origin: str) -> tuple[str, str]:
    """(all settings, pretrain sections only) of the preset file, as short digests: a run
    trained from an older version of the file is never taken for one of this version."""
    try:
        values = read_preset(preset)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    pretrain = {key: value for key, value in values.items() if key in STAGE_SECTIONS["pretrain"]}
    return _digest(values), _digest(pretrain)


def validate_plan(runs: Sequence[RunPlan], origin: str) -> dict[str, Config]:
    """Resolve every configuration as the stages will (config_id -> Config); a bad key or
    value anywhere fails here, before the first run trains for minutes. Notes on each run the
    pretrain keys its pretraining does not read (`RunPlan.pretraining_ignores`)."""
    resolved: dict[str, Config] = {}
    for run in runs:
        if run.config_id not in resolved:
            try:
                resolved[run.config_id] = load_config(run.preset, None,
                                                      [*run.overrides, f"--seed={run.seed}"])
            except ConfigError as error:
                where = f"configuration {run.label}" if run.settings else "[fixed]"
                raise ConfigError(f"{origin}, {where}: {error}") from None
        run.pretraining_ignores = tuple(sorted(keys_pretraining_ignores(
            resolved[run.config_id])))
    return resolved


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """train.lambda_c -> lambda_c in folder names, unless two grid keys share the last part."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: short if last.count(short) == 1 else key for key, short in zip(keys, last)}


def _readable(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_readable(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}:{_readable(v)}" for k, v in value.items())
    return toml_value(value).strip('"') if not isinstance(value, str) else value


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def _digest(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]
