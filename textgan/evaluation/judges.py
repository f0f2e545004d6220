"""Independent judges of generated text: a bag-of-n-grams style classifier and a GRU language model.

    judges = ensure_judges("checkpoints/tiny")     # loads <run>/judges/, or trains it (seconds)
    judges.classify(["the pasta was great ."])     # [array([1]), array([0])]: one per attribute
    judges.perplexity(sentences)                   # corpus-level per-token perplexity, EOS included
    judges.sentence_nll(sentences)                 # LMScores(nll (N,) nats, tokens (N,))
    judges = fit_judges(splits, tokenizer, attributes)  # on tokenised splits in memory
    save_judges(judges, run_dir)                   # ... and saved as a run's judges/

Why separate models: the generator is trained to satisfy the
project's own discriminator, so that discriminator's accuracy on generated text measures how
well G fools D, not whether the style came out. The style judge is therefore another model
family -- hashed unigrams and bigrams of token ids, mean-pooled and fed to one linear head per
attribute (fastText; Joulin et al. 2017) where D is a convolutional or recurrent reader -- trained
separately, on the labelled training sentences only. Its held-out accuracy on the test split is
the ceiling of any style accuracy it reports. The language model is a small GRU trained on the
training split only, never on generated text, so the perplexity it gives to samples measures how
far they are from the training distribution. (A generator that repeats one frequent sentence also
gets a low perplexity: read it beside the diversity metrics.)

The code, by concern: `judge_settings` (sizes and knobs), `judge_models` (the two networks and
`Judges`, which scores text with them), `judge_training` (their training loops and the LM's
check, `fit_judges` in memory), and this module: a run folder's judges (train, save, reuse,
load). Every name is importable from here.

Both judges read text through the run's own tokenizer. Generated sentences are re-encoded from
their text, exactly as a user's sentences would be, and may be of any length (no max_tokens cut).

Files, under the run folder (`judges_dir`):

    judges/classifier.pt   {"state_dict", "meta"}   (absent for a corpus without attributes)
    judges/lm.pt           {"state_dict", "meta"}
    judges/judges.json     the report: held-out accuracy per attribute and per class, valid and
                           test perplexity, the LM's real-vs-shuffled check (`order_check`),
                           chosen epochs and how each training stopped, settings, seed,
                           tokenizer sha256, sentences per split, training seconds. Written
                           last: its presence means a complete set.

The .pt files hold plain state dicts and a `meta` dict (format version, tokenizer sha256, vocab
size, special ids, settings, seed, attributes, corpus, the judge's own part of the report), so
they load with `torch.load(weights_only=True)`. Loading refuses a judge made with another
tokenizer (CheckpointError): ids would mean other words. Each .pt file is written as soon as its
judge is trained, and `train_judges` reuses one that an interrupted call left when it was made
with the same tokenizer, seed, corpus and settings: the classifier survives a stop during the LM.

Training is bounded: at most `classifier_epochs` / `lm_epochs` epochs and `*_time_limit` seconds
per judge (the best validation epoch so far is kept, and judges.json says what stopped it), the
LM on at most `lm_max_sentences` training sentences. Each epoch logs a line (seconds, validation
accuracy or perplexity), also without progress bars.

Training is deterministic given the seed (and the device and torch version) unless a time limit
cuts it: each model is built and trained after `torch.manual_seed(seed)` inside
`torch.random.fork_rng`, so the caller's global RNG is left as it was, and the batch order comes
from the loaders' own seeded samplers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from textgan.devices import DEFAULT_DEVICE, resolve_device
from textgan.errors import CheckpointError, ConfigError
from textgan.evaluation.jsonfile import write_json_atomic
from textgan.evaluation.judge_models import (
    FORMAT_VERSION,
    GRULanguageModel,
    Judges,
    LMScores,
    NgramClassifier,
)
from textgan.evaluation.judge_settings import JudgeSettings
from textgan.evaluation.judge_training import (
    classifier_loss,
    fit_judge_set,
    fit_judges,
    format_accuracy,
    order_check,
)
from textgan.runs import LoadedCorpus, RunFolder, RunPaths, load_tokenised_corpus
from textgan.tokenizer import Tokenizer

log = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.pt"
LM_FILE = "lm.pt"
REPORT_FILE = "judges.json"
_FILES = {"classifier": CLASSIFIER_FILE, "lm": LM_FILE}
_NAMES = {"classifier": "classifier", "lm": "LM"}

# The judges' whole API, importable from here as before the module was split in four
__all__ = ["CLASSIFIER_FILE", "LM_FILE", "REPORT_FILE", "GRULanguageModel", "JudgeSettings",
           "Judges", "LMScores", "NgramClassifier", "classifier_loss", "ensure_judges",
           "fit_judges", "judges_dir", "load_judges", "order_check", "save_judges",
           "train_judges"]


# --------------------------------------------------------------------------- a run's judges


def judges_dir(run_dir: str | Path) -> Path:
    return RunPaths(run_dir).judges


def train_judges(run_dir: str | Path, *, seed: int = 0, settings: JudgeSettings | None = None,
                 device: str | torch.device = DEFAULT_DEVICE, progress: bool = True,
                 reuse: bool = True, loaded: LoadedCorpus | None = None) -> Judges:
    """Train both judges on the run folder's corpus and tokenizer, save them under judges/.

    The corpus is the one the run's config.toml names, tokenised with the run's tokenizer and cut
    at its data.max_tokens, as the stages see it; the run folder needs both files.

    Each judge is saved as soon as it is trained, and judges.json last. With `reuse`, a judge
    file left by an earlier, unfinished call is loaded instead of trained again when it was made
    with the same tokenizer, seed, corpus and settings of its own (`JudgeSettings.of`): a run
    stopped while the LM trained keeps its classifier. `loaded`: the caller's corpus, used when
    it is the one the run's config names (`LoadedCorpus.serves`).
    """
    run = RunFolder(run_dir)
    settings = settings or JudgeSettings()
    cfg = run.config()
    tokenizer = run.tokenizer()
    if loaded is None or not loaded.serves(cfg.data, tokenizer):
        loaded = load_tokenised_corpus(cfg.data, tokenizer)
    corpus, splits = loaded.corpus, loaded.splits
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in corpus.attributes.items()}
    corpus_info = {"source": cfg.data.source, "max_tokens": cfg.data.max_tokens,
                   "sentences": {name: len(split) for name, split in splits.items()}}
    folder = judges_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # judges.json says "complete set": from here until it is written again, there is none
    (folder / REPORT_FILE).unlink(missing_ok=True)

    def meta(kind: str, report: dict[str, Any]) -> dict[str, Any]:
        return _judge_meta(kind, tokenizer=tokenizer, settings=settings, seed=seed,
                           attributes=attributes, report=report, corpus=corpus_info)

    def load(kind: str) -> tuple[nn.Module, dict[str, Any]] | None:
        if not reuse:
            return None
        return _reusable(folder / _FILES[kind], meta(kind, {}), tokenizer, settings, device)

    def keep(kind: str, model: nn.Module | None, report: dict[str, Any] | None) -> None:
        path = folder / _FILES[kind]
        if model is None:
            path.unlink(missing_ok=True)  # a corpus without labels: no stale classifier
            return
        _save(path, {"state_dict": _cpu_state(model), "meta": meta(kind, report or {})})
        log.info("judge %s saved to %s", _NAMES[kind], path)

    judges = fit_judge_set(splits, tokenizer, attributes, seed=seed, settings=settings,
                           device=resolve_device(device), progress=progress, load=load,
                           keep=keep)
    judges.report["corpus"] = corpus_info
    _write_report(judges, folder)
    return judges


# --------------------------------------------------------------------------- files


def save_judges(judges: Judges, run_dir: str | Path) -> Path:
    """Write classifier.pt, lm.pt and then judges.json under run_dir/judges/; returns the folder."""
    folder = judges_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).unlink(missing_ok=True)  # no complete set while the files change
    models = {"classifier": judges.classifier, "lm": judges.lm}
    for kind, model in models.items():
        path = folder / _FILES[kind]
        if model is None:
            path.unlink(missing_ok=True)
            continue
        meta = _judge_meta(kind, tokenizer=judges.tokenizer, settings=judges.settings,
                           seed=judges.seed, attributes=judges.attributes,
                           report=judges.report.get(kind) or {},
                           corpus=judges.report.get("corpus"))
        _save(path, {"state_dict": _cpu_state(model), "meta": meta})
    _write_report(judges, folder)
    return folder


def _write_report(judges: Judges, folder: Path) -> None:
    """judges.json, written last: its presence means that both judge files are complete."""
    judges.report = {**judges.report, "files": {
        "classifier": CLASSIFIER_FILE if judges.classifier is not None else None,
        "lm": LM_FILE}}
    write_json_atomic(folder / REPORT_FILE, judges.report)
    log.info("judges saved to %s", folder)


def _judge_meta(kind: str, *, tokenizer: Tokenizer, settings: JudgeSettings, seed: int,
                attributes: Mapping[str, list[str]], report: Mapping[str, Any],
                corpus: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `meta` of a judge file: what it was made from, and its own part of the report (so
    that a judge file reused without the judges.json of its time still has its scores)."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "special_ids": _special_ids(tokenizer),
        "settings": settings.to_dict(),
        "seed": seed,
        "attributes": dict(attributes),
        "corpus": dict(corpus) if corpus is not None else None,
        "report": dict(report),
    }


def _reusable(path: Path, wanted: Mapping[str, Any], tokenizer: Tokenizer,
              settings: JudgeSettings, device: str | torch.device
              ) -> tuple[nn.Module, dict[str, Any]] | None:
    """The judge saved at `path` and its report when it was made as `wanted` (a `_judge_meta`)
    would make it now; else None (and a log line saying why it is trained again)."""
    kind = wanted["kind"]
    if not path.is_file():
        return None
    try:
        state = _read(path, kind, tokenizer)
        meta = state["meta"]
        saved = JudgeSettings.from_dict(meta["settings"], str(path))
    except (CheckpointError, ConfigError, KeyError, TypeError) as error:
        log.info("judge %s: not reusing %s (%s); training it again", _NAMES[kind], path,
                 str(error).splitlines()[0])
        return None
    differences = [key for key in ("seed", "attributes", "corpus")
                   if meta.get(key) != wanted[key]]
    differences += [key for key, value in settings.of(kind).items()
                    if saved.of(kind)[key] != value]
    if not meta.get("report"):
        differences.append("report")
    if differences:
        log.info("judge %s: %s was made with another %s; training it again", _NAMES[kind],
                 path, ", ".join(differences))
        return None
    device = resolve_device(device)
    if kind == "classifier":
        model: nn.Module = NgramClassifier(
            vocab_size=tokenizer.vocab_size, num_classes=[len(c) for c in wanted["attributes"]
                                                          .values()],
            settings=settings, bos_id=tokenizer.bos_id)
    else:
        model = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                                 pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id)
    _load_weights(model, state, path)
    model.to(device).eval()
    log.info("judge %s: reusing %s, trained earlier with the same tokenizer, seed, corpus and "
             "settings", _NAMES[kind], path)
    return model, dict(meta["report"])


def load_judges(run_dir: str | Path, tokenizer: Tokenizer | None = None, *,
                device: str | torch.device = DEFAULT_DEVICE) -> Judges:
    """The judges saved under run_dir/judges/, checked against `tokenizer` (default: the run's)."""
    folder = judges_dir(run_dir)
    report_path = folder / REPORT_FILE
    if not report_path.is_file():
        raise CheckpointError(f"no judges in {folder} (no {REPORT_FILE}); train them with "
                              "textgan.evaluation.judges.train_judges or ensure_judges")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        files = report["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{report_path} is not a judges report ({error}); delete {folder} "
                              "and train the judges again") from None
    run = RunFolder(run_dir)
    if tokenizer is None:
        tokenizer = run.tokenizer()
    device = resolve_device(device)
    run_sha256 = run.tokenizer_sha256()
    lm_state = _read(folder / LM_FILE, "lm", tokenizer, run_sha256)
    meta = lm_state["meta"]
    lm_settings = JudgeSettings.from_dict(meta["settings"], str(folder / LM_FILE))
    # The set's settings are those it was asked for (judges.json); a judge reused from an
    # earlier call was made with the same settings of its own (JudgeSettings.of), not all.
    settings = (JudgeSettings.from_dict(report["settings"], str(report_path))
                if isinstance(report.get("settings"), dict) else lm_settings)
    attributes = {str(name): [str(c) for c in classes]
                  for name, classes in meta["attributes"].items()}
    lm = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=lm_settings,
                          pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id)
    _load_weights(lm, lm_state, folder / LM_FILE)
    classifier = None
    if files.get("classifier"):
        state = _read(folder / CLASSIFIER_FILE, "classifier", tokenizer, run_sha256)
        classifier_settings = JudgeSettings.from_dict(state["meta"]["settings"],
                                                      str(folder / CLASSIFIER_FILE))
        classifier = NgramClassifier(vocab_size=tokenizer.vocab_size,
                                     num_classes=[len(c) for c in attributes.values()],
                                     settings=classifier_settings, bos_id=tokenizer.bos_id)
        _load_weights(classifier, state, folder / CLASSIFIER_FILE)
        classifier.to(device).eval()
    lm.to(device).eval()
    log.info("loaded the judges from %s (classifier test accuracy %s, LM test perplexity %s)",
             folder,
             format_accuracy((report.get("classifier") or {}).get("test_accuracy", {})),
             (report.get("lm") or {}).get("test_ppl"))
    return Judges(tokenizer=tokenizer, attributes=attributes, classifier=classifier, lm=lm,
                  settings=settings, seed=int(meta["seed"]), report=report, device=device)


def ensure_judges(run_dir: str | Path, tokenizer: Tokenizer | None = None, *, seed: int = 0,
                  settings: JudgeSettings | None = None,
                  device: str | torch.device = DEFAULT_DEVICE,
                  progress: bool = True, loaded: LoadedCorpus | None = None) -> Judges:
    """The run's judges: loaded when judges/ holds them, else trained (and saved) first.

    Judges trained with another seed or other settings than asked for are refused rather than
    silently used: a report must state the judges it was measured with. Delete judges/ to
    retrain.
    """
    if not (judges_dir(run_dir) / REPORT_FILE).is_file():
        if tokenizer is not None and tokenizer != RunFolder(run_dir).tokenizer():
            raise CheckpointError(f"the tokenizer given is not the one of {run_dir}, which its "
                                  "judges are trained with: the model to judge comes from another "
                                  "run; judge it with its own run folder")
        log.info("no complete set of judges in %s: training them (a judge file finished "
                 "earlier is reused where it fits)", judges_dir(run_dir))
        return train_judges(run_dir, seed=seed, settings=settings, device=device,
                            progress=progress, loaded=loaded)
    judges = load_judges(run_dir, tokenizer, device=device)
    wanted = settings or JudgeSettings()
    if judges.seed != seed or judges.settings != wanted:
        changed = [f"seed: {judges.seed} -> {seed}"] if judges.seed != seed else []
        changed += [f"{key}: {old} -> {getattr(wanted, key)}"
                    for key, old in judges.settings.to_dict().items()
                    if getattr(wanted, key) != old]
        raise CheckpointError(
            f"the judges in {judges_dir(run_dir)} were trained with other settings than asked "
            "for:\n  " + "\n  ".join(changed) + f"\ndelete {judges_dir(run_dir)} to train them "
            "again, or ask for the saved settings")
    return judges


def _save(path: Path, state: dict[str, Any]) -> None:
    # Atomic, as the stages' checkpoints: a judge killed mid-write must not be half loadable.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read(path: Path, kind: str, tokenizer: Tokenizer,
          run_sha256: str | None = None) -> dict[str, Any]:
    """torch.load(weights_only=True) of a judge file, checked against the tokenizer.

    `run_sha256`, the run folder's own tokenizer, tells which side of a mismatch is foreign:
    judges made with it are valid, and it is the tokenizer given (a model of another run) that
    does not belong here."""
    if not path.is_file():
        raise CheckpointError(f"judge file not found: {path}; delete {path.parent} and train "
                              "the judges again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"{path} is not a readable judge file: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None
    meta = state.get("meta") if isinstance(state, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a textgan judge file (no 'meta' / 'state_dict')")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != kind:
        raise CheckpointError(f"{path} is a judge file of format {meta.get('format_version')} "
                              f"and kind {meta.get('kind')!r}; this textgan reads format "
                              f"{FORMAT_VERSION}, kind {kind!r}")
    if meta["tokenizer_sha256"] != tokenizer.sha256 and meta["tokenizer_sha256"] == run_sha256:
        raise CheckpointError(
            f"the judges in {path.parent} were trained with the run folder's tokenizer "
            f"({run_sha256[:12]}...), the model to judge with another tokenizer "
            f"({tokenizer.sha256[:12]}...): it comes from another run, whose ids mean other "
            "words here. The judges are valid; judge the model with its own run folder")
    if meta["tokenizer_sha256"] != tokenizer.sha256:
        raise CheckpointError(
            f"{path} was trained with another tokenizer (sha256 {meta['tokenizer_sha256'][:12]}"
            f"... vs {tokenizer.sha256[:12]}... here): its ids would mean other pieces. Use the "
            f"run folder's own tokenizer, or delete {path.parent} and train the judges again")
    if meta["vocab_size"] != tokenizer.vocab_size or meta["special_ids"] != _special_ids(
            tokenizer):
        raise CheckpointError(f"{path} expects vocabulary size {meta['vocab_size']} and special "
                              f"ids {meta['special_ids']}; the tokenizer has "
                              f"{tokenizer.vocab_size} and {_special_ids(tokenizer)}")
    return state


def _load_weights(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the weights do not fit the judge its own settings "
                              f"describe ({str(error).splitlines()[0]} ...)") from None


def _special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id, "bos": tokenizer.bos_id,
            "eos": tokenizer.eos_id}


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}
