"""When progress bars are drawn: textgan's own (tqdm) and those of the datasets library.

A bar redraws itself with carriage returns. On a terminal that is progress; in a log file or a
pipe it is a wall of half-lines (48 KB for a tiny run), so a bar is drawn only where it can
redraw in place: stderr is a terminal, or tqdm draws notebook widgets.

The data pipeline (reading, cleaning, labelling, carving, tokenising) is a chain of datasets
steps, each with its own bar. On a small corpus they are noise: 18 bars for 1,200 sentences, each
done in a few milliseconds, three of them labelled "Generating train split" for the valid and
test files too. `datasets_bars(rows)` therefore shows them only for steps over at least
`BAR_ROWS` rows: the steps run at 80,000-110,000 rows/s on 2 CPU cores (cleaning, labelling,
tokenising the tiny preset's corpus), so a step below that takes about a second or less, and the
log line each step writes says the same.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

BAR_ROWS = 100_000


def in_notebook() -> bool:
    """Whether tqdm.auto draws widgets (a Jupyter kernel), which need no terminal."""
    import tqdm.auto
    import tqdm.notebook

    return issubclass(tqdm.auto.tqdm, tqdm.notebook.tqdm)


def can_draw_bars() -> bool:
    """Whether a bar would redraw in place: a terminal on stderr, or a notebook."""
    stderr = sys.stderr
    try:
        terminal = stderr is not None and stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        terminal = False
    return terminal or in_notebook()


def show_bars(enabled: bool = True) -> bool:
    """Whether a bar the caller would show (`enabled`: no --no-progress) should be drawn."""
    return enabled and can_draw_bars()


@contextmanager
def datasets_bars(rows: int) -> Iterator[None]:
    """Inside the block, datasets draws its bars only for a step over `rows` >= BAR_ROWS rows
    and where `can_draw_bars`; otherwise they are off, and restored on exit.

    Bars that are already off (--no-progress, datasets.disable_progress_bars(),
    HF_DATASETS_DISABLE_PROGRESS_BARS=1) stay off; HF_DATASETS_DISABLE_PROGRESS_BARS=0 (the user
    forcing them on) is left alone, since datasets would refuse, with a warning, to turn them off.
    """
    import datasets
    import datasets.config

    if (datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is False
            or not datasets.is_progress_bar_enabled()
            or (rows >= BAR_ROWS and can_draw_bars())):
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()
