"""python -m textgan.corpora yelp: copy (--from) or download the Yelp files, checked, atomically.

Downloads come from an http.server on 127.0.0.1 in a thread of the test, serving a tmp folder;
the files are the slice of the real corpus in tests/data/yelp_slice.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from textgan.config import DataConfig
from textgan.corpora import load_corpus
from textgan.corpora.__main__ import main
from textgan.corpora.download import FILES, MAX_LINE_BYTES, README
from textgan.errors import CorpusError

SLICE = Path(__file__).resolve().parent / "data" / "yelp_slice"
TRAIN = ("sentiment.train.0", "sentiment.train.1")


@pytest.fixture(autouse=True)
def _no_proxy_for_the_local_server(monkeypatch):
    """A proxy configured on the machine must not intercept requests to 127.0.0.1."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def textgan_logs(caplog, monkeypatch):
    """caplog sees textgan's records even after some entry point set propagate=False."""
    monkeypatch.setattr(logging.getLogger("textgan"), "propagate", True)
    caplog.set_level(logging.INFO, logger="textgan")
    return caplog


def yelp(out: Path, *args: str) -> dict:
    return main(["yelp", "--out", str(out), "--no-progress", *args])


def full_corpus(folder: Path) -> Path:
    """The six files of a download, made from the slice: train as is, dev/test 20 lines each."""
    folder.mkdir()
    for label in ("0", "1"):
        lines = (SLICE / f"sentiment.train.{label}").read_bytes().splitlines(keepends=True)
        (folder / f"sentiment.train.{label}").write_bytes(b"".join(lines))
        (folder / f"sentiment.dev.{label}").write_bytes(b"".join(lines[:20]))
        (folder / f"sentiment.test.{label}").write_bytes(b"".join(lines[20:40]))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- a local web server


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # an access log line per request is noise in the test log


class CutShort(BaseHTTPRequestHandler):
    """Announces more bytes than it sends, then closes the connection: a download cut short."""

    def do_GET(self):
        body = b"the food was great .\n" * 50
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 1000))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002
        pass


@contextmanager
def serving(handler) -> Iterator[str]:
    """The base URL of an HTTP server on 127.0.0.1 answering with `handler`, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_folder(folder: Path):
    return serving(functools.partial(QuietFiles, directory=str(folder)))


# --------------------------------------------------------------------------- --from


def test_from_copies_the_slice_byte_for_byte_and_writes_a_readme(tmp_path, textgan_logs):
    out = tmp_path / "corpora" / "yelp"
    result = yelp(out, "--from", str(SLICE))
    assert result["command"] == "yelp" and result["status"] == "written"
    assert leftovers(out) == [README, *TRAIN]
    for name in TRAIN:
        assert (out / name).read_bytes() == (SLICE / name).read_bytes()
        assert result["files"][name] == {"bytes": (SLICE / name).stat().st_size,
                                         "sentences": 200}
    readme = (out / README).read_text(encoding="utf-8")
    assert "shentianxiao/language-style-transfer" in readme and "Apache-2.0" in readme
    assert "| `sentiment.train.0` | 200 |" in readme
    assert "first 200 lines" in readme  # the source folder's own README travels along
    messages = [r.getMessage() for r in textgan_logs.records]
    assert any(m.startswith("sentiment.train.1: ") and "200 sentences" in m for m in messages)


def test_the_written_folder_is_a_data_source(tmp_path):
    out = tmp_path / "yelp"
    yelp(out, "--from", str(SLICE))
    corpus = load_corpus(DataConfig(source=str(out)))
    assert corpus.attributes == {"sentiment": ["0", "1"]}
    assert sum(len(split) for split in corpus.splits.values()) == 399  # one sentence repeats


def test_a_complete_folder_is_left_alone_unless_forced(tmp_path, textgan_logs):
    out = tmp_path / "yelp"
    yelp(out, "--from", str(SLICE))
    (out / "sentiment.train.0").write_text("edited by hand .\n", encoding="utf-8")
    again = yelp(out, "--from", str(SLICE))
    assert again["status"] == "complete"
    assert (out / "sentiment.train.0").read_text(encoding="utf-8") == "edited by hand .\n"
    assert any("already holds the Yelp corpus" in r.getMessage() and "--force" in r.getMessage()
               for r in textgan_logs.records)
    forced = yelp(out, "--from", str(SLICE), "--force")
    assert forced["status"] == "written"
    assert (out / "sentiment.train.0").read_bytes() == (SLICE / "sentiment.train.0").read_bytes()
    assert leftovers(out) == [README, *TRAIN]


def test_force_drops_files_the_new_source_lacks(tmp_path):
    full = full_corpus(tmp_path / "full")
    out = tmp_path / "yelp"
    assert len(yelp(out, "--from", str(full))["files"]) == 6
    yelp(out, "--from", str(SLICE), "--force")
    assert leftovers(out) == [README, *TRAIN]


def test_from_copies_whichever_of_the_six_files_exist(tmp_path):
    source = full_corpus(tmp_path / "source")
    (source / "sentiment.test.0").unlink()
    (source / "sentiment.test.1").unlink()
    (source / "notes.txt").write_text("not part of the corpus\n", encoding="utf-8")
    result = yelp(tmp_path / "yelp", "--from", str(source))
    assert sorted(result["files"]) == sorted(["sentiment.dev.0", "sentiment.dev.1", *TRAIN])
    assert result["files"]["sentiment.dev.1"]["sentences"] == 20


def test_from_requires_both_train_files(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "sentiment.train.0").write_bytes((SLICE / "sentiment.train.0").read_bytes())
    with pytest.raises(CorpusError, match=r"--from .*source: no sentiment.train.1; .*must hold"):
        yelp(tmp_path / "yelp", "--from", str(source))
    with pytest.raises(CorpusError, match="no such folder"):
        yelp(tmp_path / "yelp", "--from", str(tmp_path / "nowhere"))
    assert not (tmp_path / "yelp").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\n\n", "the file is empty"),
    (b"good food .\nbad\x00food .\n", "line 2 holds NUL bytes"),
    (b"good food .\nbad \xff\xfe food .\n", "line 2 is not UTF-8"),
    (b"\n<!DOCTYPE html>\n<html><body>rate limited</body></html>\n", "an HTML page"),
    (b"good food .\n" + b"a" * (MAX_LINE_BYTES + 1) + b"\n", "line 2 is longer than"),
])
def test_a_file_that_is_not_one_sentence_per_line_is_refused(tmp_path, content, message):
    source = tmp_path / "source"
    source.mkdir()
    (source / "sentiment.train.0").write_bytes((SLICE / "sentiment.train.0").read_bytes())
    (source / "sentiment.train.1").write_bytes(content)  # the second file: the first was staged
    with pytest.raises(CorpusError, match=f"sentiment.train.1 from .*source: {message}"):
        yelp(tmp_path / "yelp", "--from", str(source))
    assert not (tmp_path / "yelp").exists()


def test_a_refused_copy_leaves_an_existing_folder_as_it_was(tmp_path):
    out = tmp_path / "yelp"
    out.mkdir()
    (out / "sentiment.train.0").write_text("an earlier , incomplete copy .\n", encoding="utf-8")
    source = tmp_path / "source"
    source.mkdir()
    (source / "sentiment.train.0").write_bytes((SLICE / "sentiment.train.0").read_bytes())
    (source / "sentiment.train.1").write_bytes(b"\x00" * 64)
    with pytest.raises(CorpusError, match="NUL bytes"):
        yelp(out, "--from", str(source))
    assert leftovers(out) == ["sentiment.train.0"]  # no temporary file, the old file untouched
    assert (out / "sentiment.train.0").read_text(encoding="utf-8") == (
        "an earlier , incomplete copy .\n")


def test_an_output_folder_with_other_files_is_refused(tmp_path):
    out = tmp_path / "corpora"
    out.mkdir()
    (out / "mine.csv").write_text("text\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"holds files that are not part of the Yelp corpus "
                                          r"\(mine.csv\); choose a new or empty folder"):
        yelp(out, "--from", str(SLICE))
    assert leftovers(out) == ["mine.csv"]
    a_file = tmp_path / "taken"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match="is not a folder"):
        yelp(a_file, "--from", str(SLICE))


# --------------------------------------------------------------------------- downloads


def test_download_from_a_web_server(tmp_path, textgan_logs):
    served = full_corpus(tmp_path / "served")
    out = tmp_path / "yelp"
    with serve_folder(served) as url:
        result = main(["yelp", "--out", str(out), "--url", url + "/"])  # with the progress bar
    assert result["status"] == "written" and result["origin"] == url + "/"
    assert leftovers(out) == sorted([README, *FILES])
    for name in FILES:
        assert (out / name).read_bytes() == (served / name).read_bytes()
    readme = (out / README).read_text(encoding="utf-8")
    assert f"Downloaded from {url}/" in readme and "Apache-2.0" in readme
    assert "| `sentiment.test.1` | 20 |" in readme
    assert sum("sentences" in r.getMessage() for r in textgan_logs.records) == 6 + 1


def test_a_missing_file_on_the_server_is_a_clear_error_and_leaves_nothing(tmp_path):
    served = full_corpus(tmp_path / "served")
    (served / "sentiment.test.1").unlink()  # the last file: five were fetched before it
    out = tmp_path / "corpora" / "yelp"
    with serve_folder(served) as url, pytest.raises(CorpusError) as caught:
        yelp(out, "--url", url)
    message = str(caught.value)
    assert f"cannot download {url}/sentiment.test.1: HTTP 404" in message
    assert "check the connection" in message and "--from PATH" in message
    assert not (tmp_path / "corpora").exists()  # nor the parent folder it created


def test_a_download_cut_short_is_refused_and_leaves_nothing(tmp_path):
    out = tmp_path / "yelp"
    with serving(CutShort) as url, pytest.raises(
            CorpusError, match=r"download of .*/sentiment.train.0 is incomplete: 1,050 of 2,050 "
                               r"bytes arrived; nothing was kept"):
        yelp(out, "--url", url)
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    (gzip.compress(b"good food .\n", mtime=0), "line 1 holds NUL bytes"),  # gzip unasked
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1 is not UTF-8"),
    (b"<html><head><title>404</title></head><body>not here</body></html>\n", "an HTML page"),
])
def test_a_malformed_download_is_refused_and_leaves_nothing(tmp_path, content, message):
    served = full_corpus(tmp_path / "served")
    (served / "sentiment.dev.0").write_bytes(content)
    out = tmp_path / "yelp"
    with serve_folder(served) as url, pytest.raises(
            CorpusError, match=f"sentiment.dev.0 from http://127.0.0.1:.*: {message}"):
        yelp(out, "--url", url)
    assert not out.exists()


def test_an_unreachable_host_names_the_url_and_the_way_out(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/yelp"
    with pytest.raises(CorpusError, match=rf"cannot reach {url}/sentiment.train.0: .*check the "
                                          r"connection .* --from PATH"):
        yelp(tmp_path / "yelp", "--url", url)
    assert not (tmp_path / "yelp").exists()


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgan.corpora", "yelp", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "error"})


def test_cli_errors_are_one_clean_line_with_exit_status_2(tmp_path):
    with serve_folder(tmp_path) as url:  # an empty folder: every file is a 404
        done = run_cli("--out", "yelp", "--url", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download ") and (
        "HTTP 404" in lines[0]), lines
    assert not (tmp_path / "yelp").exists()
    done = run_cli("--out", "yelp", "--from", "nowhere", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: --from ")
    assert len(done.stderr.splitlines()) == 1


def test_cli_copies_and_logs_each_file(tmp_path):
    done = run_cli("--out", "corpora/yelp", "--from", str(SLICE), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sentiment.train.0: 9.3 KB, 200 sentences" in done.stderr
    assert "Traceback" not in done.stderr
    assert leftovers(tmp_path / "corpora" / "yelp") == [README, *TRAIN]


def test_help_explains_the_command_in_user_terms(capsys):
    with pytest.raises(SystemExit) as done:
        main(["yelp", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("--from PATH", "--force", "--url BASE", "--no-progress", "Apache-2.0",
                   "sentiment.dev.0", "data.valid_size", "nothing is left behind"):
        assert phrase in text, phrase


def test_ctrl_c_mid_copy_leaves_nothing(tmp_path, monkeypatch):
    import textgan.corpora.download as download

    checked = []

    def interrupted_on_the_second_file(path, name, origin):
        checked.append(name)
        if len(checked) == 2:
            raise KeyboardInterrupt
        return real(path, name, origin)

    real = download.validate_file
    monkeypatch.setattr(download, "validate_file", interrupted_on_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        yelp(tmp_path / "new" / "yelp", "--from", str(SLICE))
    assert checked == list(TRAIN) and not (tmp_path / "new").exists()
