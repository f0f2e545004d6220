"""Fetch the Yelp sentiment corpus of Shen et al. 2017 into a folder textgan reads as data.source.

    fetch_yelp("corpora/yelp")                                   # download from GitHub
    fetch_yelp("corpora/yelp", source="/data/yelp-copy")         # copy an offline copy

The files are `sentiment.{train,dev,test}.{0,1}` (one sentence per line, class 0 negative, 1
positive) of github.com/shentianxiao/language-style-transfer, data/yelp, under Apache-2.0.

Nothing half-done is ever left behind: every file goes to a hidden temporary file inside the
output folder, is checked to be one sentence per line, and is renamed into place only after all
of them passed; a failure removes the temporary files, and the folders this run created (the
output folder, and parents that did not exist). README.md is written last, so a folder with it
is complete.
"""

from __future__ import annotations

import http.client
import logging
import os
import secrets
import shutil
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from textgan.errors import CorpusError

log = logging.getLogger(__name__)

REPOSITORY = "shentianxiao/language-style-transfer"
DEFAULT_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/master/data/yelp"
FILES = tuple(f"sentiment.{split}.{label}" for split in ("train", "dev", "test")
              for label in (0, 1))
REQUIRED = ("sentiment.train.0", "sentiment.train.1")
README = "README.md"

# Generous: Shen's sentences have at most 15 words; a longer "line" is a binary or minified file.
MAX_LINE_BYTES = 10_000
CHUNK_BYTES = 1 << 20
# Seconds a connection may stay silent (connect or read) before the download counts as failed.
TIMEOUT_S = 60
_TEMP_PREFIX = ".yelp-part-"


@dataclass(frozen=True)
class FileInfo:
    name: str
    bytes: int
    sentences: int


def fetch_yelp(out: str | Path, *, url: str = DEFAULT_URL, source: str | Path | None = None,
               force: bool = False, progress: bool = True) -> dict:
    """Download (or copy from `source`) the Yelp files into `out`; see the module doc.

    Returns {"out", "origin", "status": "written" | "complete", "files": {name: {bytes,
    sentences}}}; an already complete `out` is left as it is unless `force`.
    """
    out = Path(out).expanduser().resolve()
    origin = str(Path(source).expanduser().resolve()) if source is not None else url
    _check_target(out)
    if not force and is_complete(out):
        files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.name in FILES}
        log.info("%s already holds the Yelp corpus (%s); use --force to replace it", out,
                 ", ".join(files))
        return {"out": str(out), "origin": None, "status": "complete",
                "files": {name: {"bytes": size} for name, size in files.items()}}
    names = _names_in(Path(origin)) if source is not None else list(FILES)
    created = _first_missing(out)
    staged: dict[str, Path] = {}
    try:
        _make_folder(out)
        infos = [_stage(name, out, staged, url, source, origin, progress) for name in names]
        _install(out, staged, infos, origin, source)
    except BaseException:
        # also on Ctrl-C: no temporary file, and no folder this run made, may outlive it
        for path in staged.values():
            path.unlink(missing_ok=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    log.info("wrote %d files (%s sentences) and %s to %s", len(infos),
             f"{sum(i.sentences for i in infos):,}", README, out)
    return {"out": str(out), "origin": origin, "status": "written",
            "files": {i.name: {"bytes": i.bytes, "sentences": i.sentences} for i in infos}}


def _stage(name: str, out: Path, staged: dict[str, Path], url: str, source: str | Path | None,
           origin: str, progress: bool) -> FileInfo:
    """Fetch one file into a temporary file of `out` (recorded in `staged`), and check it."""
    staged[name] = _temporary(out, name)
    if source is None:
        _download(f"{url.rstrip('/')}/{name}", staged[name], name, progress)
    else:
        _copy(Path(origin) / name, staged[name])
    info = validate_file(staged[name], name, origin)
    log.info("%s: %s, %s sentences", name, _size(info.bytes), f"{info.sentences:,}")
    return info


def is_complete(out: Path) -> bool:
    """A folder a previous run finished: README.md (written last) and both train files."""
    return out.is_dir() and all((out / name).is_file() for name in (README, *REQUIRED))


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out} exists and is not a folder; choose a folder")
    if out.is_dir():
        # hidden files are allowed (a killed run's temporary files, .DS_Store): textgan skips them
        others = sorted(p.name for p in out.iterdir()
                        if p.name not in (*FILES, README) and not p.name.startswith("."))
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise CorpusError(f"--out {out} holds files that are not part of the Yelp corpus "
                              f"({shown}); choose a new or empty folder")


def _first_missing(out: Path) -> Path | None:
    """The outermost folder of out's path that does not exist yet (None if out exists): what a
    failed run must remove again."""
    missing = None
    for folder in (out, *out.parents):
        if folder.exists():
            return missing
        missing = folder
    return missing


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CorpusError(f"cannot create the output folder {out}: {error.strerror}") from None


def _names_in(source: Path) -> list[str]:
    """The Yelp files a --from folder holds; both train files are required."""
    if not source.is_dir():
        raise CorpusError(f"--from {source}: no such folder; give the folder that holds "
                          "sentiment.train.0 and sentiment.train.1")
    names = [name for name in FILES if (source / name).is_file()]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise CorpusError(f"--from {source}: no {' or '.join(missing)}; the folder must hold "
                          f"at least sentiment.train.0 and sentiment.train.1 (found "
                          f"{', '.join(names) or 'none of the Yelp files'})")
    return names


def _temporary(out: Path, name: str) -> Path:
    # hidden, so that data.source ignores it should a run be killed before it is cleaned up
    return out / f"{_TEMP_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}"


def _download(url: str, target: Path, name: str, progress: bool) -> None:
    """Stream url into target; any failure, or fewer bytes than announced, is a CorpusError."""
    fix = "check the connection and the address, or copy an offline copy with --from PATH"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length")
            expected = int(announced) if announced and announced.isdigit() else None
            received = _stream(response, target, expected, name, progress)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the open response; left open it warns when collected
        raise CorpusError(f"cannot download {url}: HTTP {error.code} {error.reason}; "
                          f"{fix}") from None
    except urllib.error.URLError as error:
        raise CorpusError(f"cannot reach {url}: {error.reason}; {fix}") from None
    except (http.client.HTTPException, OSError) as error:
        # a cut connection (reset, IncompleteRead of a chunked reply, a stalled read)
        raise CorpusError(f"download of {url} broke off ({error.__class__.__name__}: {error}); "
                          f"nothing was kept; try again, or {fix}") from None
    if expected is not None and received != expected:
        raise CorpusError(f"download of {url} is incomplete: {received:,} of {expected:,} bytes "
                          f"arrived; nothing was kept; try again, or {fix}")


def _stream(response: http.client.HTTPResponse, target: Path, expected: int | None, name: str,
            progress: bool) -> int:
    received = 0
    with open(target, "wb") as f, tqdm(total=expected, unit="B", unit_scale=True, desc=name,
                                       leave=False, disable=not progress) as bar:
        # read() with a size returns b"" early when the server closes the connection before
        # Content-Length bytes arrived (no IncompleteRead), so the caller compares the count
        while chunk := response.read(CHUNK_BYTES):
            f.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())  # the rename must not publish a file still in the page cache
    return received


def _copy(path: Path, target: Path) -> None:
    try:
        shutil.copyfile(path, target)
    except OSError as error:
        raise CorpusError(f"cannot copy {path}: {error.strerror}; check the --from folder"
                          ) from None


def validate_file(path: Path, name: str, origin: str) -> FileInfo:
    """The file's size and sentence count, or a CorpusError if it is not one sentence per line:
    empty, binary (NUL bytes), not UTF-8, an HTML page, or a line longer than MAX_LINE_BYTES."""
    where = f"{name} from {origin}"
    sentences = 0
    with open(path, "rb") as f:
        for number, line in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise CorpusError(f"{where}: line {number} is longer than {MAX_LINE_BYTES:,} "
                                  "bytes, so this is not one sentence per line; check the source")
            if b"\0" in line:
                raise CorpusError(f"{where}: line {number} holds NUL bytes, so this is a binary "
                                  "file, not one sentence per line; check the source")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise CorpusError(f"{where}: line {number} is not UTF-8 text; check the source"
                                  ) from None
            if sentences == 0 and _looks_like_html(text):
                raise CorpusError(f"{where}: an HTML page, not one sentence per line (an error "
                                  "or login page?); check the address or the --from folder")
            sentences += bool(text.strip())
    if sentences == 0:
        raise CorpusError(f"{where}: the file is empty; check the source")
    return FileInfo(name=name, bytes=path.stat().st_size, sentences=sentences)


def _looks_like_html(first_text: str) -> bool:
    start = first_text.lstrip("\ufeff \t\r\n").lower()
    return start.startswith(("<!doctype", "<html", "<head", "<body", "<?xml"))


def _install(out: Path, staged: dict[str, Path], infos: list[FileInfo], origin: str,
             source: str | Path | None) -> None:
    """Publish the checked files: README.md goes first (the folder is incomplete meanwhile) and
    comes back last; Yelp files of an earlier corpus that this one lacks are removed."""
    (out / README).unlink(missing_ok=True)
    for name, path in staged.items():
        os.replace(path, out / name)
    for name in FILES:
        if name not in staged:
            (out / name).unlink(missing_ok=True)
    with _atomic_text(out / README) as f:
        f.write(readme_text(infos, origin, source))


@contextmanager
def _atomic_text(path: Path) -> Iterator:
    tmp = _temporary(path.parent, path.name)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def readme_text(infos: list[FileInfo], origin: str, source: str | Path | None) -> str:
    rows = "\n".join(f"| `{i.name}` | {i.sentences:,} | {i.bytes:,} |" for i in infos)
    if source is None:
        how = (f"Downloaded from {origin} by `python -m textgan.corpora yelp`: the files "
               f"`data/yelp/sentiment.{{train,dev,test}}.{{0,1}}` of the GitHub repository "
               f"[{REPOSITORY}](https://github.com/{REPOSITORY}), byte for byte.")
    else:
        how = (f"Copied byte for byte from {origin} by `python -m textgan.corpora yelp --from`, "
               f"an offline copy of files of the GitHub repository "
               f"[{REPOSITORY}](https://github.com/{REPOSITORY}), data/yelp.")
        if (Path(origin) / README).is_file():
            how += " That folder's own README, below, says which files they are."
    text = f"""# Yelp reviews, sentiment (Shen et al. 2017)

{textwrap.fill(how, width=96, break_long_words=False, break_on_hyphens=False)}

Source: the Yelp corpus distributed with Shen et al. 2017, "Style Transfer from Non-Parallel
Text by Cross-Alignment" (NIPS); license Apache-2.0 (that repository's license). The reviews
originally come from the Yelp Dataset Challenge.

Lowercased, tokenised English sentences, one per line; the file name is ATTRIBUTE.SPLIT.CLASS,
class 0 negative, 1 positive. Use this folder as `data.source`; without dev/test files, carve
them from train with `data.valid_size` and `data.test_size` (or the fractions).

| File | Sentences | Bytes |
|---|---|---|
{rows}
"""
    if source is not None and (Path(origin) / README).is_file():
        # the copy's own account of its files travels with them (it may differ from Shen's split)
        own = (Path(origin) / README).read_text(encoding="utf-8", errors="replace")
        text += f"\n## README of {origin}\n\n" + _demoted(own)
    return text


def _demoted(markdown: str) -> str:
    """The text with every heading two levels down, to sit under a level-2 heading."""
    return "".join("##" + line if line.startswith("#") else line
                   for line in markdown.splitlines(keepends=True))


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} KB" if n >= 1000 else f"{n} B"
