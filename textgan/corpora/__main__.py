"""Corpus tools on the command line (CPU only; seconds, or the time of a download).

    python -m textgan.corpora synthetic --n 20000 --seed 0 --out corpora/synthetic/my-corpus
    python -m textgan.corpora grammar        # size of the synthetic language, its vocabulary
    python -m textgan.corpora yelp --out corpora/yelp   # real review text (download or --from)

`synthetic` writes train.jsonl, valid.jsonl and test.jsonl (one {"text", "sentiment", "tense"}
object per line, the format textgan reads from users) and logs the split sizes and label
balance. `grammar` logs the exact size of the language and its word classes. `yelp` fetches
the Yelp review sentences of Shen et al. 2017 (negative/positive), checked, into a folder that
data.source can name.
"""

# Each subcommand is a function `_run_<name>(args) -> dict`; add one with `_add_<name>` below.
# (A comment, not the docstring: the docstring is --help's description.)

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

from textgan.cli import HelpFormatter, run_main
from textgan.errors import CorpusError

log = logging.getLogger("textgan.corpora")


def _add_synthetic(subparsers: Any) -> None:
    from textgan.corpora.synthetic import DEFAULT_FRACTIONS

    parser = subparsers.add_parser(
        "synthetic", formatter_class=HelpFormatter,
        help="generate the synthetic review corpus (exact oracle) as train/valid/test files",
        description="Sample distinct sentences of the synthetic review language (attributes\n"
                    "sentiment negative/positive and tense past/present, independent of each\n"
                    "other and of the content) and write train.jsonl, valid.jsonl and\n"
                    "test.jsonl. The same --n and --seed always give the same files.")
    # SUPPRESS: a required flag has no default worth showing in --help.
    parser.add_argument("--n", type=int, required=True, default=argparse.SUPPRESS,
                        help="number of distinct sentences over all splits")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--out", required=True, metavar="DIR", default=argparse.SUPPRESS,
                        help="output folder: new, empty, or holding a previous corpus "
                             "(which is replaced)")
    parser.add_argument("--fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS),
                        metavar=("TRAIN", "VALID", "TEST"),
                        help="share of the sentences in each split (sum 1)")
    parser.set_defaults(run=_run_synthetic)


def _run_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    from textgan.corpora.synthetic import label_summary, write_corpus

    if args.n < 1:
        raise CorpusError(f"--n must be at least 1, got {args.n}")
    paths = write_corpus(args.out, args.n, args.seed, fractions=tuple(args.fractions))
    summary = label_summary(paths)
    log.info("wrote %d sentences (seed %d) to %s", args.n, args.seed, paths["train"].parent)
    for split, info in summary.items():
        balance = "; ".join(f"{attribute} " + ", ".join(f"{v} {c}" for v, c in counts.items())
                            for attribute, counts in info["labels"].items())
        log.info("  %-5s %6d sentences  %s", split, info["sentences"], balance)
    return {"command": "synthetic", "files": {s: str(p) for s, p in paths.items()},
            "splits": summary}


def _add_grammar(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "grammar", formatter_class=HelpFormatter,
        help="describe the synthetic language: vocabulary, patterns, exact number of sentences",
        description="Compile the synthetic grammar (textgan/corpora/grammar.py), check it, and\n"
                    "log its figures as JSON.")
    parser.set_defaults(run=_run_grammar)


def _run_grammar(args: argparse.Namespace) -> dict[str, Any]:
    from textgan.corpora.language import default_language

    stats = default_language().stats()
    log.info("synthetic language: %s", json.dumps(stats))
    return {"command": "grammar", **stats}


def _add_yelp(subparsers: Any) -> None:
    from textgan.corpora.download import DEFAULT_URL

    parser = subparsers.add_parser(
        "yelp", formatter_class=HelpFormatter,
        help="download the Yelp review corpus (sentiment 0 negative / 1 positive), or copy an "
             "offline copy with --from",
        description="Download the Yelp review sentences of Shen et al. 2017 (github.com/\n"
                    "shentianxiao/language-style-transfer, license Apache-2.0) into a folder\n"
                    "that data.source can name:\n\n"
                    "  sentiment.train.0  sentiment.train.1   training sentences, "
                    "negative / positive\n"
                    "  sentiment.dev.0    sentiment.dev.1     validation sentences\n"
                    "  sentiment.test.0   sentiment.test.1    test sentences\n"
                    "  README.md                              where they came from, "
                    "sentence counts\n\n"
                    "Every file is checked to be plain UTF-8 text, one sentence per line. If a\n"
                    "download fails or is interrupted nothing is left behind (no partial file,\n"
                    "no new folder): just run the command again. A folder that already holds\n"
                    "the corpus is left as it is unless --force.\n\n"
                    "Without internet access, copy a folder you already have with --from PATH.\n"
                    "It must hold at least sentiment.train.0 and sentiment.train.1; without\n"
                    "dev/test files, set data.valid_size and data.test_size to hold out\n"
                    "sentences for validation and test.\n\n"
                    "  python -m textgan.corpora yelp --out corpora/yelp\n"
                    "  python -m textgan.corpora yelp --out corpora/yelp --from /data/yelp")
    parser.add_argument("--out", required=True, metavar="DIR", default=argparse.SUPPRESS,
                        help="output folder: new, empty, or holding a previous Yelp download")
    origin = parser.add_mutually_exclusive_group()
    origin.add_argument("--url", metavar="BASE", default=DEFAULT_URL,
                        help="web address of the folder holding the six files (a mirror)")
    origin.add_argument("--from", dest="source", metavar="PATH", default=argparse.SUPPRESS,
                        help="copy the files from this folder instead of downloading them")
    parser.add_argument("--force", action="store_true",
                        help="replace a folder that already holds the corpus")
    parser.add_argument("--no-progress", action="store_true", help="hide the download bars")
    parser.set_defaults(run=_run_yelp)


def _run_yelp(args: argparse.Namespace) -> dict[str, Any]:
    from textgan.corpora.bars import show_bars
    from textgan.corpora.download import fetch_yelp

    result = fetch_yelp(args.out, url=args.url, source=getattr(args, "source", None),
                        force=args.force, progress=show_bars(not args.no_progress))
    return {"command": "yelp", **result}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textgan.corpora", description=__doc__,
                                     formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_synthetic(subparsers)
    _add_grammar(subparsers)
    _add_yelp(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run one subcommand; returns what it did (tests read this)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    run_main(main)
