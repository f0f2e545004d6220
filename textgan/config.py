"""Typed configuration: one dataclass per concern, resolved from a preset, a TOML file and overrides.

    cfg = load_config(preset="tiny", config_file=None, overrides=["model.z_dim=16"])

Resolution order, later wins: dataclass defaults -> configs/<preset>.toml -> `--config FILE` ->
`--section.field=value` overrides. An unknown key, a value of the wrong type or an impossible value
raises ConfigError naming the key. The resolved config is saved with every run (`save_config`) and
reads back to an equal object (`read_config`).

Every field is declared with `setting(default, help, constraint...)`: the help text is what
`--help` prints, the constraint is checked by `validate`. Fields hold only TOML-representable
types (no None: "" or 0 mean "unset" where a field needs that), so a saved config round-trips.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from textgan.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
PRESETS = ("tiny", "default", "paper", "yelp", "hu2017")


def setting(default: Any, help: str, *, gt: float | None = None, ge: float | None = None,
            le: float | None = None, choices: tuple[str, ...] | None = None,
            runtime: bool = False) -> Any:
    """A config field: its default, the help `--help` shows, and the constraint on its value.

    `runtime=True` marks a knob that may change when a run is resumed (epochs, time limits,
    caches); every other key must match the run folder's saved config.
    """
    metadata = {"help": help, "gt": gt, "ge": ge, "le": le, "choices": choices,
                "runtime": runtime}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------- sections


PRECISIONS = ("fp32", "bf16")
INDEPENDENCE_LOSSES = ("nll", "nll_detached_var", "nll_fixed_var", "mse")


@dataclass
class DataConfig:
    """Where the sentences come from, how they are cleaned and split, and how they are batched."""

    source: str = setting(
        "synthetic",
        "corpus: 'synthetic' (generated, exact oracle), 'tiny' (corpora/tiny), a file or folder, "
        "or 'hf:NAME[:CONFIG]' for a Hugging Face hub dataset")
    synthetic_size: int = setting(
        20000, "sentences generated for source='synthetic' (train+valid+test)", gt=0)
    synthetic_seed: int = setting(0, "grammar sampling seed for source='synthetic'")
    text_column: str = setting("text", "name of the text column (csv/tsv/jsonl/parquet/hub)")
    label_columns: list[str] = setting(
        ["auto"], "attribute columns: ['auto'] = every column but the text, [] = unlabelled")
    label_values: dict[str, list[str]] = setting(
        {}, "class names per attribute in index order, e.g. {sentiment=['negative','positive']}; "
            "a label outside the list is an error. Unset attributes use the sorted values seen")
    file_labels: dict[str, str] = setting(
        {}, "one-file-per-class layout: file name -> class, e.g. {'sentiment.train.0'='negative'}; "
            "unset files take the class from their suffix")
    unlabelled: list[str] = setting(
        [], "extra unlabelled text files added to the training split (semi-supervised)")
    hf_splits: dict[str, str] = setting(
        {}, "hub dataset split names, e.g. {train='train', valid='validation', test='test'}; "
            "a missing valid/test split is carved from train")
    lowercase: bool = setting(False, "lowercase every sentence")
    dedupe: bool = setting(True, "drop repeated sentences (first occurrence kept)")
    split_sentences: bool = setting(False, "split long texts into sentences before filtering")
    min_words: int = setting(1, "drop sentences with fewer whitespace words", ge=1)
    max_words: int = setting(50, "drop sentences with more whitespace words (0 = no limit)", ge=0)
    valid_fraction: float = setting(
        0.05, "share of sentences held out for validation when the corpus has one file", ge=0.0,
        le=0.5)
    test_fraction: float = setting(
        0.05, "share of sentences held out for test when the corpus has one file", ge=0.0, le=0.5)
    valid_size: int = setting(
        0, "sentences held out for validation when the corpus has no valid file: 0 = "
           "valid_fraction of them, more = exactly this many (valid_fraction is then unused)",
        ge=0)
    test_size: int = setting(
        0, "sentences held out for test when the corpus has no test file: 0 = test_fraction of "
           "them, more = exactly this many (test_fraction is then unused)", ge=0)
    split_seed: int = setting(0, "seed of the deterministic train/valid/test split")
    label_fraction: float = setting(
        1.0, "share of the training sentences that keep their labels: a deterministic, "
             "class-balanced subset drawn with split_seed; the others train as unlabelled text "
             "(semi-supervised, Hu et al. 2017). Valid and test keep every label, and the "
             "evaluation judges train on every label", gt=0.0, le=1.0)
    labelled_sentences: int = setting(
        0, "keep the labels of exactly this many training sentences (class-balanced) instead "
           "of label_fraction of them (0 = use label_fraction)", ge=0)
    on_decode_error: str = setting(
        "fail", "undecodable bytes in a text file: 'fail' with line numbers, or 'skip' the lines",
        choices=("fail", "skip"))
    cache_dir: str = setting("", "Hugging Face datasets cache ('' = the library default)",
                             runtime=True)
    max_tokens: int = setting(
        32, "drop sentences longer than this many subword tokens (EOS included)", gt=1)
    batch_size: int = setting(64, "sentences per batch", gt=0)
    bucket_batches: int = setting(
        50, "length bucketing: sort this many batches' worth of sentences by length, cut them "
            "into batches, shuffle the batches (1 = no bucketing)", ge=1)
    valid_sample: int = setting(
        0, "validate each epoch on a fixed sample of this many validation sentences, drawn with "
           "split_seed: the same ones every epoch and on resume (0 = the whole valid split)",
        ge=0, runtime=True)

    def check(self) -> None:
        if self.max_words and self.max_words < self.min_words:
            raise ConfigError(
                f"data.max_words ({self.max_words}) is below data.min_words ({self.min_words})")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.valid_fraction + data.test_fraction must be below 1")
        for attribute, values in self.label_values.items():
            if len(set(values)) != len(values):
                raise ConfigError(f"data.label_values.{attribute} repeats a class name: {values}")
        unknown = set(self.hf_splits) - {"train", "valid", "test"}
        if unknown:
            raise ConfigError(f"data.hf_splits: unknown split role(s) {sorted(unknown)}; "
                              "use train, valid, test")


@dataclass
class TokenizerConfig:
    """The sentencepiece model trained on the training split."""

    model_type: str = setting("unigram", "sentencepiece algorithm",
                              choices=("unigram", "bpe", "char", "word"))
    vocab_size: int = setting(4000, "vocabulary size including the 4 special pieces", gt=4)
    character_coverage: float = setting(1.0, "share of characters covered by the vocabulary",
                                        gt=0.0, le=1.0)
    byte_fallback: bool = setting(
        False, "spell unknown characters as bytes instead of <unk> (needs vocab_size > 260)")
    hard_vocab_limit: bool = setting(
        False, "fail if the corpus cannot fill vocab_size (False: use what it supports)")
    input_sentence_size: int = setting(
        1_000_000, "train on at most this many sentences (a seeded sample of larger corpora)",
        gt=0)
    num_threads: int = setting(
        1, "sentencepiece trainer threads; the model depends on this, so it is part of the config",
        gt=0)


@dataclass
class ModelConfig:
    """Sizes of the networks (the encoder, the generator and later the discriminator)."""

    embedding_dim: int = setting(128, "word embedding size", gt=0)
    hidden_dim: int = setting(256, "GRU hidden size", gt=0)
    z_dim: int = setting(32, "size of the unstructured latent z", gt=0)
    encoder_layers: int = setting(1, "GRU layers in the encoder", gt=0)
    encoder_bidirectional: bool = setting(True, "bidirectional encoder GRU")
    generator_layers: int = setting(1, "GRU layers in the generator", gt=0)
    dropout: float = setting(0.1, "dropout on embeddings and between GRU layers", ge=0.0, le=0.9)
    share_embedding: bool = setting(
        True, "encoder and generator use one word embedding table (soft sentences from the "
              "generator are then read by the encoder in the space the generator writes in)")
    attention: bool = setting(
        False, "the generator attends to the source sentence's encoder states when it has one "
               "(reconstruction, style transfer), so it can keep the source's words; samples "
               "from the prior have none and are written from [z; c] alone")
    memory_dropout: float = setting(
        0.5, "attention: share of training sentences decoded without their source, so the "
             "generator also learns to write from [z; c] alone (prior samples)", ge=0.0, le=1.0)
    tie_output: bool = setting(
        False, "output layer = a projection to embedding_dim times the word embedding table "
               "(Press & Wolf 2017): fewer parameters and, at vocabularies of thousands, about "
               "half the cost of the largest matrix product per token")
    style_marker_salience: float = setting(
        0.0, "hide the words that give the style away from the encoder (read as <unk>), so z and "
             "the attention memory hold the content and the generator writes the style words "
             "from c (Li et al. 2018): a word is hidden when (count in a class + 1) / (count in "
             "the other classes + 1) reaches this over the labelled training sentences; 0 = off",
        ge=0.0)


@dataclass
class StageConfig:
    """The training loop settings both stages share; each is a key of [pretrain] and of [train]
    (`PretrainConfig`, `TrainConfig`), set apart per stage."""

    epochs: int = setting(10, "training epochs (raise it to extend a finished run)", gt=0,
                          runtime=True)
    lr: float = setting(1e-3, "learning rate (of G and E in the adversarial stage; D has "
                              "train.d_lr)", gt=0.0)
    optimizer: str = setting("adam", "adam, adamw, or orthograd (Adam on the gradient made "
                             "orthogonal to the weights); for D, G and E alike",
                             choices=("adam", "adamw", "orthograd"))
    weight_decay: float = setting(0.0, "weight decay (decoupled for adamw)", ge=0.0)
    grad_clip: float = setting(5.0, "clip the gradient norm to this (the VAE's in pretraining, "
                                    "each network's in the adversarial stage; 0 = off)", ge=0.0)
    precision: str = setting(
        "fp32", "bf16: the networks' forward passes under bf16 autocast (losses and relaxations "
                "stay fp32; for GPUs with bf16, little gain on a CPU); fp32: none",
        choices=PRECISIONS, runtime=True)
    free_bits: float = setting(
        0.0, "free bits: per-dimension KL floor in nats (Kingma et al. 2016; 0 = off)", ge=0.0)
    word_dropout: float = setting(
        0.0, "share of generator inputs replaced by <unk> (Bowman et al. 2016)", ge=0.0, le=1.0)
    patience: int = setting(
        0, "stop after this many validations without a better score (0 = never): pretraining "
           "watches the ELBO, which can peak long before reconstruction while the KL weight "
           "ramps up (default preset: epoch 5 of 16); the adversarial stage watches "
           "train.early_stop_metric", ge=0, runtime=True)
    keep_last: int = setting(2, "checkpoints kept (besides pretraining's best)", ge=1,
                             runtime=True)
    checkpoint_every: int = setting(
        500, "also checkpoint every this many iterations (0 = at epoch ends only)", ge=0,
        runtime=True)
    log_every: int = setting(20, "TensorBoard scalars every this many iterations", ge=1,
                             runtime=True)
    samples_per_style: int = setting(
        3, "sentences sampled per style value for TensorBoard each epoch", ge=0, runtime=True)
    time_limit: float = setting(
        0.0, "stop (with a checkpoint) after this many seconds; rerun to resume (0 = none)",
        ge=0.0, runtime=True)


@dataclass
class PretrainConfig(StageConfig):
    """The VAE pretraining stage: optimisation, KL weight, free bits, word dropout."""

    code_source: str = setting(
        "prior", "style code c while pretraining: 'prior' (Hu et al., Algorithm 1) or 'label' "
                 "(the true class where known, the prior elsewhere)", choices=("prior", "label"))
    kl_schedule: str = setting(
        "linear", "KL weight beta(t): constant, linear (warm-up at 0 then a ramp), sigmoid "
                  "(Bowman et al. 2016) or cyclical (Fu et al. 2019)",
        choices=("constant", "linear", "sigmoid", "cyclical"))
    kl_max: float = setting(1.0, "final (or constant) KL weight beta_max", ge=0.0)
    kl_warmup_steps: int = setting(0, "iterations at beta=0 before the ramp", ge=0)
    kl_ramp_steps: int = setting(2000, "iterations of the ramp from 0 to kl_max", ge=1)
    kl_cycle_steps: int = setting(2000, "cyclical: iterations per cycle", ge=1)
    kl_cycle_ratio: float = setting(0.5, "cyclical: share of each cycle spent ramping", gt=0.0,
                                    le=1.0)
    kl_decomposition: bool = setting(
        False, "beta-TCVAE: weigh index-code MI, total correlation and dimension-wise KL apart")
    mi_weight: float = setting(1.0, "kl_decomposition: weight of the index-code MI", ge=0.0)
    tc_weight: float = setting(1.0, "kl_decomposition: weight of the total correlation", ge=0.0)
    dim_kl_weight: float = setting(1.0, "kl_decomposition: weight of the dimension-wise KL",
                                   ge=0.0)
    word_dropout_schedule: str = setting(
        "constant", "word dropout rate over time: constant, or linear from 0 over "
                    "word_dropout_ramp_steps", choices=("constant", "linear"))
    word_dropout_ramp_steps: int = setting(1000, "linear word dropout: ramp length", ge=1)
    ema_momentum: float = setting(
        0.0, "EMA of the weights for validation and sampling: weight of the online model per "
             "step (ignite's momentum; 0.001 ~ decay 0.999; 0 = off)", ge=0.0, le=1.0)


@dataclass
class DiscriminatorConfig:
    """The attribute classifier D (one head per attribute) of the adversarial stage."""

    kind: str = setting("cnn", "cnn (Kim 2014) or gru", choices=("cnn", "gru"))
    embedding_dim: int = setting(128, "D's own word embedding size", gt=0)
    filter_widths: list[int] = setting([3, 4, 5], "cnn: convolution widths in tokens")
    filters: int = setting(100, "cnn: filters per width", gt=0)
    hidden_dim: int = setting(128, "gru: hidden size", gt=0)
    dropout: float = setting(0.5, "dropout before the heads", ge=0.0, le=0.9)

    def check(self) -> None:
        if not self.filter_widths or min(self.filter_widths) < 1:
            raise ConfigError("discriminator.filter_widths must be positive widths, got "
                              f"{self.filter_widths}")


@dataclass
class TrainConfig(StageConfig):
    """The adversarial stage: discriminator warm-up, then wake-sleep rounds (Hu et al. 2017)."""

    d_warmup_steps: int = setting(
        200, "iterations training only D on labelled sentences before the wake-sleep rounds",
        ge=0)
    lambda_c: float = setting(0.1, "weight of G's attribute loss -log q_D(c|G(z,c))", ge=0.0)
    lambda_z: float = setting(0.1, "weight of G's independence loss -log q_E(z|G(z,c))", ge=0.0)
    lambda_u: float = setting(0.1, "weight of D's loss on generated sentences", ge=0.0)
    lambda_t: float = setting(
        0.0, "weight of G's transfer loss -log q_D(c'|G(z_x, c', x)): real sentences x "
             "rewritten (z_x = posterior mean, attending to x with model.attention) with every "
             "attribute changed (c'), as style transfer does at test time (texar's simplified "
             "ctrl-gen; 0 = off, Hu et al. have none)", ge=0.0)
    lambda_cycle: float = setting(
        0.0, "weight of the cycle loss -log p(x | z~, c, x~): each real sentence read back from "
             "its transfer x~ (with train.lambda_t's rewrites), so that what is not style "
             "survives a transfer (back-translation; 0 = off)", ge=0.0)
    independence_loss: str = setting(
        "nll", "form of the independence loss on E's reading (mean mu, variance s2) of the soft "
               "sentence generated from z: nll = -log N(z; mu, s2) (Hu et al.); nll_detached_var "
               "= the same with s2 a constant (G cannot lower it by making E less certain); "
               "nll_fixed_var = s2 fixed at 1 (0.5 |z - mu|^2 + const); mse = mean squared "
               "error |z - mu|^2 / z_dim", choices=INDEPENDENCE_LOSSES)
    unlabelled_code: str = setting(
        "expectation", "c in the VAE loss of an unlabelled sentence: expectation = the "
                       "reconstruction loss averaged over D's q_D(c|x), one generator pass per "
                       "class (Hu et al. 2017, eq. 5); argmax = D's most likely class; prior = "
                       "drawn from the prior, as a label-free pretraining does, so that only "
                       "the attribute loss (lambda_c) teaches G the style of unlabelled text "
                       "(an ablation)",
        choices=("expectation", "argmax", "prior"))
    generated_batch_size: int = setting(
        0, "sentences generated per batch for the losses on generated text (D's term on hard "
           "samples; G's attribute, independence and transfer losses on soft sentences; 0 = as "
           "many as the batch has): at vocabularies of thousands each costs a full-vocabulary "
           "product per step, the largest share of a round", ge=0)
    entropy_weight: float = setting(
        0.1, "beta: weight of D's minimum-entropy term on generated sentences (0 = off; it "
             "assumes exactly one true class per attribute)", ge=0.0)
    kl_weight: float = setting(1.0, "beta of the VAE loss in this stage", ge=0.0)
    d_lr: float = setting(1e-3, "learning rate of D", gt=0.0)
    compile_soft_step: bool = setting(
        False, "run each step of the soft generated sentence as one torch.compile'd function "
               "(fuses its ~20 kernels per step; for GPUs, where launches bound that loop; "
               "compiles for ~10-60 s at the start; needs inductor's C++ compiler or triton)",
        runtime=True)
    relaxation: str = setting(
        "softmax", "soft generated sentence: softmax at temperature tau (Hu et al.), gumbel "
                   "(Gumbel-softmax), st_gumbel (straight-through, hard after hard_after_steps), "
                   "reinmax (Liu et al. 2023)",
        choices=("softmax", "gumbel", "st_gumbel", "reinmax"))
    hard_after_steps: int = setting(
        0, "st_gumbel: soft (plain Gumbel-softmax) for this many wake-sleep steps, then "
           "straight-through hard samples", ge=0)
    soft_mask: str = setting(
        "detached", "how D and E weight the positions of the soft sentence: soft = P(no EOS "
                    "before t) with its gradient (G can then delay EOS to give the style loss "
                    "more positions: sentences run on), detached = the same weights as "
                    "constants, hard = up to the argmax reading's first EOS (Hu et al.'s code); "
                    "soft, detached and hard are cut at that EOS, faded = the detached weights "
                    "at every position, no cut (the reading before issue 18)",
        choices=("soft", "detached", "hard", "faded"))
    tau_schedule: str = setting("exponential", "temperature annealing toward tau_min",
                                choices=("exponential", "linear", "tanh", "constant"))
    tau_start: float = setting(1.0, "temperature at the first wake-sleep step", gt=0.0)
    tau_min: float = setting(
        0.1, "temperature floor (never 0: a near-zero tau makes the softmax an argmax and the "
             "gradients vanish)", gt=0.0)
    tau_steps: int = setting(2000, "wake-sleep steps to reach (about) tau_min", ge=1)
    class_weights: str = setting(
        "none", "weight D's supervised loss per class: none, inverse (frequency) or log",
        choices=("none", "inverse", "log"))
    early_stop_metric: str = setting(
        "d_acc_greedy", "the validation metric early stopping watches: a name in the epoch's "
                        "validation log line (d_acc_greedy, nll, oracle_grammatical, ...)",
        runtime=True)
    early_stop_mode: str = setting("max", "'max' if a higher early_stop_metric is better, else "
                                          "'min'", choices=("max", "min"), runtime=True)
    transfer_examples: int = setting(
        4, "validation sentences whose style transfers are shown in TensorBoard", ge=0,
        runtime=True)
    def check(self) -> None:
        if self.tau_min > self.tau_start:
            raise ConfigError(f"train.tau_min ({self.tau_min}) is above train.tau_start "
                              f"({self.tau_start})")


@dataclass
class TransferConfig:
    """How style transfer decodes (`textgan.sampling.transfer`, `textgan.sample --transfer`,
    `textgan.evaluate`); read at inference only, so it never stops a run from resuming."""

    style_strengths: list[float] = setting(
        [1.0], "style code strengths tried in turn, each a greedy rewrite: strength s writes c "
               "as s * onehot(target) - (s - 1) * (the other classes, equally), so 1 is the "
               "plain code and more pushes harder away from the source's style. After each, "
               "the model's own discriminator reads the rewrite; a sentence keeps the first "
               "that D reads as the requested style (transfer.min_confidence), else the last. "
               "[1.0]: one plain rewrite", runtime=True)
    min_confidence: float = setting(
        0.5, "D's probability of the requested class at which a rewrite is kept (with more "
             "than one style strength)", gt=0.0, le=1.0, runtime=True)

    def check(self) -> None:
        if not self.style_strengths:
            raise ConfigError("transfer.style_strengths is empty; give at least one strength, "
                              "e.g. [1.0]")
        bad = [s for s in self.style_strengths if not s > 0]
        if bad:
            raise ConfigError(f"transfer.style_strengths must all be > 0, got {bad[0]}")


@dataclass
class Config:
    """The whole configuration of a run; saved as config.toml in the run folder."""

    seed: int = setting(0, "seed for weights, data order, dropout and sampling")
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)


# --------------------------------------------------------------------------- resolution


def load_config(preset: str = "default", config_file: str | Path | None = None,
                overrides: typing.Sequence[str] = ()) -> Config:
    """Resolve preset -> TOML file -> `section.field=value` overrides into a validated Config."""
    cfg = Config()
    if preset:
        apply_dict(cfg, read_preset(preset), origin=f"preset '{preset}'")
    if config_file:
        apply_dict(cfg, _read_toml(Path(config_file)), origin=str(config_file))
    for item in overrides:
        apply_override(cfg, item)
    validate(cfg)
    return cfg


def preset_path(name: str) -> Path:
    path = CONFIGS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIGS_DIR.glob("*.toml"))
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(known) or 'none'}; "
                          f"looked in {CONFIGS_DIR})")
    return path


def read_preset(name: str) -> dict[str, Any]:
    """The settings a preset's file holds (TOML shape), before any default or override."""
    return _read_toml(preset_path(name))


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def apply_dict(cfg: Config, values: dict[str, Any], origin: str) -> None:
    """Set every key of a nested dict (TOML shape) on cfg; unknown keys are errors."""
    for key, value in values.items():
        target, name = _resolve(cfg, key, origin)
        if dataclasses.is_dataclass(getattr(target, name)):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{key}' is a section, expected a table")
            apply_dict_section(getattr(target, name), value, prefix=key, origin=origin)
        else:
            setattr(target, name, _coerce(value, _field_type(target, name), key, origin))


def apply_dict_section(section: Any, values: dict[str, Any], prefix: str, origin: str) -> None:
    for key, value in values.items():
        full = f"{prefix}.{key}"
        if key not in _field_names(section):
            raise ConfigError(f"{origin}: unknown key '{full}'{_suggest(section, key)}")
        setattr(section, key, _coerce(value, _field_type(section, key), full, origin))


def apply_override(cfg: Config, item: str) -> None:
    """Apply one `section.field=value` override (a leading `--` is accepted)."""
    text = item[2:] if item.startswith("--") else item
    if "=" not in text:
        raise ConfigError(f"override '{item}' must look like --section.field=value")
    key, raw = text.split("=", 1)
    parts = key.split(".")
    if len(parts) > 2 or not all(parts):
        raise ConfigError(f"override '{item}': key must be 'field' or 'section.field'")
    target, name = _resolve(cfg, parts[0], "override")
    if len(parts) == 2:
        section = getattr(target, name)
        if not dataclasses.is_dataclass(section):
            raise ConfigError(f"override '{item}': '{parts[0]}' is not a section")
        if parts[1] not in _field_names(section):
            raise ConfigError(f"unknown key '{key}'{_suggest(section, parts[1])}")
        target, name = section, parts[1]
    elif dataclasses.is_dataclass(getattr(target, name)):
        raise ConfigError(f"override '{item}': '{key}' is a section; name one of its fields")
    annotation = _field_type(target, name)
    setattr(target, name, _coerce(_parse_text(raw, annotation, key), annotation, key, "override"))


def _resolve(cfg: Config, key: str, origin: str) -> tuple[Any, str]:
    if key not in _field_names(cfg):
        raise ConfigError(f"{origin}: unknown key '{key}'{_suggest(cfg, key)}")
    return cfg, key


def _field_names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def _field_type(obj: Any, name: str) -> Any:
    return typing.get_type_hints(type(obj))[name]


def _suggest(obj: Any, key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, _field_names(obj), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _parse_text(raw: str, annotation: Any, key: str) -> Any:
    """Turn an override's text into a Python value of roughly the right shape."""
    origin = typing.get_origin(annotation)
    if annotation is str:
        return raw
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true or false, got '{raw}'")
    if annotation in (int, float):
        try:
            return annotation(raw)
        except ValueError:
            raise ConfigError(f"{key} expects {annotation.__name__}, got '{raw}'") from None
    stripped = raw.strip()
    if origin is list and not stripped.startswith("["):
        element = typing.get_args(annotation)[0]
        items = [s.strip() for s in stripped.split(",")] if stripped else []
        return [_parse_text(s, element, key) for s in items]
    try:  # arrays and inline tables use TOML syntax: [1, 2] or {a = "b"}
        return tomllib.loads(f"value = {stripped}")["value"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"{key}: cannot read '{raw}' as {_type_name(annotation)} "
                          "(use TOML syntax, e.g. [\"a\", \"b\"] or {a = \"b\"})") from None


def _coerce(value: Any, annotation: Any, key: str, origin: str) -> Any:
    """Check value against the field's type; ints are accepted for floats."""
    def fail() -> typing.NoReturn:
        raise ConfigError(f"{origin}: {key} expects {_type_name(annotation)}, "
                          f"got {value!r} ({type(value).__name__})")

    kind = typing.get_origin(annotation)
    if annotation is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail()
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            fail()
        return value
    if kind is list:
        if not isinstance(value, list):
            fail()
        (element,) = typing.get_args(annotation)
        return [_coerce(v, element, f"{key}[{i}]", origin) for i, v in enumerate(value)]
    if kind is dict:
        if not isinstance(value, dict):
            fail()
        _, element = typing.get_args(annotation)
        return {str(k): _coerce(v, element, f"{key}.{k}", origin) for k, v in value.items()}
    raise TypeError(f"config field {key} has an unsupported type {annotation}")  # a textgan bug


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is list:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if typing.get_origin(annotation) is dict:
        return f"a table of {_type_name(typing.get_args(annotation)[1])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, str(annotation))


# --------------------------------------------------------------------------- validation


def validate(cfg: Config) -> None:
    """Check each field's constraint, then each section's cross-field rules."""
    for section in [cfg] + [getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                            if dataclasses.is_dataclass(getattr(cfg, f.name))]:
        prefix = "" if section is cfg else _section_name(cfg, section) + "."
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                continue
            _check_value(f"{prefix}{f.name}", value, f.metadata)
        if section is not cfg and hasattr(section, "check"):
            section.check()


def _section_name(cfg: Config, section: Any) -> str:
    return next(f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is section)


def _check_value(key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(meta['choices'])}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:  # NaN passes every comparison below
            raise ConfigError(f"{key} must be a number, got nan")
        if meta.get("gt") is not None and not value > meta["gt"]:
            raise ConfigError(f"{key} must be > {meta['gt']}, got {value}")
        if meta.get("ge") is not None and not value >= meta["ge"]:
            raise ConfigError(f"{key} must be >= {meta['ge']}, got {value}")
        if meta.get("le") is not None and not value <= meta["le"]:
            raise ConfigError(f"{key} must be <= {meta['le']}, got {value}")


# --------------------------------------------------------------------------- persistence


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any], origin: str = "saved config") -> Config:
    """Rebuild a Config from `config_to_dict` output (e.g. from a checkpoint); strict on keys."""
    cfg = Config()
    apply_dict(cfg, values, origin=origin)
    validate(cfg)
    return cfg


def save_config(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Resolved textgan config: preset + config file + overrides. Reload with --config.\n"
    path.write_text(header + tomli_w.dumps(config_to_dict(cfg)), encoding="utf-8")
    return path


def read_config(path: str | Path) -> Config:
    """Read a saved config.toml: the file alone, no preset underneath."""
    path = Path(path)
    return config_from_dict(_read_toml(path), origin=str(path))


def runtime_keys(cfg: Config | None = None) -> set[str]:
    """Dotted keys that may differ between a run folder's config and a resumed run."""
    cfg = cfg or Config()
    keys = set()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys |= {f"{f.name}.{g.name}" for g in dataclasses.fields(value)
                     if g.metadata.get("runtime")}
        elif f.metadata.get("runtime"):
            keys.add(f.name)
    return keys


# The sections each stage is built from: a stage's checkpoint must agree with the current config
# on these (runtime keys aside). Pretraining does not depend on the adversarial stage's sections,
# which `python -m textgan.train` may still set after pretraining.
STAGE_SECTIONS = {
    "pretrain": ("seed", "data", "tokenizer", "model", "pretrain"),
    "train": ("seed", "data", "tokenizer", "model", "pretrain", "discriminator", "train"),
}


# Which training sentences keep their labels (corpora/label_subset.py, applied in prepare.py).
LABEL_SUBSET_KEYS = ("data.label_fraction", "data.labelled_sentences")


def keys_pretraining_ignores(cfg: Config) -> set[str]:
    """Keys of the pretrain sections that `cfg`'s pretraining does not read, runtime keys
    aside: the label subset, when pretraining reads no training label at all (c drawn from
    the prior, no style markers chosen from labelled sentences). Such a pretraining serves
    every label fraction: `train --from` and sweeps share it, and a stage resumes on it."""
    if cfg.pretrain.code_source == "prior" and cfg.model.style_marker_salience == 0:
        return set(LABEL_SUBSET_KEYS)
    return set()


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       ignore: typing.Collection[str] = (),
                       sections: typing.Collection[str] | None = None) -> list[str]:
    """Readable 'key: saved -> current' lines for every differing dotted key.

    `sections` limits the comparison to those sections (top-level names such as "seed" count
    as their own section); None compares everything.
    """
    def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict) and not prefix:  # sections only; dict fields stay whole
                out.update(flat(value, f"{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    old, new = flat(saved), flat(current)
    return [f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}"
            for key in sorted(set(old) | set(new))
            if key not in ignore and old.get(key) != new.get(key)
            and (sections is None or key.split(".")[0] in sections)]


def describe(cfg: Config, baseline: Config | None = None) -> str:
    """One line per key with its value and help: the config part of every `--help`.

    With a `baseline` (the built-in defaults), a value that differs from it says so.
    """
    def line(key: str, value: Any, base: Any, meta: typing.Mapping[str, Any]) -> str:
        note = f"  (built-in: {base!r})" if baseline is not None and value != base else ""
        return f"  {key} = {value!r}{note}\n      {meta.get('help', '')}"

    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        base = getattr(baseline, f.name) if baseline is not None else None
        if dataclasses.is_dataclass(value):
            lines.append(f"[{f.name}]")
            for g in dataclasses.fields(value):
                lines.append(line(f"{f.name}.{g.name}", getattr(value, g.name),
                                  getattr(base, g.name, None), g.metadata))
        else:
            lines.append(line(f.name, value, base, f.metadata))
    return "\n".join(lines)
