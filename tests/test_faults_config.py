"""Fuzzing the config parser (issue 21): whatever a config file or an override holds, loading it
gives a valid Config or a clear ConfigError, never another exception (a traceback to the user).

Three generators: random bytes as a config file; random TOML built from the real section and
key names with values of every TOML type (the likely mistakes: a string for a number, a table
for a value, a negative size); and random `--section.key=value` overrides.
"""

from __future__ import annotations

import dataclasses
import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgan.config import Config, load_config
from textgan.errors import ConfigError

# derandomized: CI runs the same examples every time (a failure is reproducible); tmp_path is a
# function-scoped fixture that every example of one test may share
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

_DEFAULTS = Config()
SECTIONS = {field.name: [f.name for f in dataclasses.fields(getattr(_DEFAULTS, field.name))]
            for field in dataclasses.fields(Config)
            if dataclasses.is_dataclass(getattr(_DEFAULTS, field.name))}
TOP_KEYS = [field.name for field in dataclasses.fields(Config)
            if not dataclasses.is_dataclass(getattr(_DEFAULTS, field.name))]

scalars = st.one_of(
    st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=2))
names = st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(min_size=1, max_size=8))


def toml_value(value) -> str:
    """A Python value as TOML text (the subset the strategies above produce)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"


@st.composite
def config_files(draw) -> str:
    lines = [f"{key} = {toml_value(draw(values))}"
             for key in draw(st.lists(st.sampled_from(TOP_KEYS), max_size=1, unique=True))]
    for section in draw(st.lists(names, max_size=3, unique=True)):
        lines.append(f'["{section}"]')
        keys = st.sampled_from(SECTIONS.get(section, ["x"]))
        for key in draw(st.lists(st.one_of(keys, st.text(min_size=1, max_size=8)),
                                 max_size=3, unique=True)):
            lines.append(f'"{key}" = {toml_value(draw(values))}')
    return "\n".join(lines) + "\n"


def _load(tmp_path, content: bytes | str, overrides=()) -> None:
    path = tmp_path / "fuzz.toml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    try:
        load_config("tiny", config_file=path, overrides=overrides)
    except ConfigError as error:
        message = str(error).strip()
        assert message and "\n" not in message, message


@FUZZ
@given(content=st.binary(max_size=200))
def test_random_bytes_as_a_config_file_load_or_give_a_config_error(tmp_path, content):
    _load(tmp_path, content)


@FUZZ
@given(content=config_files())
def test_random_toml_with_real_keys_loads_or_gives_a_config_error(tmp_path, content):
    _load(tmp_path, content)


@FUZZ
@given(data=st.data(), section=names, raw=st.text(max_size=12))
def test_random_overrides_apply_or_give_a_config_error(tmp_path, data, section, raw):
    keys = st.sampled_from(SECTIONS[section]) if section in SECTIONS else st.text(max_size=8)
    key = data.draw(st.one_of(keys, st.text(max_size=8)))
    _load(tmp_path, "", overrides=[f"--{section}.{key}={raw}"])
