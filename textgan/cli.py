"""Command-line plumbing shared by the entry points: config flags, logging, clean errors.

Every entry point is `main(argv) -> dict` (tests call it directly) plus

    if __name__ == "__main__":
        run_main(main)

which turns a TextganError (a user's mistake) into a one-line message and exit status 2, and
Ctrl-C into exit status 130, instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from textgan.config import PRESETS, Config, apply_override, describe, load_config
from textgan.errors import ConfigError, TextganError

log = logging.getLogger("textgan")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the module docstring's line breaks and show every flag's default."""


def whole_number(text: str) -> int:
    """argparse type: an int, with a one-line error for anything else."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def non_negative_int(text: str) -> int:
    """argparse type: an int of at least 0."""
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int of at least 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_numbers(text: str) -> list[float]:
    """argparse type: comma-separated numbers, each > 0 (temperatures, style strengths)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 1,1.5,2, got '{text}'") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one number, e.g. 1")
    if not all(value > 0 for value in values):  # nan too
        raise argparse.ArgumentTypeError(f"every number must be > 0, got '{text}'")
    return values


def probability(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got '{text}'") from None
    if not 0.0 < value <= 1.0:  # nan too
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def add_transfer_arguments(parser: argparse.ArgumentParser) -> None:
    """--style-strengths and --min-confidence: how style transfer decodes, by default as the
    run's [transfer] config says (textgan.sampling.transfer)."""
    parser.add_argument(
        "--style-strengths", metavar="S,S,...", type=positive_numbers, default=None,
        help="style code strengths tried in turn for each transfer, e.g. 1,1.5,2: a sentence "
             "whose rewrite the model's discriminator does not read as the requested style "
             "(--min-confidence) is rewritten again with a stronger code (default: the run's "
             "transfer.style_strengths; 1 = one plain rewrite)")
    parser.add_argument(
        "--min-confidence", metavar="P", type=probability, default=None,
        help="the discriminator's probability of the requested style at which a rewrite is "
             "kept (default: the run's transfer.min_confidence)")


HELP_FLAGS = ("-h", "--help")


def config_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A parser with --preset and --config; `section.field=value` overrides pass through.

    Its --help lists every config key with the value the command would start a run folder
    with: the chosen preset's (the default preset's when none is given), changed by --config
    and the overrides on the same command line (`parse_config_args` fills it in).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=HelpFormatter, add_help=False)
    parser.add_argument(*HELP_FLAGS, dest="help", action="store_true", default=argparse.SUPPRESS,
                        help="show this help, with the config values of the chosen --preset, "
                             "--config and overrides, and exit")
    parser.add_argument("--preset", default=None, choices=PRESETS,
                        help="configs/<preset>.toml: tiny (seconds, tests), default (CPU, "
                             "minutes), yelp (real review text), paper (Hu et al. sizes, GPU); "
                             "'default' when omitted")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML file applied on top of the preset")
    return parser


def config_help(preset: str | None, config_file: str | None,
                overrides: Sequence[str] = ()) -> str:
    """The config part of --help: every key with the value a run would start with."""
    chosen = f"preset '{preset or 'default'}'" + (f" + {config_file}" if config_file else "")
    if overrides:
        chosen += " + the overrides given"
    return ("Any config key can be overridden as --section.field=value (e.g. --model.z_dim=16 "
            "--data.source=my.csv).\n\n"
            f"Config keys with their values for {chosen}: what a new run folder\n"
            "starts with ('built-in': the value without a preset; --preset NAME --help shows\n"
            "another preset's). A run folder that already holds config.toml resumes with that\n"
            "config instead, and only runtime keys may change.\n\n"
            + describe(load_config(preset or "default", config_file, overrides),
                       baseline=Config()))


def _is_override(item: str) -> bool:
    return item.startswith("--") and "=" in item


def parse_config_args(parser: argparse.ArgumentParser,
                      argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the entry point's own flags; the rest must be `--section.field=value` overrides.

    --help (from `config_parser`) prints the help with the chosen preset's values and exits.
    """
    args, rest = parser.parse_known_args(argv)
    overrides = [item for item in rest if _is_override(item)]
    if getattr(args, "help", False):
        parser.epilog = config_help(args.preset, args.config, overrides)
        parser.print_help()
        parser.exit()
    if hasattr(args, "help"):
        del args.help
    stray = [item for item in rest if item not in overrides]
    if stray:
        raise ConfigError(f"unrecognised argument(s): {' '.join(stray)} "
                          "(config overrides look like --section.field=value)")
    return args, overrides


def check_config_args_early(argv: Sequence[str]) -> None:
    """`python -m textgan.pretrain/train`: the config part of the command line, checked before
    the entry point imports torch, datasets and ignite (seconds), so that a mistyped key, a
    value of the wrong type or a bad --preset/--config file fails at once, as `run_main`
    reports it (one line, exit status 2).

    Only what the full parse would refuse anyway: with --preset or --config, the config they
    resolve to (every run resolves it); without, each `--section.field=value` override's key
    and type (its range is checked against the run folder's saved config later). Anything
    else (--help, the entry point's own flags, a bare word) is left to the full parser.
    """
    if any(item in HELP_FLAGS or item == "--" for item in argv):
        return
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    early.add_argument("--preset", default=None)
    early.add_argument("--config", default=None)
    try:
        args, rest = early.parse_known_args(list(argv))
    except argparse.ArgumentError:  # e.g. --preset without a value: the full parser says so
        return
    if args.preset is not None and args.preset not in PRESETS:
        return  # argparse's "invalid choice" message, from the full parser
    config_fields = {f.name for f in dataclasses.fields(Config)}
    overrides = [item for item in rest if _is_override(item)
                 and ("." in item.split("=", 1)[0] or item[2:].split("=", 1)[0] in config_fields)]
    try:
        if args.preset or args.config:
            load_config(args.preset or "default", args.config, overrides)
        else:
            for item in overrides:
                apply_override(Config(), item)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)


def setup_logging(level: int = logging.INFO) -> None:
    """Plain `textgan: message` lines on stderr; library modules only call logging."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger("textgan")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # ignite logs the exception that ends a run as an error with the exception's text; Ctrl-C's
    # has none, which printed a bare "...due to exception: " line before our own message, and a
    # user's error (a full disk during a checkpoint) was printed once per engine, then by us
    logging.getLogger("ignite.engine.engine.Engine").addFilter(_not_ours_to_report)


def _not_ours_to_report(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message == "Engine run is terminating due to exception: ":
        return False
    # ignite logs from inside its `except` block: the exception being handled is the one named
    return not (message.startswith("Engine run is terminating due to exception: ")
                and isinstance(sys.exc_info()[1], (TextganError, OSError)))


FILE_SYSTEM_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC,
                                errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                                errno.ENAMETOOLONG})


def describe_os_error(error: OSError) -> str:
    """An OSError of a path as one line: what, where, and what to do."""
    where = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
    fixes = {errno.EROFS: "the file system is read-only: use a --run-dir on a writable disk",
             errno.EACCES: "check the permissions, or use another --run-dir",
             errno.EPERM: "check the permissions, or use another --run-dir",
             errno.ENOSPC: "free some space and run the same command again",
             errno.EDQUOT: "free some space and run the same command again"}
    fix = fixes.get(error.errno, "check the path, or use another --run-dir")
    return f"{(error.strerror or str(error)).lower()}: {where}; {fix}"


def run_main(main: Callable[[Sequence[str] | None], Any]) -> None:
    """Run an entry point's main(argv) as a program: user errors become one-line messages."""
    setup_logging()
    try:
        main(sys.argv[1:])
    except TextganError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
    except OSError as error:
        # The file system refused (read-only, permissions, full disk, a file where a folder
        # should be): the user's to fix, named by path. Other OSErrors keep their traceback.
        if error.errno not in FILE_SYSTEM_ERRORS or not error.filename:
            raise
        sys.stderr.write(f"error: {describe_os_error(error)}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
