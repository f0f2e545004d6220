"""Shared fixtures. Tests are hermetic: no network, HF caches in tmp folders, CPU only."""

import os

# datasets reads these once, at import time: set them before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`-n 2`, the README's command) each worker is one process of several on
# the machine's cores: one OpenMP thread each, and for the programs the tests start, or the
# workers' threads spin against each other (a 20x slowdown on 2 cores). Set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402

from textgan.config import load_config  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="device of the tests that take the `device` fixture (the precision and "
                          "compiled-step checks): cpu, as CI runs them, or cuda on a GPU machine")


@pytest.fixture(scope="session")
def device(request):
    """The device named by --device; CI and the README's command use the CPU."""
    import torch

    chosen = torch.device(request.config.getoption("--device"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        pytest.exit("--device cuda, but torch sees no CUDA GPU", returncode=2)
    return chosen


def pytest_configure(config):
    # datasets draws a progress bar per map; in a test log they are noise, not progress.
    import datasets

    datasets.disable_progress_bars()


@pytest.fixture(autouse=True)
def _hf_cache_in_tmp(tmp_path, monkeypatch):
    """Keep every datasets cache file of a test inside that test's tmp folder."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(autouse=True)
def _synthetic_corpora_in_tmp(request, tmp_path_factory, monkeypatch):
    """Generated synthetic corpora go to one folder per test session, never into the repo."""
    import textgan.corpora.synthetic as synthetic

    if request.node.get_closest_marker("real_synthetic_root"):
        return
    root = tmp_path_factory.getbasetemp() / "synthetic-corpora"
    monkeypatch.setattr(synthetic, "default_root", lambda: root)


@pytest.fixture
def tiny_config():
    """The tiny preset, as the tests' starting point (override fields per test)."""
    return load_config("tiny")
