"""Config resolution: preset -> file -> overrides, every kind of config error, save and reload."""

import dataclasses

import pytest

from textgan.config import (
    PRESETS,
    Config,
    DataConfig,
    apply_override,
    config_from_dict,
    config_to_dict,
    describe,
    load_config,
    read_config,
    save_config,
)
from textgan.errors import ConfigError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads_and_validates(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, Config)


def test_presets_differ_from_each_other():
    tiny, default, paper = (load_config(p) for p in ("tiny", "default", "paper"))
    assert tiny.model.hidden_dim < default.model.hidden_dim <= paper.model.hidden_dim
    assert paper.model.embedding_dim == 300 and paper.model.hidden_dim == 300


def test_precedence_preset_then_file_then_overrides(tmp_path):
    base = load_config("tiny")
    config_file = write(tmp_path / "c.toml",
                        "seed = 5\n[model]\nz_dim = 11\nhidden_dim = 40\n[data]\nlowercase = true\n")
    from_file = load_config("tiny", config_file)
    assert (from_file.seed, from_file.model.z_dim, from_file.model.hidden_dim) == (5, 11, 40)
    assert from_file.model.embedding_dim == base.model.embedding_dim  # untouched keys: preset
    assert from_file.data.lowercase is True

    both = load_config("tiny", config_file, ["--model.z_dim=3", "seed=9"])
    assert (both.seed, both.model.z_dim, both.model.hidden_dim) == (9, 3, 40)


def test_overrides_are_parsed_by_the_field_type():
    cfg = load_config("tiny", overrides=[
        "data.lowercase=yes", "data.valid_fraction=0.1", "data.batch_size=7",
        "data.source=my file.csv", "data.label_columns=sentiment, tense",
        "data.unlabelled=", "data.label_values={sentiment = ['neg', 'pos']}",
        "data.file_labels={'a.train.0' = 'neg'}", "tokenizer.vocab_size=500",
    ])
    assert cfg.data.lowercase is True
    assert cfg.data.valid_fraction == 0.1 and isinstance(cfg.data.valid_fraction, float)
    assert cfg.data.batch_size == 7
    assert cfg.data.source == "my file.csv"
    assert cfg.data.label_columns == ["sentiment", "tense"]
    assert cfg.data.unlabelled == []
    assert cfg.data.label_values == {"sentiment": ["neg", "pos"]}
    assert cfg.data.file_labels == {"a.train.0": "neg"}
    assert cfg.tokenizer.vocab_size == 500


def test_list_override_accepts_toml_array_syntax():
    cfg = load_config("tiny", overrides=['data.label_columns=["a,b", "c"]'])
    assert cfg.data.label_columns == ["a,b", "c"]


def test_integer_is_accepted_for_a_float_field(tmp_path):
    cfg = load_config("tiny", write(tmp_path / "c.toml", "[pretrain]\nlr = 1\n"))
    assert cfg.pretrain.lr == 1.0 and isinstance(cfg.pretrain.lr, float)


@pytest.mark.parametrize("override, message", [
    ("model.zdim=3", "unknown key 'model.zdim' (did you mean 'z_dim'?)"),
    ("modle.z_dim=3", "unknown key 'modle'"),
    ("nonsense=1", "unknown key 'nonsense'"),
    ("model.z_dim", "must look like --section.field=value"),
    ("model=3", "'model' is a section"),
    ("seed.x=3", "'seed' is not a section"),
    ("a.b.c=1", "key must be 'field' or 'section.field'"),
    ("model.z_dim=abc", "model.z_dim expects int, got 'abc'"),
    ("model.z_dim=2.5", "model.z_dim expects int"),
    ("data.lowercase=maybe", "data.lowercase expects true or false"),
    ("data.valid_fraction=half", "data.valid_fraction expects float"),
    ("data.label_values=[1", "cannot read"),
    ("data.label_values={a = 1}", "data.label_values.a expects a list of a string"),
    ("model.z_dim=0", "model.z_dim must be > 0, got 0"),
    ("model.hidden_dim=-4", "model.hidden_dim must be > 0, got -4"),
    ("data.valid_fraction=1.5", "data.valid_fraction must be <= 0.5"),
    ("model.dropout=-0.1", "model.dropout must be >= 0.0"),
    ("pretrain.lr=nan", "pretrain.lr must be a number, got nan"),
    ("tokenizer.model_type=wordpiece", "tokenizer.model_type must be one of unigram, bpe"),
    ("data.on_decode_error=ignore", "data.on_decode_error must be one of fail, skip"),
])
def test_every_override_error_names_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config("tiny", overrides=[override])
    assert message in str(error.value)


@pytest.mark.parametrize("overrides, message", [
    (["data.min_words=5", "data.max_words=3"], "data.max_words (3) is below data.min_words (5)"),
    (["data.valid_fraction=0.5", "data.test_fraction=0.5"], "must be below 1"),
    (["data.label_values={s = ['a', 'a']}"], "data.label_values.s repeats a class name"),
    (["data.hf_splits={training = 'train'}"], "unknown split role(s) ['training']"),
    (["transfer.style_strengths=[]"], "transfer.style_strengths is empty"),
    (["transfer.style_strengths=[1, 0]"], "transfer.style_strengths must all be > 0, got 0.0"),
    (["transfer.min_confidence=0"], "transfer.min_confidence must be > 0.0"),
])
def test_cross_field_errors(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config("tiny", overrides=overrides)
    assert message in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("[model]\nz_dim = 'big'\n", "model.z_dim expects an integer, got 'big'"),
    ("[model]\nzdim = 3\n", "unknown key 'model.zdim'"),
    ("[modle]\nz_dim = 3\n", "unknown key 'modle'"),
    ("model = 3\n", "'model' is a section, expected a table"),
    ("[data]\nlowercase = 1\n", "data.lowercase expects true or false, got 1"),
    ("[data]\nlabel_columns = 'text'\n", "data.label_columns expects a list of a string"),
    ("[model]\nz_dim = \n", "is not valid TOML"),
    ("seed = true\n", "seed expects an integer, got True"),
])
def test_config_file_errors_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as error:
        load_config("tiny", path)
    assert message in str(error.value)
    if "not valid TOML" not in message:
        assert str(path) in str(error.value)


def test_missing_config_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("tiny", tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*default"):
        load_config("huge")


def test_saved_config_reloads_exactly(tmp_path):
    cfg = load_config("paper", overrides=[
        "data.label_values={sentiment = ['negative', 'positive']}", "data.unlabelled=a.txt,b.txt",
        "pretrain.lr=0.00025", "seed=123"])
    path = save_config(cfg, tmp_path / "run" / "config.toml")
    again = read_config(path)
    assert again == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_read_config_is_strict_about_unknown_keys(tmp_path):
    path = write(tmp_path / "config.toml", "[data]\nsorce = 'x'\n")
    with pytest.raises(ConfigError, match="unknown key 'data.sorce' .*'source'"):
        read_config(path)


def test_override_does_not_leak_between_configs():
    first = load_config("tiny")
    apply_override(first, "data.label_columns=x")
    first.data.unlabelled.append("mutated.txt")
    second = load_config("tiny")
    assert second.data.label_columns == ["auto"] and second.data.unlabelled == []
    assert DataConfig().unlabelled == []


def test_every_field_has_help_text():
    cfg = Config()
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        fields = dataclasses.fields(value) if dataclasses.is_dataclass(value) else [section]
        for f in fields:
            assert f.metadata.get("help"), f"{section.name}.{f.name} has no help text"
    assert "model.z_dim" in describe(cfg)
