"""Real text: the yelp preset end to end on a slice of the real corpus (tests/data/yelp_slice, 400
sentences), from getting the corpus as a user would to the evaluation report, in seconds.

The preset's own sizes take an hour on 2 CPU cores; here only the sizes and schedules shrink,
so the path (word vocabulary, attention with memory dropout, tied output, the transfer loss,
carved splits, bounded validation, judges without an oracle) is the preset's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import textgan.evaluate as evaluate
import textgan.pretrain as pretrain
import textgan.train as train
from textgan.config import load_config
from textgan.corpora.__main__ import main as corpora_main
from textgan.errors import CorpusError
from textgan.sampling import load_for_inference, transfer

SLICE = Path(__file__).parent / "data" / "yelp_slice"
# the yelp preset, shrunk: the same features at sizes that train in seconds
SMALL = ["--preset", "yelp", "--no-progress", "--data.valid_size=40", "--data.test_size=40",
         "--data.valid_sample=24", "--data.batch_size=32", "--tokenizer.vocab_size=600",
         "--model.embedding_dim=16", "--model.hidden_dim=24", "--model.z_dim=4",
         "--discriminator.embedding_dim=16", "--discriminator.filters=8",
         "--pretrain.epochs=2", "--pretrain.kl_ramp_steps=10", "--pretrain.checkpoint_every=0",
         "--pretrain.log_every=5", "--train.epochs=1", "--train.d_warmup_steps=3",
         "--train.tau_steps=10", "--train.checkpoint_every=0", "--train.log_every=5",
         "--train.generated_batch_size=8",
         # salience is a ratio of counts: 200 sentences a class reach ~5 where 110k reach 15
         "--model.style_marker_salience=5"]
EVAL = ["--n", "20", "--transfer-n", "10", "--iw-samples", "2", "--no-curve", "--no-progress",
        "--judge-epochs", "1"]


def test_the_yelp_preset_reads_corpora_yelp_with_carved_splits_and_attention():
    cfg = load_config("yelp")
    assert cfg.data.source == "corpora/yelp"
    assert (cfg.data.valid_size, cfg.data.test_size) == (2000, 1000)
    assert cfg.tokenizer.model_type == "word" and cfg.tokenizer.vocab_size >= 9000
    assert cfg.model.attention and cfg.train.lambda_t > 0
    assert cfg.model.style_marker_salience > 0


def test_a_missing_yelp_folder_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no corpora/yelp here
    with pytest.raises(CorpusError, match=r"python -m textgan.corpora yelp --out corpora/yelp"):
        pretrain.main(["--preset", "yelp", "--no-progress", "--run-dir", str(tmp_path / "run")])


@pytest.fixture(scope="module")
def yelp_run(tmp_path_factory):
    """The README's Yelp commands on the slice: get the corpus, pretrain, train, evaluate."""
    import datasets.config

    root = tmp_path_factory.mktemp("yelp")
    corpus, run = root / "corpora" / "yelp", root / "run"
    with pytest.MonkeyPatch.context() as patch:  # module scope: conftest's redirections by hand
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf-cache"))
        corpora_main(["yelp", "--out", str(corpus), "--from", str(SLICE), "--no-progress"])
        args = [*SMALL, "--run-dir", str(run), f"--data.source={corpus}"]
        pretrained = pretrain.main(args)
        trained = train.main(args)
        report = evaluate.main(["--run-dir", str(run), *EVAL])
    return run, pretrained, trained, report


def test_the_slice_runs_pretrain_train_and_evaluate(yelp_run):
    run, _, _, report = yelp_run
    assert (run / "report.md").is_file() and (run / "judges" / "judges.json").is_file()
    transfer_report = report["transfer"]
    assert transfer_report  # transfer of the test split to the other sentiment was scored
    assert report["judges"]["classifier_test_accuracy"]["sentiment"] is not None


def test_a_trained_slice_model_transfers_with_its_source_as_memory(yelp_run):
    run = yelp_run[0]
    model = load_for_inference(run)
    assert model.generator.attention is not None
    moved = transfer(model, ["the food was great .", "the service was slow ."],
                     {"sentiment": "0"})
    # a model this small may write little; what matters is that the path runs end to end
    assert [m.target_style["sentiment"] for m in moved] == ["0", "0"]
    assert [m.source for m in moved] == ["the food was great .", "the service was slow ."]


def test_the_trained_encoder_hides_the_style_markers_of_the_slice(yelp_run):
    model = load_for_inference(yelp_run[0])
    markers = model.encoder.style_markers
    hidden = {model.tokenizer.id_to_piece(i) for i in markers.nonzero().flatten().tolist()}
    assert {"\u2581great", "\u2581bad"} <= hidden and "\u2581the" not in hidden
    assert 0 < len(hidden) < markers.shape[0] // 4
