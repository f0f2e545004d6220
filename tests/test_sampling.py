"""Sampling, reconstruction, style transfer and interpolation from a real (tiny, briefly
trained) checkpoint, and the CLI.

The fixture does not run the pretraining stage: it trains a tokenizer on corpora/tiny, a tiny
VAE for a few dozen steps on its 16 sentences (c from their labels), and saves it with the
checkpoint module's own checkpointer, so the files have the layout and names of a real run.
A second fixture adds a train-stage checkpoint of the same VAE with a discriminator trained on
the 16 labels for a few steps (the adversarial stage itself is not run either).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from textgan import sample as sample_cli
from textgan import sampling
from textgan.checkpoint import RunMeta, make_checkpointer
from textgan.config import TokenizerConfig, load_config
from textgan.errors import CheckpointError, SamplingError, TextganError, TokenizerError
from textgan.evaluation.report_sections import draw_samples
from textgan.losses import gaussian_kl, reconstruction_loss
from textgan.models import Discriminator, build_vae, code_dim, one_hot_code, vae_parameters
from textgan.sampling import (
    LoadedModel,
    SampledSentence,
    Transfer,
    all_styles,
    find_checkpoint,
    format_sentence,
    interpolate,
    load_for_inference,
    parse_style,
    print_sampled_sentence,
    reconstruct,
    sample_by_style,
    sample_sentences,
    transfer,
)
from textgan.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES = {"sentiment": ["negative", "positive"], "tense": ["past", "present"]}
LINE = re.compile(r"^\[sentiment=(negative|positive), tense=(past|present)\] ")
TRAIN_STEPS = 40
D_STEPS = 30


def tiny_rows() -> list[dict[str, str]]:
    lines = (ROOT / "corpora" / "tiny" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def labelled_batch(tokenizer, rows: list[dict[str, str]]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids + EOS (N, T) padded, lengths (N,) and class indices (N, A) of the rows."""
    ids = [torch.tensor(row + [tokenizer.eos_id]) for row in
           tokenizer.encode([row["text"] for row in rows])]
    tokens = pad_sequence(ids, batch_first=True, padding_value=tokenizer.pad_id)
    lengths = torch.tensor([len(row) for row in ids])
    labels = torch.tensor([[ATTRIBUTES[a].index(row[a]) for a in ATTRIBUTES] for row in rows])
    return tokens, lengths, labels


def save_checkpoint(folder: Path, stage: str, to_save: dict, iteration: int) -> Path:
    """Write `<folder>/<stage>_checkpoint_<iteration>.pt` as the stages do."""
    engine = Engine(lambda engine, batch: None)
    engine.add_event_handler(Events.COMPLETED,
                             make_checkpointer(to_save, folder, stage, keep_last=1))
    engine.run([0] * iteration, max_epochs=1)
    return folder / f"{stage}_checkpoint_{iteration}.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder with one pretrain checkpoint of a tiny model that knows the 16 sentences."""
    rows = tiny_rows()
    texts = [row["text"] for row in rows]
    cfg = load_config("tiny")
    # Pinned rather than taken from the preset, which is tuned for the synthetic corpus: the
    # tests below rely on this tokenizer and on sentences of up to 32 tokens.
    cfg.tokenizer = TokenizerConfig(model_type="unigram", vocab_size=72, hard_vocab_limit=False)
    cfg.data.max_tokens = 32
    tokenizer = train_tokenizer(texts, cfg.tokenizer, seed=0)
    num_classes = [len(classes) for classes in ATTRIBUTES.values()]
    # A private RNG stream: the fixture must not move the global one the tests compare.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = build_vae(cfg.model, vocab_size=tokenizer.vocab_size,
                        code_dim=code_dim(num_classes), pad_id=tokenizer.pad_id,
                        bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
        tokens, lengths, labels = labelled_batch(tokenizer, rows)
        code = one_hot_code(labels, num_classes)
        optimizer = torch.optim.Adam(vae_parameters(vae), lr=3e-2)
        for _ in range(TRAIN_STEPS):
            posterior = vae.encoder(tokens, lengths)
            z = posterior.mean + torch.randn_like(posterior.mean) * (0.5 * posterior.logvar).exp()
            logits = vae.generator(vae.generator.teacher_inputs(tokens), z, code)
            kl = gaussian_kl(posterior.mean, posterior.logvar).sum(dim=1).mean()
            loss = reconstruction_loss(logits, tokens, lengths).per_sentence + 0.1 * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model = nn.ModuleDict({"encoder": vae.encoder, "generator": vae.generator})
    run = tmp_path_factory.mktemp("sampling") / "run"
    tokenizer.save(run)
    meta = RunMeta(stage="pretrain", config=cfg, tokenizer=tokenizer, attributes=ATTRIBUTES)
    checkpoint = save_checkpoint(run / "pretrain", "pretrain", {"model": model, "meta": meta}, 3)
    return {"run": run, "checkpoint": checkpoint, "model": model, "meta": meta,
            "tokenizer": tokenizer, "rows": rows, "config": cfg}


@pytest.fixture(scope="module")
def loaded(trained) -> LoadedModel:
    return load_for_inference(trained["run"])


def build_discriminator(trained) -> Discriminator:
    return Discriminator(trained["config"].discriminator,
                         vocab_size=trained["tokenizer"].vocab_size, num_classes=[2, 2],
                         pad_id=trained["tokenizer"].pad_id)


@pytest.fixture(scope="module")
def trained_d(trained, tmp_path_factory):
    """A copy of the run with a train-stage checkpoint: the same VAE plus a discriminator that
    learnt to read the 16 sentences' labels, saved as `train/train_checkpoint_1.pt`."""
    tokens, lengths, labels = labelled_batch(trained["tokenizer"], trained["rows"])
    with torch.random.fork_rng(devices=[]):  # dropout and init draw from the global RNG
        torch.manual_seed(1)
        discriminator = build_discriminator(trained)
        optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
        for _ in range(D_STEPS):
            logits = discriminator(tokens, lengths)
            loss = sum(F.cross_entropy(block, labels[:, a]) for a, block in enumerate(logits))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    discriminator.eval()
    run = tmp_path_factory.mktemp("sampling-train") / "run"
    shutil.copytree(trained["run"], run)
    meta = RunMeta(stage="train", config=trained["config"], tokenizer=trained["tokenizer"],
                   attributes=ATTRIBUTES)
    checkpoint = save_checkpoint(run / "train", "train",
                                 {"model": trained["model"], "discriminator": discriminator,
                                  "meta": meta}, 1)
    return {"run": run, "checkpoint": checkpoint, "discriminator": discriminator}


@pytest.fixture(scope="module")
def loaded_d(trained_d) -> LoadedModel:
    return load_for_inference(trained_d["run"])


def rigged(model: LoadedModel, index: int) -> LoadedModel:
    """The model with a copy of its D that reads every sentence as class `index` of each
    attribute, whatever the sentence says."""
    discriminator = copy.deepcopy(model.discriminator)
    with torch.no_grad():
        for head in discriminator.heads:
            head.weight.zero_()
            head.bias.fill_(-5.0)
            head.bias[index] = 5.0
    return dataclasses.replace(model, discriminator=discriminator)


def d_reading(model: LoadedModel, texts: list[str]) -> list[dict[str, str]]:
    """What the model's D says of each sentence, computed here without textgan.sampling."""
    rows = [{"text": text, **{a: ATTRIBUTES[a][0] for a in ATTRIBUTES}} for text in texts]
    tokens, lengths, _ = labelled_batch(model.tokenizer, rows)
    with torch.no_grad():
        logits = model.discriminator(tokens, lengths)
    return [{a: ATTRIBUTES[a][int(block[i].argmax())] for a, block in zip(ATTRIBUTES, logits)}
            for i in range(len(texts))]


def weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- loading


def test_load_from_run_dir_and_from_file(trained, loaded):
    assert loaded.checkpoint == trained["checkpoint"]
    assert loaded.stage == "pretrain" and loaded.weights == "model"
    assert loaded.attributes == ATTRIBUTES and loaded.num_classes == [2, 2]
    assert loaded.tokenizer == trained["tokenizer"]
    assert loaded.config == trained["config"]
    assert not loaded.encoder.training and not loaded.generator.training
    assert loaded.discriminator is None  # a pretrain checkpoint has none
    assert weights_equal(loaded.encoder, trained["model"]["encoder"])
    assert weights_equal(loaded.generator, trained["model"]["generator"])
    from_file = load_for_inference(trained["checkpoint"])
    assert from_file.checkpoint == trained["checkpoint"]
    assert weights_equal(from_file.generator, loaded.generator)


def test_ema_weights_are_used_when_present_unless_refused(trained, tmp_path):
    ema = copy.deepcopy(trained["model"])
    with torch.no_grad():
        ema["generator"].output.bias.add_(1.0)
    folder = tmp_path / "run" / "pretrain"
    path = save_checkpoint(folder, "pretrain", {"model": trained["model"], "ema_model": ema,
                                                "meta": trained["meta"]}, 2)
    with_ema = load_for_inference(path)
    assert with_ema.weights == "ema_model"
    assert weights_equal(with_ema.generator, ema["generator"])
    raw = load_for_inference(path, use_ema=False)
    assert raw.weights == "model"
    assert weights_equal(raw.generator, trained["model"]["generator"])


def test_a_train_stage_checkpoint_loads_with_its_discriminator_and_is_preferred(
        trained, trained_d, loaded_d):
    assert loaded_d.checkpoint == trained_d["checkpoint"] == \
        trained_d["run"] / "train" / "train_checkpoint_1.pt"
    assert loaded_d.stage == "train"
    assert weights_equal(loaded_d.generator, trained["model"]["generator"])
    assert isinstance(loaded_d.discriminator, Discriminator)
    assert not loaded_d.discriminator.training
    assert weights_equal(loaded_d.discriminator, trained_d["discriminator"])
    assert loaded_d.discriminator.num_classes == loaded_d.num_classes


def test_discriminator_weights_that_do_not_fit_are_refused(trained, tmp_path):
    meta = RunMeta(stage="train", config=trained["config"], tokenizer=trained["tokenizer"],
                   attributes=ATTRIBUTES)
    path = save_checkpoint(tmp_path / "run" / "train", "train",
                           {"model": trained["model"], "discriminator": nn.Linear(3, 2),
                            "meta": meta}, 7)
    with pytest.raises(CheckpointError, match="'discriminator' weights do not fit"):
        load_for_inference(path)


def test_a_replaced_tokenizer_file_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    other = train_tokenizer([row["text"] for row in trained["rows"]],
                            TokenizerConfig(vocab_size=40, hard_vocab_limit=False), seed=0)
    other.save(run)
    with pytest.raises(TokenizerError, match="is not the tokenizer"):
        load_for_inference(run)
    # A checkpoint file inside the folder is checked against the folder's tokenizer, too.
    with pytest.raises(TokenizerError, match="is not the tokenizer"):
        load_for_inference(run / "pretrain" / trained["checkpoint"].name)


def whole_file(path):
    """A file that ends as a whole checkpoint does (a zip end record); an empty one is damaged."""
    zipfile.ZipFile(path, "w").close()


def test_find_checkpoint_prefers_train_then_pretrain_latest_then_best(tmp_path):
    run = tmp_path / "run"
    (run / "pretrain").mkdir(parents=True)
    (run / "train").mkdir()
    whole_file(run / "pretrain/best_checkpoint_100_elbo=-30.5.pt")
    assert find_checkpoint(run) == run / "pretrain/best_checkpoint_100_elbo=-30.5.pt"
    for name in ("pretrain/pretrain_checkpoint_10.pt", "pretrain/pretrain_checkpoint_200.pt"):
        whole_file(run / name)
    assert find_checkpoint(run) == run / "pretrain/pretrain_checkpoint_200.pt"
    for name in ("train/train_checkpoint_9.pt", "train/train_checkpoint_12.pt"):
        whole_file(run / name)
    assert find_checkpoint(run) == run / "train/train_checkpoint_12.pt"


def test_find_checkpoint_errors_say_what_was_looked_for(tmp_path):
    with pytest.raises(CheckpointError, match="run folder not found"):
        find_checkpoint(tmp_path / "missing")
    (tmp_path / "empty" / "pretrain").mkdir(parents=True)
    with pytest.raises(CheckpointError) as error:
        find_checkpoint(tmp_path / "empty")
    for looked_for in ("train/train_checkpoint_*.pt", "pretrain/best_checkpoint_*.pt",
                       "pretrain/pretrain_checkpoint_*.pt"):
        assert looked_for in str(error.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_for_inference(tmp_path / "nothing.pt")


# --------------------------------------------------------------------------- styles


def test_parse_style_accepts_names_indices_and_partial_styles():
    assert parse_style("sentiment=positive,tense=past", ATTRIBUTES) == \
        {"sentiment": "positive", "tense": "past"}
    # Canonical attribute order whatever the order given; spaces and case are forgiven.
    assert list(parse_style(" tense = Past , sentiment=1", ATTRIBUTES).items()) == \
        [("sentiment", "positive"), ("tense", "past")]
    assert parse_style("tense=present", ATTRIBUTES) == {"tense": "present"}
    assert parse_style("", ATTRIBUTES) == {}


@pytest.mark.parametrize("text, message", [
    ("mood=happy", r"unknown style attribute 'mood'.*sentiment \(negative, positive\), "
                   r"tense \(past, present\)"),
    ("sentiment=great", r"unknown class 'great'.*negative, positive or an index 0\.\.1"),
    ("sentiment=2", r"unknown class '2'"),
    ("sentiment", r"not name=class"),
    ("sentiment=positive,sentiment=negative", r"twice"),
])
def test_parse_style_refuses_with_the_valid_choices(text, message):
    with pytest.raises(SamplingError, match=message):
        parse_style(text, ATTRIBUTES)


def test_digits_are_class_names_when_classes_are_numbers():
    attributes = {"stars": ["1", "2", "5"]}
    assert parse_style("stars=1", attributes) == {"stars": "1"}
    with pytest.raises(SamplingError, match="unknown class '0'"):
        parse_style("stars=0", attributes)
    with pytest.raises(SamplingError, match="no style attributes"):
        parse_style("stars=1", {})


def test_all_styles_is_every_combination():
    styles = all_styles(ATTRIBUTES)
    assert len(styles) == 4 and len({tuple(s.items()) for s in styles}) == 4
    assert styles[0] == {"sentiment": "negative", "tense": "past"}
    assert styles[1] == {"sentiment": "negative", "tense": "present"}
    assert all_styles({"a": ["x", "y", "z"], "b": ["u", "v"]})[5] == {"a": "z", "b": "v"}
    assert all_styles({}) == [{}]


# --------------------------------------------------------------------------- sampling


def test_sample_sentences_count_style_and_prior_draws(loaded):
    sentences = sample_sentences(loaded, "sentiment=positive", 64, seed=3)
    assert len(sentences) == 64
    assert all(isinstance(s, SampledSentence) and isinstance(s.text, str) for s in sentences)
    assert all(s.style["sentiment"] == "positive" for s in sentences)
    # tense was left out: drawn from the prior per sentence, so both classes occur.
    assert {s.style["tense"] for s in sentences} == {"past", "present"}
    assert sample_sentences(loaded, None, 0) == []


def test_sampling_is_reproducible_by_seed_and_leaves_the_global_rng_alone(loaded):
    before = torch.get_rng_state()
    first = sample_sentences(loaded, None, 12, seed=5, temperature=1.5)
    again = sample_sentences(loaded, None, 12, seed=5, temperature=1.5)
    other = sample_sentences(loaded, None, 12, seed=6, temperature=1.5)
    reconstruct(loaded, ["the soup was warm and tasty ."], strategy="sample")
    assert torch.equal(torch.get_rng_state(), before)
    assert first == again
    assert first != other


def test_greedy_ignores_decoding_noise_and_top_k1_or_tiny_top_p_equal_it(loaded):
    style = {"sentiment": "negative", "tense": "present"}
    greedy = sample_sentences(loaded, style, 10, strategy="greedy", seed=1)
    # Same seed -> same z (drawn first); greedy ignores temperature.
    assert sample_sentences(loaded, style, 10, strategy="greedy", seed=1,
                            temperature=7.0) == greedy
    assert sample_sentences(loaded, style, 10, top_k=1, seed=1) == greedy
    assert sample_sentences(loaded, style, 10, top_p=1e-6, seed=1) == greedy
    assert sample_sentences(loaded, style, 10, top_k=5, top_p=0.9, temperature=0.7,
                            seed=1) != sample_sentences(loaded, style, 10, seed=2)


def test_chunked_decoding_gives_the_same_sentences(loaded, monkeypatch):
    whole = sample_sentences(loaded, None, 10, strategy="greedy", seed=4)
    monkeypatch.setattr(sampling, "DECODE_BATCH", 3)
    assert sample_sentences(loaded, None, 10, strategy="greedy", seed=4) == whole


def test_decoding_as_on_a_gpu_gives_the_same_sentences(loaded, monkeypatch):
    """Where a read waits for the device, decoding checks for its end only every few steps."""
    import textgan.checks as checks

    every_step = sample_sentences(loaded, None, 16, seed=4, temperature=1.3)
    monkeypatch.setattr(checks, "reading_waits", lambda tensor: True)
    assert sample_sentences(loaded, None, 16, seed=4, temperature=1.3) == every_step


@pytest.mark.parametrize("options, message", [
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": -1}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"strategy": "beam"}, "strategy"),
    ({"max_len": 0}, "max_len"),
    ({"no_repeat_ngram": -1}, "no_repeat_ngram"),
])
def test_impossible_decoding_settings_are_refused(loaded, options, message):
    with pytest.raises(SamplingError, match=message):
        sample_sentences(loaded, None, 2, **options)
    with pytest.raises(SamplingError, match=message):
        sample_by_style(loaded, 2, **options)
    with pytest.raises(SamplingError, match="n must be"):
        sample_sentences(loaded, None, -1)


def test_max_len_bounds_the_sentences(loaded):
    full = sample_sentences(loaded, None, 20, strategy="greedy", seed=0)
    short = sample_sentences(loaded, None, 20, strategy="greedy", seed=0, max_len=2)
    # The same z's and classes, cut after two steps: each short text starts its full text.
    assert [s.style for s in short] == [s.style for s in full]
    assert all(f.text.startswith(s.text) for s, f in zip(short, full))
    assert any(len(s.text) < len(f.text) for s, f in zip(short, full))
    assert any(not s.ended for s in short)  # 2 tokens leave most no room for EOS


def test_sample_by_style_groups_styles_and_shares_z(loaded):
    sentences = sample_by_style(loaded, 3, strategy="greedy", seed=2)
    styles = all_styles(ATTRIBUTES)
    assert [s.style for s in sentences] == [style for style in styles for _ in range(3)]
    # Each group decodes the same three z's as sample_sentences draws with that seed.
    for index, style in enumerate(styles):
        alone = sample_sentences(loaded, style, 3, strategy="greedy", seed=2)
        assert sentences[3 * index: 3 * index + 3] == alone


def _decoded_z(model: LoadedModel, monkeypatch, draw) -> torch.Tensor:
    """Every z (rows, Z) the generator decodes while `draw()` runs."""
    seen: list[torch.Tensor] = []
    decode = model.generator.decode

    def recording(z, *args, **kwargs):
        seen.append(z.clone())
        return decode(z, *args, **kwargs)

    monkeypatch.setattr(model.generator, "decode", recording)
    draw()
    monkeypatch.undo()
    return torch.cat(seen)


def test_sample_by_style_draws_a_z_per_sentence_unless_shared(loaded, monkeypatch):
    styles = len(all_styles(ATTRIBUTES))
    shared = _decoded_z(loaded, monkeypatch, lambda: sample_by_style(loaded, 3, seed=2))
    assert shared.shape[0] == 3 * styles and torch.unique(shared, dim=0).shape[0] == 3
    own = _decoded_z(loaded, monkeypatch,
                     lambda: sample_by_style(loaded, 3, seed=2, same_z=False))
    assert own.shape[0] == 3 * styles and torch.unique(own, dim=0).shape[0] == 3 * styles


def test_evaluation_samples_share_no_z(loaded, monkeypatch):
    # self-BLEU over samples written from one z in every style counts those near-copies as
    # repeats: the evaluation's samples must each have their own z
    z = _decoded_z(loaded, monkeypatch,
                   lambda: draw_samples(loaded, 40, temperature=1.0, seed=0, strategy="greedy"))
    assert z.shape[0] == 40 and torch.unique(z, dim=0).shape[0] == 40


def test_live_modules_keep_their_training_mode(trained, loaded):
    model = copy.deepcopy(trained["model"]).train()
    live = LoadedModel(config=loaded.config, tokenizer=loaded.tokenizer, attributes=ATTRIBUTES,
                       encoder=model["encoder"], generator=model["generator"], stage="pretrain",
                       checkpoint=None, device=torch.device("cpu"))
    assert sample_by_style(live, 1, strategy="greedy") == \
        sample_by_style(loaded, 1, strategy="greedy")
    reconstruct(live, ["the bread is fresh and soft ."])
    assert all(module.training for module in model.modules())


# --------------------------------------------------------------------------- reconstruction


def test_reconstruct_returns_one_sentence_each_and_knows_its_training_data(trained, loaded):
    rows = trained["rows"]
    texts = [row["text"] for row in rows]
    exact = 0
    for style in all_styles(ATTRIBUTES):
        members = [row["text"] for row in rows if all(row[a] == v for a, v in style.items())]
        outputs = reconstruct(loaded, members, style=style)
        assert len(outputs) == len(members) and all(isinstance(o, str) for o in outputs)
        exact += sum(o == m for o, m in zip(outputs, members))
    # The model saw these 16 sentences with these labels for a few dozen steps: most come back.
    assert exact >= len(texts) // 2
    assert len(reconstruct(loaded, texts)) == len(texts)  # c from the prior
    assert reconstruct(loaded, texts, seed=1) == reconstruct(loaded, texts, seed=1)
    assert reconstruct(loaded, []) == []


def test_reconstruct_refuses_too_long_or_empty_sentences(loaded):
    long = " ".join(["the soup was warm and tasty"] * 8)
    with pytest.raises(SamplingError, match=r"longer than the 32 tokens.*truncate"):
        reconstruct(loaded, ["the bread is fresh .", long])
    assert len(reconstruct(loaded, [long], truncate=True)) == 1
    with pytest.raises(SamplingError, match="empty"):
        reconstruct(loaded, ["the soup .", "  "])
    with pytest.raises(SamplingError, match="list"):
        reconstruct(loaded, "the soup .")


def test_reconstruct_keeps_the_style_d_reads_in_each_sentence(trained, loaded_d):
    rows = trained["rows"]
    texts = [row["text"] for row in rows]
    readings = d_reading(loaded_d, texts)
    # D learnt the labels: what it reads is mostly the sentence's own style
    assert sum(r == {a: row[a] for a in ATTRIBUTES} for r, row in zip(readings, rows)) >= 12
    plain = reconstruct(loaded_d, texts)
    # each sentence decoded with its own reading, not with a prior draw (so no seed changes it)
    assert plain == [reconstruct(loaded_d, [text], style=reading)[0]
                     for text, reading in zip(texts, readings)]
    assert reconstruct(loaded_d, texts, seed=5) == plain
    # which matters: this model follows c, so the opposite styles decode otherwise
    flipped = [{a: ATTRIBUTES[a][1 - ATTRIBUTES[a].index(value)] for a, value in r.items()}
               for r in readings]
    assert plain != [reconstruct(loaded_d, [text], style=style)[0]
                     for text, style in zip(texts, flipped)]
    # a style overrides what it names, the rest is still read: transfer's decoding exactly
    assert reconstruct(loaded_d, texts, style="sentiment=negative") == \
        [t.text for t in transfer(loaded_d, texts, "sentiment=negative")]
    for index in (0, 1):  # a D that reads one class everywhere decides every c
        model = rigged(loaded_d, index)
        assert reconstruct(model, texts) == reconstruct(
            model, texts, style={a: classes[index] for a, classes in ATTRIBUTES.items()})


def test_reconstruct_without_discriminator_draws_from_the_prior_and_says_so(trained, loaded,
                                                                            caplog):
    texts = [row["text"] for row in trained["rows"]]
    with caplog.at_level(logging.WARNING, logger="textgan.sampling"):
        reconstruct(loaded, texts, style="tense=past")
    (warning,) = [r for r in caplog.records if "no discriminator" in r.getMessage()]
    assert "sentiment is drawn from the prior" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textgan.sampling"):
        reconstruct(loaded, texts[:2], style="tense=past,sentiment=negative")
    assert not [r for r in caplog.records if "no discriminator" in r.getMessage()]


def test_cli_reconstruction_keeps_the_source_style(trained, trained_d, loaded_d, capsys):
    texts = [row["text"] for row in trained["rows"][:4]]
    result = sample_cli.main(["--run-dir", str(trained_d["run"]), "--reconstruct", texts[0],
                              "--reconstruct", texts[1], "--reconstruct", texts[2],
                              "--reconstruct", texts[3], "--seed", "3"])
    assert [r["output"] for r in result["reconstructions"]] == reconstruct(loaded_d, texts)
    assert capsys.readouterr().out.splitlines() == [
        f"{r['input']} -> {r['output']}" for r in result["reconstructions"]]


# --------------------------------------------------------------------------- transfer


def test_transfer_sets_the_requested_class_and_keeps_ds_reading_of_the_rest(trained, loaded_d):
    rows = trained["rows"]
    texts = [row["text"] for row in rows]
    transfers = transfer(loaded_d, texts, "sentiment=negative")
    assert len(transfers) == len(texts)
    assert all(isinstance(t, Transfer) and isinstance(t.text, str) for t in transfers)
    assert [t.source for t in transfers] == texts
    readings = d_reading(loaded_d, texts)
    assert [t.source_style for t in transfers] == readings
    assert all(t.target_style == {"sentiment": "negative", "tense": r["tense"]}
               for t, r in zip(transfers, readings))
    # The fixture's D learnt the labels, so "kept" means the source's own tense, and both occur.
    assert sum(r == {a: row[a] for a in ATTRIBUTES} for r, row in zip(readings, rows)) >= 12
    assert {t.target_style["tense"] for t in transfers} == {"past", "present"}
    # Decoded with exactly that c: the same as reconstructing under the full target style.
    for t in transfers[:4]:
        assert t.text == reconstruct(loaded_d, [t.source], style=t.target_style)[0]
    assert transfer(loaded_d, [], {"tense": "past"}) == []


@pytest.mark.parametrize("index", [0, 1])
def test_unnamed_attributes_follow_a_rigged_discriminator(trained, loaded_d, index):
    model = rigged(loaded_d, index)
    texts = [row["text"] for row in trained["rows"]]
    transfers = transfer(model, texts, {"sentiment": "positive"})
    tense = ATTRIBUTES["tense"][index]
    assert all(t.source_style == {"sentiment": ATTRIBUTES["sentiment"][index], "tense": tense}
               for t in transfers)
    assert all(t.target_style == {"sentiment": "positive", "tense": tense} for t in transfers)
    assert [t.text for t in transfers] == reconstruct(
        model, texts, style={"sentiment": "positive", "tense": tense})


def test_transfer_without_discriminator_draws_from_the_prior_and_warns_once(
        trained, loaded, caplog, monkeypatch):
    texts = [row["text"] for row in trained["rows"]]
    monkeypatch.setattr(sampling, "DECODE_BATCH", 5)  # several chunks, still one warning
    with caplog.at_level(logging.WARNING, logger="textgan.sampling"):
        transfers = transfer(loaded, texts, "tense=past", seed=2)
    warnings = [r for r in caplog.records if "no discriminator" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "sentiment" in warnings[0].getMessage()
    assert all(t.source_style == {} for t in transfers)
    assert all(t.target_style["tense"] == "past" for t in transfers)
    assert {t.target_style["sentiment"] for t in transfers} == {"negative", "positive"}
    # Same seed, same draws as reconstruct: c from the style, the rest from the prior.
    assert [t.text for t in transfers] == reconstruct(loaded, texts, style="tense=past", seed=2)
    # Naming every attribute needs nothing read: no warning then.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textgan.sampling"):
        transfer(loaded, texts[:2], "tense=past,sentiment=negative")
    assert not [r for r in caplog.records if "no discriminator" in r.getMessage()]


def test_transfer_runs_each_network_once_per_chunk(trained, loaded_d, monkeypatch):
    texts = [row["text"] for row in trained["rows"]]
    whole = transfer(loaded_d, texts, "sentiment=positive")
    calls = {"encoder": 0, "discriminator": 0, "decode": 0}

    def count(name):
        def hook(module, inputs, output):
            calls[name] += 1
        return hook

    handles = [loaded_d.encoder.register_forward_hook(count("encoder")),
               loaded_d.discriminator.register_forward_hook(count("discriminator"))]
    decode = loaded_d.generator.decode

    def counted_decode(*args, **kwargs):
        calls["decode"] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(loaded_d.generator, "decode", counted_decode)
    monkeypatch.setattr(sampling, "DECODE_BATCH", 5)
    try:
        chunked = transfer(loaded_d, texts, "sentiment=positive")
    finally:
        for handle in handles:
            handle.remove()
    assert calls == {"encoder": 4, "discriminator": 4, "decode": 4}  # 16 rows, chunks of 5
    assert chunked == whole


def test_transfer_refuses_bad_requests(loaded_d):
    with pytest.raises(SamplingError, match="needs a target style.*sentiment=positive"):
        transfer(loaded_d, ["the soup ."], None)
    with pytest.raises(SamplingError, match="names no attribute"):
        transfer(loaded_d, ["the soup ."], " ")
    with pytest.raises(SamplingError, match="unknown style attribute 'mood'"):
        transfer(loaded_d, ["the soup ."], "mood=happy")
    with pytest.raises(SamplingError, match="list"):
        transfer(loaded_d, "the soup .", "tense=past")
    with pytest.raises(SamplingError, match="empty"):
        transfer(loaded_d, ["the soup .", ""], "tense=past")
    with pytest.raises(SamplingError, match="temperature"):
        transfer(loaded_d, ["the soup ."], "tense=past", temperature=0.0)
    long = " ".join(["the soup was warm and tasty"] * 8)
    with pytest.raises(SamplingError, match="longer than the 32 tokens"):
        transfer(loaded_d, [long], "tense=past")
    assert len(transfer(loaded_d, [long], "tense=past", truncate=True)) == 1
    with pytest.raises(SamplingError, match="no style attributes"):
        transfer(dataclasses.replace(loaded_d, attributes={}), ["the soup ."], "tense=past")


def test_transfer_and_interpolate_are_seeded_and_leave_the_global_rng_alone(loaded, loaded_d):
    texts = ["the soup was warm and tasty .", "we enjoy every visit here ."]
    before = torch.get_rng_state()
    for model in (loaded, loaded_d):
        first = transfer(model, texts, "sentiment=positive", strategy="sample", seed=3)
        assert first == transfer(model, texts, "sentiment=positive", strategy="sample", seed=3)
        path = interpolate(model, *texts, steps=4, strategy="sample", seed=3)
        assert path == interpolate(model, *texts, steps=4, strategy="sample", seed=3)
    assert torch.equal(torch.get_rng_state(), before)


# --------------------------------------------------------------------------- style strengths


class ScriptedDiscriminator(nn.Module):
    """A stand-in D whose readings follow a script: its first call (the transfer's reading of
    the sources) reads every sentence as class 0 of each attribute; call k >= 1 (the check of
    the k-th rewrites) reads the rows `accept(k, B)` marks as class 1, the others as class 0,
    all with probability ~1. Records the batch size of every call."""

    def __init__(self, accept):
        super().__init__()
        self.accept, self.sizes = accept, []

    def forward(self, tokens, lengths):
        batch = tokens.shape[0]
        self.sizes.append(batch)
        ones = (self.accept(len(self.sizes) - 1, batch) if len(self.sizes) > 1
                else torch.zeros(batch, dtype=torch.bool))
        logits = torch.where(ones.view(-1, 1), torch.tensor([-9.0, 9.0]),
                             torch.tensor([9.0, -9.0]))  # (B, 2)
        return [logits, logits.clone()]


def test_a_stronger_code_pushes_only_the_named_attribute(trained, loaded_d, monkeypatch):
    """Strength 2 decodes the requested sentiment as [-1, 2] (positive) and the kept tense
    as a plain one-hot; strength 1 is the plain transfer, the default of a run's config."""
    texts = [row["text"] for row in trained["rows"][:6]]
    codes = []
    decode = loaded_d.generator.decode

    def recording_decode(z, c, **kwargs):
        codes.append(c.clone())
        return decode(z, c, **kwargs)

    monkeypatch.setattr(loaded_d.generator, "decode", recording_decode)
    strong = transfer(loaded_d, texts, "sentiment=positive", style_strengths=[2.0])
    (code,) = codes
    sentiment, tense = code[:, :2], code[:, 2:]
    assert torch.equal(sentiment, torch.tensor([[-1.0, 2.0]] * 6))
    kept = [ATTRIBUTES["tense"].index(t.target_style["tense"]) for t in strong]
    assert torch.equal(tense, F.one_hot(torch.tensor(kept), 2).float())
    assert all(t.strength == 2.0 for t in strong)
    assert loaded_d.config.transfer.style_strengths == [1.0]
    plain = transfer(loaded_d, texts, "sentiment=positive")
    assert plain == transfer(loaded_d, texts, "sentiment=positive", style_strengths=[1.0])
    assert torch.equal(codes[1][:, :2], torch.tensor([[0.0, 1.0]] * 6))
    assert all(t.strength == 1.0 for t in plain)


def test_rows_d_rejects_are_rewritten_at_the_next_strength_and_only_they(trained, loaded_d):
    texts = [row["text"] for row in trained["rows"]]  # 16
    # the first rewrites: D accepts the even rows; the second: every row
    scripted = ScriptedDiscriminator(
        lambda call, batch: (torch.arange(batch) % 2 == 0) if call == 1
        else torch.ones(batch, dtype=torch.bool))
    model = dataclasses.replace(loaded_d, discriminator=scripted)
    moved = transfer(model, texts, "sentiment=positive", style_strengths=[1.0, 2.0, 3.0])
    # read the sources, check 16 first rewrites, check the 8 rewritten again; 3.0 never tried
    assert scripted.sizes == [16, 16, 8]
    reference = rigged(loaded_d, 0)  # reads the sources as the script does
    plain = transfer(reference, texts, "sentiment=positive")
    stronger = transfer(reference, texts, "sentiment=positive", style_strengths=[2.0])
    assert [t.strength for t in moved] == [1.0, 2.0] * 8
    assert [t.text for t in moved] == [(plain if i % 2 == 0 else stronger)[i].text
                                       for i in range(16)]
    assert [t.target_style for t in moved] == [t.target_style for t in plain]


def test_a_rewrite_no_strength_makes_acceptable_keeps_the_last(trained, loaded_d, monkeypatch):
    texts = [row["text"] for row in trained["rows"]]
    never = rigged(loaded_d, 0)  # reads everything as negative: no positive rewrite passes
    monkeypatch.setattr(sampling, "DECODE_BATCH", 5)  # the retries run in chunks too
    moved = transfer(never, texts, "sentiment=positive", style_strengths=[1.0, 1.5, 2.5])
    assert [t.text for t in moved] == [
        t.text for t in transfer(never, texts, "sentiment=positive", style_strengths=[2.5])]
    assert {t.strength for t in moved} == {2.5}
    # D's probability must reach min_confidence: ~1.0 passes 0.5, and nothing passes 1.0 ...
    always = rigged(loaded_d, 1)
    assert {t.strength for t in transfer(always, texts, "sentiment=positive",
                                         style_strengths=[1.0, 2.0])} == {1.0}
    # (the rigged logits, +-5, give 1 / (1 + e^-10) ~ 0.99995)
    assert {t.strength for t in transfer(always, texts, "sentiment=positive",
                                         style_strengths=[1.0, 2.0], min_confidence=1.0)} \
        == {2.0}
    # ... and every named attribute must pass: D reads the tense as present, not past
    assert {t.strength for t in transfer(always, texts, "sentiment=positive,tense=past",
                                         style_strengths=[1.0, 2.0])} == {2.0}


def test_without_a_discriminator_only_the_first_strength_is_used(trained, loaded, caplog):
    texts = [row["text"] for row in trained["rows"][:4]]
    with caplog.at_level(logging.INFO, logger="textgan.sampling"):
        moved = transfer(loaded, texts, "sentiment=positive,tense=past",
                         style_strengths=[1.5, 3.0])
    assert any("only the first style strength (1.5)" in r.getMessage() for r in caplog.records)
    assert moved == transfer(loaded, texts, "sentiment=positive,tense=past",
                             style_strengths=[1.5])


@pytest.mark.parametrize("kwargs, message", [
    ({"style_strengths": []}, "no style strength"),
    ({"style_strengths": [1.0, 0.0]}, "must be > 0"),
    ({"style_strengths": [float("nan")]}, "must be > 0"),
    ({"min_confidence": 0.0}, r"min_confidence must be in \(0, 1\]"),
    ({"min_confidence": 1.5}, r"min_confidence must be in \(0, 1\]"),
])
def test_impossible_strength_settings_are_refused(loaded_d, kwargs, message):
    with pytest.raises(SamplingError, match=message):
        transfer(loaded_d, ["the soup ."], "sentiment=positive", **kwargs)


def test_cli_style_strengths_mark_the_rewrites_kept_stronger(trained, trained_d, loaded_d,
                                                            capsys, monkeypatch):
    texts = [row["text"] for row in trained["rows"][:4]]
    never = rigged(loaded_d, 0)
    # the CLI imports load_for_inference from textgan.sampling when it runs
    monkeypatch.setattr(sampling, "load_for_inference", lambda *a, **k: never)
    argv = ["--run-dir", str(trained_d["run"]), "--style", "sentiment=positive"]
    for text in texts:
        argv += ["--transfer", text]
    result = sample_cli.main([*argv, "--style-strengths", "1,2", "--min-confidence", "0.9"])
    expected = transfer(never, texts, "sentiment=positive", style_strengths=[1.0, 2.0],
                        min_confidence=0.9)
    assert result["transfers"] == [t._asdict() for t in expected]
    assert capsys.readouterr().out.splitlines() == [
        f"{t.source} -> {t.text}  [sentiment=positive, tense={t.target_style['tense']}] "
        f"(strength 2)" for t in expected]
    for flag, value, message in [("--style-strengths", "1,0", "every number must be > 0"),
                                 ("--style-strengths", "1,x", "comma-separated numbers"),
                                 ("--min-confidence", "0", r"must be in \(0, 1\]")]:
        with pytest.raises(SystemExit) as stopped:
            sample_cli.main([*argv, flag, value])
        assert stopped.value.code == 2 and re.search(message, capsys.readouterr().err)


# --------------------------------------------------------------------------- interpolation


def test_interpolation_endpoints_are_the_reconstructions_under_the_same_c(trained, loaded_d):
    a, b = trained["rows"][0]["text"], trained["rows"][9]["text"]
    path = interpolate(loaded_d, a, b, steps=4, style="sentiment=positive")
    assert len(path) == 4 and all(isinstance(text, str) for text in path)
    # c: the style given, and D's reading of a for the rest -- what transfer reads too.
    c = transfer(loaded_d, [a], "sentiment=positive")[0].target_style
    assert [path[0], path[-1]] == reconstruct(loaded_d, [a, b], style=c)
    assert interpolate(loaded_d, a, b, steps=2, style="sentiment=positive") == \
        [path[0], path[-1]]
    for index in (0, 1):  # unnamed attributes: D's reading of a, not of b or the prior
        model = rigged(loaded_d, index)
        c = {"sentiment": "positive", "tense": ATTRIBUTES["tense"][index]}
        assert interpolate(model, a, b, steps=3, style="sentiment=positive")[::2] == \
            reconstruct(model, [a, b], style=c)


def test_interpolation_without_discriminator_uses_one_c_and_one_decode(trained, loaded,
                                                                      monkeypatch):
    a, b = trained["rows"][2]["text"], trained["rows"][12]["text"]
    style = {"sentiment": "negative", "tense": "present"}
    path = interpolate(loaded, a, b, steps=5, style=style)
    assert [path[0], path[-1]] == reconstruct(loaded, [a, b], style=style)
    codes = []
    decode = loaded.generator.decode

    def recorded_decode(z, c, **kwargs):
        codes.append((z.clone(), c.clone()))
        return decode(z, c, **kwargs)

    monkeypatch.setattr(loaded.generator, "decode", recorded_decode)
    interpolate(loaded, a, b, steps=6, seed=4)  # no style: one prior draw for the whole path
    assert len(codes) == 1
    z, c = codes[0]
    assert z.shape[0] == c.shape[0] == 6
    assert torch.equal(c, c[:1].expand_as(c))
    # Evenly spaced on the straight line between the two means.
    steps = z[1:] - z[:-1]
    assert torch.allclose(steps, steps[:1].expand_as(steps), atol=1e-5)


@pytest.mark.parametrize("steps", [1, 0, -2, 2.5, True, "3"])
def test_interpolation_needs_at_least_two_whole_steps(loaded, steps):
    with pytest.raises(SamplingError, match="steps must be a whole number >= 2"):
        interpolate(loaded, "the soup .", "the bread .", steps=steps)


def test_interpolation_refuses_empty_or_non_text_sentences(loaded):
    with pytest.raises(SamplingError, match="empty"):
        interpolate(loaded, "the soup .", " ", steps=3)
    with pytest.raises(SamplingError, match="b is a list"):
        interpolate(loaded, "the soup .", ["the bread ."], steps=3)
    with pytest.raises(SamplingError, match="unknown class"):
        interpolate(loaded, "the soup .", "the bread .", steps=3, style="tense=future")


# --------------------------------------------------------------------------- printing


def test_print_sampled_sentence_writes_one_labelled_line_each(loaded, trained, capsys):
    out = io.StringIO()
    sentences = print_sampled_sentence(loaded, n=2, seed=0, file=out)
    lines = out.getvalue().splitlines()
    assert len(sentences) == len(lines) == 8
    for line, sentence in zip(lines, sentences):
        match = LINE.match(line)
        assert match and (match.group(1), match.group(2)) == \
            (sentence.style["sentiment"], sentence.style["tense"])
        assert line[match.end():] == sentence.text == format_sentence(sentence)[match.end():]

    positive = print_sampled_sentence(trained["run"], {"sentiment": "positive"}, n=3,
                                      temperature=0.8, top_k=10, top_p=0.95, seed=1)
    printed = capsys.readouterr().out.splitlines()  # default: stdout
    assert len(printed) == len(positive) == 3
    assert all(line.startswith("[sentiment=positive, tense=") for line in printed)


def test_format_sentence_without_attributes_is_the_text():
    assert format_sentence(SampledSentence("a b .", {})) == "a b ."
    assert format_sentence(SampledSentence("a b .", {"tense": "past"})) == "[tense=past] a b ."


# --------------------------------------------------------------------------- command line


def test_cli_samples_in_a_style(trained, capsys):
    result = sample_cli.main(["--run-dir", str(trained["run"]), "--style",
                              "sentiment=negative,tense=present", "--n", "4", "--seed", "3",
                              "--top-p", "0.9"])
    lines = capsys.readouterr().out.splitlines()
    assert result["checkpoint"] == str(trained["checkpoint"]) and result["stage"] == "pretrain"
    assert len(result["samples"]) == len(lines) == 4
    assert all(s["style"] == {"sentiment": "negative", "tense": "present"}
               for s in result["samples"])
    assert all(line.startswith("[sentiment=negative, tense=present] ") for line in lines)
    assert result["samples"] == sample_cli.main(
        ["--run-dir", str(trained["run"]), "--style", "sentiment=0,tense=present", "--n", "4",
         "--seed", "3", "--top-p", "0.9"])["samples"]


def test_cli_without_style_samples_every_combination(trained, capsys):
    result = sample_cli.main(["--checkpoint", str(trained["checkpoint"]), "--n", "2",
                              "--greedy"])
    assert len(result["samples"]) == len(capsys.readouterr().out.splitlines()) == 8
    assert [s["style"] for s in result["samples"][::2]] == all_styles(ATTRIBUTES)


def test_cli_reconstructs_given_sentences(trained, capsys):
    texts = ["the soup was warm and tasty .", "we enjoy every visit here ."]
    result = sample_cli.main(["--run-dir", str(trained["run"]), "--reconstruct", texts[0],
                              "--reconstruct", texts[1], "--checkpoint",
                              f"pretrain/{trained['checkpoint'].name}"])
    lines = capsys.readouterr().out.splitlines()
    assert [r["input"] for r in result["reconstructions"]] == texts
    assert lines == [f"{r['input']} -> {r['output']}" for r in result["reconstructions"]]
    assert result["samples"] == []


def test_cli_transfers_sentences_from_flags_and_a_file(trained, trained_d, loaded_d, tmp_path,
                                                       capsys):
    texts = [row["text"] for row in trained["rows"]]
    path = tmp_path / "sentences.txt"
    path.write_text(f"{texts[2]}\n\n   \n  {texts[3]}  \n{texts[4]}", encoding="utf-8")
    result = sample_cli.main(["--run-dir", str(trained_d["run"]), "--transfer", texts[0],
                              "--transfer", texts[1], "--transfer-file", str(path),
                              "--style", "sentiment=positive"])
    lines = capsys.readouterr().out.splitlines()
    assert result["stage"] == "train" and result["samples"] == result["reconstructions"] == []
    expected = transfer(loaded_d, texts[:5], "sentiment=positive")
    assert [r["source"] for r in result["transfers"]] == texts[:5]  # flags first, then the file
    assert result["transfers"] == [t._asdict() for t in expected]
    assert lines == [f"{t.source} -> {t.text}  [sentiment=positive, "
                     f"tense={t.target_style['tense']}]" for t in expected]


def has_repeated_word(text: str) -> bool:
    words = text.split()
    return len(words) != len(set(words))


def test_no_repeat_ngram_reaches_every_mode_of_the_library_and_the_cli(trained, loaded_d,
                                                                      trained_d, capsys):
    """With no_repeat_ngram=1 no word comes twice in any output (a repeated word would repeat
    its tokens). The model is rigged to favour one word, so that without the ban every mode
    falls into loops such as "soup was soup was"."""
    texts = [row["text"] for row in trained["rows"][:12]]
    looping = copy.deepcopy(loaded_d)
    word = looping.tokenizer.encode(["soup"])[0][0]
    with torch.no_grad():
        looping.generator.output.bias[word] += 12.0
    outputs = {
        "samples": lambda **kw: [s.text for s in sample_sentences(looping, None, 24,
                                                                  strategy="greedy", **kw)],
        "reconstruct": lambda **kw: reconstruct(looping, texts, **kw),
        "transfer": lambda **kw: [t.text for t in transfer(looping, texts, "tense=past", **kw)],
        "interpolate": lambda **kw: interpolate(looping, texts[0], texts[1], steps=6, **kw),
    }
    for mode, decode in outputs.items():
        plain, banned = decode(), decode(no_repeat_ngram=1)
        assert any(map(has_repeated_word, plain)), mode
        assert len(banned) == len(plain) and not any(map(has_repeated_word, banned)), mode
    texts = [row["text"] for row in trained["rows"][:2]]
    cli = sample_cli.main(["--run-dir", str(trained_d["run"]), "--transfer", texts[0],
                           "--transfer", texts[1], "--style", "tense=past",
                           "--no-repeat-ngram", "1"])
    assert [t["text"] for t in cli["transfers"]] == [
        t.text for t in transfer(loaded_d, texts, "tense=past", no_repeat_ngram=1)]
    cli = sample_cli.main(["--run-dir", str(trained_d["run"]), "--n", "3", "--greedy",
                           "--no-repeat-ngram", "1", "--style", "tense=past"])
    assert [s["text"] for s in cli["samples"]] == [s.text for s in sample_sentences(
        loaded_d, "tense=past", 3, strategy="greedy", no_repeat_ngram=1)]
    capsys.readouterr()


def test_cli_interpolates_with_numbered_lines(trained, trained_d, loaded_d, capsys):
    a, b = trained["rows"][0]["text"], trained["rows"][9]["text"]
    result = sample_cli.main(["--run-dir", str(trained_d["run"]), "--interpolate", a, b,
                              "--steps", "3", "--style", "tense=past"])
    lines = capsys.readouterr().out.splitlines()
    texts = interpolate(loaded_d, a, b, steps=3, style="tense=past")
    assert result["interpolation"] == [{"t": 0.0, "text": texts[0]},
                                       {"t": 0.5, "text": texts[1]},
                                       {"t": 1.0, "text": texts[2]}]
    assert lines == [f"{i}. {text}" for i, text in enumerate(texts, start=1)]
    assert result["transfers"] == [] and result["samples"] == []
    default = sample_cli.main(["--run-dir", str(trained["run"]), "--interpolate", a, b])
    assert len(default["interpolation"]) == sample_cli.DEFAULT_STEPS
    assert len(capsys.readouterr().out.splitlines()) == sample_cli.DEFAULT_STEPS


@pytest.mark.parametrize("argv, message", [
    (["--transfer", "the soup ."], "need --style"),
    (["--transfer-file", "{tmp}/x.txt"], "need --style"),
    (["--transfer", "the soup .", "--style", " "], "need --style"),
    (["--transfer-file", "{tmp}/missing.txt", "--style", "tense=past"], "file not found"),
    (["--transfer-file", "{tmp}", "--style", "tense=past"], "is a folder"),
    (["--transfer-file", "{tmp}/blank.txt", "--style", "tense=past"], "no sentences"),
    (["--transfer-file", "{tmp}/latin1.txt", "--style", "tense=past"], "not UTF-8"),
    (["--transfer", "a .", "--reconstruct", "b .", "--style", "tense=past"],
     "--reconstruct and --transfer/--transfer-file are separate modes"),
    (["--interpolate", "a .", "b .", "--transfer", "c .", "--style", "tense=past"],
     "separate modes"),
    (["--interpolate", "a .", "b .", "--steps", "1"], "steps must be a whole number >= 2"),
    (["--transfer", "the soup .", "--style", "tense=future"], "unknown class"),
])
def test_cli_transfer_and_interpolate_mistakes_are_sampling_errors(trained, tmp_path, argv,
                                                                   message):
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 .\n".encode("latin-1"))
    argv = ["--run-dir", str(trained["run"])] + [a.format(tmp=tmp_path) for a in argv]
    with pytest.raises(SamplingError, match=message):
        sample_cli.main(argv)


@pytest.mark.parametrize("argv, error, message", [
    (["--run-dir", "{tmp}/missing"], CheckpointError, "run folder not found"),
    ([], CheckpointError, "--run-dir"),
    (["--run-dir", "{run}", "--style", "sentiment=ecstatic"], SamplingError, "unknown class"),
    (["--run-dir", "{run}", "--reconstruct", ""], SamplingError, "empty"),
    (["--run-dir", "{run}", "--n", "0"], SamplingError, "--n"),
    (["--run-dir", "{run}", "--temperature", "-1"], SamplingError, "temperature"),
    (["--run-dir", "{run}", "--no-repeat-ngram", "-1"], SamplingError, "no_repeat_ngram"),
    (["--run-dir", "{run}", "--device", "gpu0"], SamplingError, "unknown device"),
])
def test_cli_user_mistakes_are_textgan_errors(trained, tmp_path, argv, error, message):
    argv = [a.format(tmp=tmp_path, run=trained["run"]) for a in argv]
    with pytest.raises(error, match=message) as raised:
        sample_cli.main(argv)
    assert isinstance(raised.value, TextganError)


def test_cli_help_shows_the_options_and_their_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        sample_cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--style", "--n", "--temperature", "--top-k", "--top-p", "--greedy", "--seed",
                 "--reconstruct", "--checkpoint", "python -m textgan.sample --run-dir"):
        assert flag in text
    assert "(default: 1.0)" in text
    for flag in ("--transfer TEXT", "--transfer-file FILE", "--interpolate A B", "--steps"):
        assert flag in text
    assert "(default: 5)" in text


def test_cli_program_prints_one_error_line_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "textgan.sample", "--run-dir",
                           str(tmp_path / "missing")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: run folder not found: "
                                                 f"{tmp_path / 'missing'}"]


def test_only_a_prior_coded_pretrain_model_is_said_not_to_follow_c():
    from types import SimpleNamespace

    from textgan.config import load_config
    from textgan.sampling import _untrained_code

    def model(stage, code_source):
        cfg = load_config("tiny", overrides=[f"pretrain.code_source={code_source}"])
        return SimpleNamespace(stage=stage, config=cfg)

    assert _untrained_code(model("pretrain", "prior"))
    assert not _untrained_code(model("pretrain", "label"))  # a conditional VAE learnt c
    assert not _untrained_code(model("train", "prior"))
