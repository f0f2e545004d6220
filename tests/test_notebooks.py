"""The notebooks in notebooks/: each runs to the end on a tiny trained run, and is committed
with its outputs stripped.

The kernel is a separate process, so conftest's redirections (monkeypatched functions) do not
reach it: it gets them as environment variables instead -- TEXTGAN_RUN_DIR (the run it reads),
TEXTGAN_SYNTHETIC_ROOT (where a synthetic corpus is looked for, never the repo's
corpora/synthetic/generated/) and HF_DATASETS_CACHE (datasets' cache files).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

import torch  # noqa: E402

import textgan.pretrain as pretrain  # noqa: E402
import textgan.train as train  # noqa: E402
from textgan.corpora.synthetic import SYNTHETIC_ROOT_ENV  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_corpus", "02_training_curves", "03_latent_space", "04_sampling_session"]
FAST = ["--preset", "tiny", "--no-progress"]
CELL_TIMEOUT = 120  # seconds per cell


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """A tiny run trained through both stages, and the environment a kernel needs to read it."""
    import datasets.config

    import textgan.corpora.synthetic as synthetic

    root = tmp_path_factory.mktemp("notebooks")
    run, corpora, cache = root / "run", root / "corpora", root / "hf-cache"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:  # module scope: conftest's redirections by hand
        patch.setattr(synthetic, "default_root", lambda: corpora)
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
        # One intra-op thread: models this small gain nothing from two, and on a machine whose
        # cores are busy with other work two threads wait on each other (measured: the pretrain
        # stage took 60 s with two threads beside another training job, 8 s with one).
        torch.set_num_threads(1)
        try:
            pretrain.main([*FAST, "--run-dir", str(run), "--pretrain.epochs=1"])
            train.main([*FAST, "--run-dir", str(run), "--train.epochs=1"])
        finally:
            torch.set_num_threads(threads)
    env = {**os.environ, "TEXTGAN_RUN_DIR": str(run), SYNTHETIC_ROOT_ENV: str(corpora),
           "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return run, env


def execute(name: str, env: dict[str, str], cwd: Path):
    """Run every cell of notebooks/<name>.ipynb in a fresh python3 kernel; the executed copy."""
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)  # a failing cell raises CellExecutionError with its traceback
    return notebook


def outputs(notebook, output_type: str, name: str | None = None) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code"
            for out in cell.outputs
            if out.output_type == output_type and (name is None or out.get("name") == name)]


def stdout(notebook) -> str:
    return "".join(out.text for out in outputs(notebook, "stream", "stdout"))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_the_notebook_runs_on_a_tiny_run(name, notebook_env, tmp_path):
    run, env = notebook_env
    notebook = execute(name, env, tmp_path)
    # Nothing on stderr: no warnings and no log records of WARNING or above.
    assert not outputs(notebook, "stream", "stderr"), \
        [out.text for out in outputs(notebook, "stream", "stderr")]
    text = stdout(notebook)
    if name == "01_corpus":
        assert "vocabulary:" in text and "most frequent cover" in text
    elif name == "02_training_curves":
        assert "train/tau" in text and "train/kl_per_dim_min" in text  # the tag listing
    elif name == "03_latent_space":
        assert "60 validation sentences" in text and "t=1.0" in text
    else:
        assert "[sentiment=" in text and "=> " in text  # samples per style, transfers
        assert (run / "quality_diversity.png").is_file() and (run / "report.json").is_file()
        assert any("image/png" in out.data for out in outputs(notebook, "display_data"))
        assert "BLEU-4 against the test split" in text


def test_the_four_notebooks_exist():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_committed_notebooks_are_stripped_and_start_with_what_they_show(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [], f"{path.name}: a cell has outputs; strip them"
        assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith("# ")
    # the parameters cell: the first code cell, overridable by the environment variable
    assert 'os.environ.get("TEXTGAN_RUN_DIR", "checkpoints/tiny")' in code[0].source
    assert "parameters" in code[0].metadata.get("tags", [])
