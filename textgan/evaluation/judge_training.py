"""Training the judges: the classifier and the language model, each in its own bounded loop
(epochs, seconds, early stop on validation), the LM's real-against-shuffled check
(`order_check`), and `fit_judges`, both on tokenised splits in memory.

Saving them in a run folder, and reusing what an earlier call left: `evaluation.judges`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from textgan.corpora import MISSING_LABEL
from textgan.corpora.bars import show_bars
from textgan.data import dataset_lengths, fixed_sample, make_loader
from textgan.devices import DEFAULT_DEVICE, resolve_device
from textgan.evaluation.judge_models import (
    FORMAT_VERSION,
    GRULanguageModel,
    Judges,
    NgramClassifier,
    safe_exp,
)
from textgan.evaluation.judge_settings import JudgeSettings
from textgan.losses import attribute_loss, reconstruction_loss
from textgan.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def fit_judges(splits: datasets.DatasetDict, tokenizer: Tokenizer,
               attributes: Mapping[str, Sequence[str]], *, seed: int = 0,
               settings: JudgeSettings | None = None, device: str | torch.device = DEFAULT_DEVICE,
               progress: bool = True) -> Judges:
    """Train both judges on tokenised splits (`tokenize_corpus`: train, valid and test), in memory.

    The classifier trains on the training sentences with at least one label, each attribute's
    loss over the sentences labelled for it; the LM trains on every training sentence (up to
    `lm_max_sentences`, a seeded sample).
    """
    attributes = {str(name): [str(c) for c in classes] for name, classes in attributes.items()}
    return fit_judge_set(splits, tokenizer, attributes, seed=seed,
                         settings=settings or JudgeSettings(), device=resolve_device(device),
                         progress=progress, load=lambda kind: None,
                         keep=lambda kind, model, report: None)


def fit_judge_set(splits: datasets.DatasetDict, tokenizer: Tokenizer,
                  attributes: dict[str, list[str]], *, seed: int, settings: JudgeSettings,
                  device: torch.device, progress: bool,
                  load: Callable[[str], tuple[nn.Module, dict[str, Any]] | None],
                  keep: Callable[[str, nn.Module | None, dict[str, Any] | None], None]) -> Judges:
    """Both judges, the classifier first: each one `load`ed, or trained and handed to `keep`."""
    for name in ("train", "valid", "test"):
        if name not in splits:
            raise ValueError(f"fit_judges needs the splits train, valid and test; "
                             f"{name} is missing")
    started = time.perf_counter()
    reused: list[str] = []
    classifier, classifier_report = None, None
    if attributes:
        found = load("classifier")
        if found is not None:
            classifier, classifier_report = found
            reused.append("classifier")
        else:
            classifier, classifier_report = _fit_classifier(
                splits, tokenizer, attributes, seed=seed, settings=settings, device=device,
                progress=progress)
            keep("classifier", classifier, classifier_report)
    else:
        keep("classifier", None, None)
    found = load("lm")
    if found is not None:
        lm, lm_report = found
        reused.append("lm")
    else:
        lm, lm_report = _fit_lm(splits, tokenizer, seed=seed, settings=settings, device=device,
                                progress=progress)
        keep("lm", lm, lm_report)
    report = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "settings": settings.to_dict(),
        "attributes": attributes,
        "classifier": classifier_report,
        "lm": lm_report,
        "reused": reused,  # judges loaded from an earlier, unfinished call, not trained here
        "train_seconds": round(time.perf_counter() - started, 2),
        "device": str(device),
        "torch": torch.__version__,
    }
    return Judges(tokenizer=tokenizer, attributes=attributes, classifier=classifier,
                  lm=lm, settings=settings, seed=seed, report=report, device=device)


def classifier_loss(logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """Sum over attributes of the mean cross-entropy over the sentences labelled for it.

    logits: (B, C_a) per attribute; labels (B, A) class indices, MISSING_LABEL (-1) where
    unknown. A missing label is ignored, never a class: it adds nothing to the loss and its
    row gets no gradient from that attribute. An attribute with no label in the batch adds 0.
    The discriminator's L_s without class weights: `losses.attribute_loss`'s total.
    """
    return attribute_loss(logits, labels).total


def _fit_classifier(splits: datasets.DatasetDict, tokenizer: Tokenizer,
                    attributes: dict[str, list[str]], *, seed: int, settings: JudgeSettings,
                    device: torch.device, progress: bool
                    ) -> tuple[NgramClassifier | None, dict[str, Any] | None]:
    names = list(attributes)
    train = _labelled(splits["train"], names)
    if len(train) == 0:
        log.warning("no training sentence has a label: the judges have no style classifier")
        return None, None
    unlabelled = {name: int(np.sum(_labels(train, name) == MISSING_LABEL)) for name in names}
    loaders = _loaders(splits, train, tokenizer, names, settings, seed)
    log.info("judge classifier: training on %d sentences, at most %d epochs%s", len(train),
             settings.classifier_epochs, _limit_text(settings.classifier_time_limit))
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = NgramClassifier(vocab_size=tokenizer.vocab_size,
                                num_classes=[len(c) for c in attributes.values()],
                                settings=settings, bos_id=tokenizer.bos_id).to(device)
        optimizers = [torch.optim.SparseAdam(model.bag.parameters(), lr=settings.classifier_lr),
                      torch.optim.Adam(model.heads.parameters(), lr=settings.classifier_lr)]

        def step(batch: Any) -> None:
            loss = classifier_loss(model(batch.tokens, batch.lengths), batch.labels)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()

        def validate(epoch: int) -> tuple[tuple[float, float], str, dict[str, Any]]:
            valid = _classifier_scores(model, loaders["valid"], attributes, device)
            known = [acc for acc in valid["accuracy"].values() if acc is not None]
            # The mean validation accuracy over the attributes, ties (a saturated accuracy is
            # common on clean corpora) going to the lower validation loss. No labelled
            # validation sentence: no basis for choosing, keep the last epoch.
            score = (float(np.mean(known)), -valid["loss"]) if known else (0.0, epoch)
            return score, (f"valid accuracy {format_accuracy(valid['accuracy'])}, "
                           f"loss {valid['loss']:.4f}"), valid

        training, valid = _train_epochs("judge classifier", model, loaders["train"], step,
                                        validate, epochs=settings.classifier_epochs, patience=None,
                                        time_limit=settings.classifier_time_limit,
                                        device=device, progress=progress)
    model.eval()
    test = _classifier_scores(model, loaders["test"], attributes, device)
    log.info("judge classifier: epoch %d kept (%s); test accuracy %s", training["epoch"],
             _stop_text(training, settings.classifier_time_limit),
             format_accuracy(test["accuracy"]))
    return model, {
        "epoch": training["epoch"],
        "valid_accuracy": valid["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_class_accuracy": test["class_accuracy"],
        "test_labelled": test["labelled"],
        "train_sentences": len(train),
        "train_unlabelled": unlabelled,
        **{key: value for key, value in training.items() if key != "epoch"},
    }


def _fit_lm(splits: datasets.DatasetDict, tokenizer: Tokenizer, *, seed: int,
            settings: JudgeSettings, device: torch.device, progress: bool
            ) -> tuple[GRULanguageModel, dict[str, Any]]:
    train = fixed_sample(splits["train"], settings.lm_max_sentences, seed)
    loaders = _loaders(splits, train, tokenizer, [], settings, seed)
    log.info("judge LM: training on %d of %d sentences, at most %d epochs%s", len(train),
             len(splits["train"]), settings.lm_epochs, _limit_text(settings.lm_time_limit))
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed)
        model = GRULanguageModel(vocab_size=tokenizer.vocab_size, settings=settings,
                                 pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lm_lr)

        def step(batch: Any) -> None:
            loss = reconstruction_loss(model(batch.tokens), batch.tokens,
                                       batch.lengths).per_token
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.lm_clip_norm)
            optimizer.step()

        def validate(epoch: int) -> tuple[tuple[float], str, float]:
            nll = _lm_nll(model, loaders["valid"], device)
            return (-nll,), f"valid perplexity {safe_exp(nll):.3f}", nll

        training, valid_nll = _train_epochs("judge LM", model, loaders["train"], step, validate,
                                            epochs=settings.lm_epochs,
                                            patience=settings.lm_patience,
                                            time_limit=settings.lm_time_limit, device=device,
                                            progress=progress)
    model.eval()
    test_nll = _lm_nll(model, loaders["test"], device)
    scorer = Judges(tokenizer=tokenizer, attributes={}, classifier=None, lm=model,
                    settings=settings, seed=seed, report={}, device=device)
    check = order_check(scorer, splits["test"]["text"], sentences=settings.lm_check_sentences,
                        seed=seed)
    log.info("judge LM: epoch %d kept (%s); valid perplexity %.3f, test perplexity %.3f%s",
             training["epoch"], _stop_text(training, settings.lm_time_limit),
             safe_exp(valid_nll), safe_exp(test_nll), _check_text(check))
    return model, {"epoch": training["epoch"], "valid_ppl": safe_exp(valid_nll),
                   "test_ppl": safe_exp(test_nll), "train_sentences": len(train),
                   "train_available": len(splits["train"]), "check": check,
                   **{key: value for key, value in training.items() if key != "epoch"}}


def _train_epochs(name: str, model: nn.Module, loader: Any, step: Callable[[Any], None],
                  validate: Callable[[int], tuple[tuple[float, ...], str, Any]], *, epochs: int,
                  patience: int | None, time_limit: float, device: torch.device,
                  progress: bool) -> tuple[dict[str, Any], Any]:
    """Train for at most `epochs` epochs, `time_limit` seconds (0: none) and, with `patience`,
    until that many epochs bring no better validation score; load the best epoch's weights.

    `validate(epoch)` gives (score, higher is better; a line for the log; the scores to report).
    Each epoch gets a bar (hidden without `progress`) and a log line, which `--no-progress`
    keeps: a judge that trains for minutes must not look hung. Returns the training's part of
    the judge's report and the kept epoch's validation scores (no second validation pass: on
    Yelp one pass of the LM took a quarter of its time budget).
    """
    started = time.monotonic()
    deadline = started + time_limit if time_limit > 0 else math.inf
    best, best_score, best_epoch, best_scores = None, (-math.inf,), 0, None
    epoch, done, stopped_by = 0, 1.0, "epochs"
    for epoch in range(1, epochs + 1):
        model.train()
        batches = seen = len(loader)
        with tqdm(total=batches, desc=f"{name} epoch {epoch}/{epochs}", unit="batch",
                  disable=not show_bars(progress), leave=False) as bar:
            for seen, batch in enumerate(loader, start=1):
                step(batch.to(device))
                bar.update()
                if time.monotonic() > deadline:
                    break
        done = seen / batches if batches else 1.0
        # the part of an epoch trained before the time ran out is validated like an epoch:
        # on a large corpus it may be all the training there is time for
        score, summary, scores = validate(epoch)
        log.info("%s epoch %d/%d%s: %.1f s, %s", name, epoch, epochs,
                 f" ({done:.0%} of it, then the time limit)" if done < 1 else "",
                 time.monotonic() - started, summary)
        if score > best_score:  # a nan score is never better, so never kept
            best_score, best_epoch, best_scores = score, epoch, scores
            best = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - best_epoch >= patience:
            log.info("%s: no better validation score for %d epochs, stopping", name, patience)
            stopped_by = "patience"
            break
        if done < 1 or (time.monotonic() > deadline and epoch < epochs):
            stopped_by = "time_limit"
            break
    if best is None:  # the validation score was never finite: keep the last weights, say so
        log.warning("%s: the validation score was never finite; keeping the last weights", name)
        best_epoch, best_scores = epoch, scores
    else:
        model.load_state_dict(best)
    return {"epoch": best_epoch, "epochs_run": epoch, "last_epoch_done": round(done, 4),
            "stopped_by": stopped_by,
            "seconds": round(time.monotonic() - started, 2)}, best_scores


def order_check(judges: Judges, texts: Sequence[str], *, sentences: int = 1000,
                seed: int = 0) -> dict[str, Any] | None:
    """The LM's sanity check: real sentences against the same words in a shuffled order.

    Up to `sentences` of `texts` (a seeded sample), each with its words shuffled (seeded) until
    the order differs; a sentence of fewer than two distinct words cannot be shuffled and is
    left out. Gives the mean per-token NLL of both (nats, EOS included), their perplexities and
    `real_better`, the share of sentences whose real order has the lower per-token NLL. A
    language model that learnt word order puts that share near 1; a bag-of-words one near 0.5.
    None when no sentence can be shuffled.
    """
    rng = np.random.default_rng(seed)
    texts = list(texts)
    if len(texts) > sentences:
        texts = [texts[i] for i in np.sort(rng.choice(len(texts), size=sentences,
                                                      replace=False))]
    real, shuffled = [], []
    for text in texts:
        words = text.split()
        if len(set(words)) < 2:
            continue
        order = list(words)
        while order == words:
            order = [words[i] for i in rng.permutation(len(words))]
        real.append(" ".join(words))
        shuffled.append(" ".join(order))
    if not real:
        return None
    real_scores, shuffled_scores = judges.sentence_nll(real), judges.sentence_nll(shuffled)
    real_nll = float(real_scores.nll.sum() / real_scores.tokens.sum())
    shuffled_nll = float(shuffled_scores.nll.sum() / shuffled_scores.tokens.sum())
    better = (real_scores.nll / real_scores.tokens) < (shuffled_scores.nll /
                                                       shuffled_scores.tokens)
    return {"sentences": len(real), "left_out": len(texts) - len(real), "seed": seed,
            "real_nll": real_nll, "shuffled_nll": shuffled_nll,
            "real_ppl": safe_exp(real_nll), "shuffled_ppl": safe_exp(shuffled_nll),
            "real_better": float(np.mean(better))}


def _loaders(splits: datasets.DatasetDict, train: datasets.Dataset, tokenizer: Tokenizer,
             names: list[str], settings: JudgeSettings, seed: int) -> dict[str, Any]:
    loaders = {"train": make_loader(train, tokenizer, names, batch_size=settings.batch_size,
                                    bucket_batches=settings.bucket_batches, shuffle=True,
                                    seed=seed)}
    for name in ("valid", "test"):
        # Shortest sentences first: a scoring pass only sums over its sentences, so their order
        # is free, and batches of one length carry no padding. In corpus order a third of the
        # Yelp positions were padding, each one a softmax over 9k words.
        split = splits[name]
        by_length = split.select(np.argsort(dataset_lengths(split), kind="stable"))
        loaders[name] = make_loader(by_length, tokenizer, names,
                                    batch_size=settings.score_batch_size, bucket_batches=1,
                                    shuffle=False, seed=seed)
    return loaders


def _labels(split: datasets.Dataset, name: str) -> np.ndarray:
    """One label column as an int64 array (respects select), as `data.dataset_lengths` reads."""
    return np.asarray(split.select_columns([name]).with_format("numpy")[:][name], dtype=np.int64)


def _labelled(split: datasets.Dataset, names: list[str]) -> datasets.Dataset:
    """The rows with at least one known label (all of them in a fully labelled corpus)."""
    known = np.zeros(len(split), dtype=bool)
    for name in names:
        known |= _labels(split, name) != MISSING_LABEL
    return split if known.all() else split.select(np.flatnonzero(known))


def _classifier_scores(model: NgramClassifier, loader: Any, attributes: dict[str, list[str]],
                       device: torch.device) -> dict[str, dict[str, Any]]:
    """Accuracy per attribute and per class over the labelled sentences (None where none)."""
    sizes = [len(classes) for classes in attributes.values()]
    confusion = [torch.zeros(n * n, dtype=torch.int64) for n in sizes]  # true * n + predicted
    loss_sum = torch.zeros(len(sizes), dtype=torch.float64)  # summed cross-entropy per attribute
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            for a, logits in enumerate(model(batch.tokens, batch.lengths)):
                known = batch.label_mask[:, a]
                pairs = batch.labels[known, a] * sizes[a] + logits[known].argmax(dim=-1)
                confusion[a] += torch.bincount(pairs, minlength=sizes[a] ** 2).cpu()
                loss_sum[a] += F.cross_entropy(logits.float(), batch.labels[:, a],
                                               ignore_index=MISSING_LABEL,
                                               reduction="sum").double().cpu()
    model.train(was_training)
    totals = torch.stack([counts.sum() for counts in confusion]).double()  # (A,)
    losses = loss_sum[totals > 0] / totals[totals > 0]
    accuracy: dict[str, float | None] = {}
    class_accuracy: dict[str, dict[str, float | None]] = {}
    labelled: dict[str, int] = {}
    for (name, classes), counts in zip(attributes.items(), confusion):
        matrix = counts.view(len(classes), len(classes)).numpy()  # (true, predicted)
        total = int(matrix.sum())
        labelled[name] = total
        accuracy[name] = float(np.trace(matrix) / total) if total else None
        class_accuracy[name] = {
            label: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None
            for i, label in enumerate(classes)}
    return {"accuracy": accuracy, "class_accuracy": class_accuracy, "labelled": labelled,
            # the mean over the attributes of each one's mean cross-entropy (nan: no labels)
            "loss": float(losses.mean()) if len(losses) else math.nan}


def _lm_nll(model: GRULanguageModel, loader: Any, device: torch.device) -> float:
    """Per-token NLL (nats) of the loader's sentences, EOS included."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            scored = reconstruction_loss(model(batch.tokens), batch.tokens, batch.lengths)
            nll += float(scored.nll_sum.double().sum())
            tokens += int(scored.tokens.sum())
    model.train(was_training)
    return nll / tokens if tokens else math.nan


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG `fork_rng` must save and restore (none on the CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def format_accuracy(accuracy: Mapping[str, float | None]) -> str:
    return ", ".join(f"{name} {'n/a' if acc is None else f'{acc:.4f}'}"
                     for name, acc in accuracy.items()) or "n/a"


def _limit_text(seconds: float) -> str:
    return f" or {seconds:g} s" if seconds > 0 else ""


def _stop_text(training: Mapping[str, Any], time_limit: float) -> str:
    """How a judge's training ended, for its last log line."""
    if training["stopped_by"] == "time_limit":
        return (f"stopped by the time limit of {time_limit:g} s in epoch "
                f"{training['epochs_run']}")
    if training["stopped_by"] == "patience":
        return f"stopped early after epoch {training['epochs_run']}"
    return f"{training['epochs_run']} epochs"


def _check_text(check: Mapping[str, Any] | None) -> str:
    if check is None:
        return ""
    return (f"; {check['sentences']} test sentences, real order per-token NLL "
            f"{check['real_nll']:.3f} against {check['shuffled_nll']:.3f} shuffled, real "
            f"better in {check['real_better']:.1%}")
