"""Sample sentences in a chosen style from a trained run; reconstruct, restyle or interpolate
given sentences.

On a CPU (seconds; a model of the tiny preset first, if there is none yet):

    python -m textgan.pretrain --preset tiny --run-dir checkpoints/tiny
    python -m textgan.sample --run-dir checkpoints/tiny                        # every style
    python -m textgan.sample --run-dir checkpoints/tiny --style sentiment=positive,tense=past
    python -m textgan.sample --run-dir checkpoints/tiny --n 3 --temperature 0.7 --top-p 0.9
    python -m textgan.sample --run-dir checkpoints/tiny --reconstruct "the soup was warm ."
    python -m textgan.sample --run-dir checkpoints/tiny --transfer "the soup was warm ." \\
        --style sentiment=negative                     # or --transfer-file sentences.txt
    python -m textgan.sample --run-dir checkpoints/tiny --steps 5 \\
        --interpolate "the soup was warm ." "we enjoy every visit here ."

The run folder gives its newest adversarial (train stage) checkpoint, else the newest
pretraining one (else the best); --checkpoint picks a file. Every sentence is printed as
"[sentiment=positive, tense=past] text"; attributes left out of --style are drawn from the prior
for each sentence, and without --style, --n sentences are drawn for every style combination
(with the same z's, so the groups differ by the style code alone). With --reconstruct the given
sentences are encoded (posterior mean) and decoded greedily instead, printed as
"input -> reconstruction", each in its own style: the attributes --style names take that class,
the others keep the class the discriminator of an adversarial (train stage) checkpoint reads in
the sentence, as --transfer does. A pretrain checkpoint has no discriminator, so they are drawn
from the prior there (with a warning; such a model was not trained to follow c, so its
reconstructions change little with it).

--transfer (repeatable) and --transfer-file (one sentence per line, blank lines skipped) rewrite
sentences in the --style they must come with, printed as "source -> transfer  [target style]":
the attributes --style names take that class, the others keep the class the discriminator of an
adversarial (train stage) checkpoint reads in the source; a pretrain checkpoint has no
discriminator, so they are drawn from the prior (with a warning). --style-strengths 1,1.5,2
rewrites again, with a stronger style code, each sentence whose rewrite the discriminator does
not read as --style (at --min-confidence), and marks those kept at a stronger code; by default
as the run's [transfer] config says (the yelp preset tries several). --interpolate A B decodes
--steps sentences on the straight line from A's code to B's, one numbered line each, all with
one style (--style where given, else the discriminator's reading of A, else a prior draw).
Reconstruction, transfer and interpolation decode greedily; they are separate modes.
--no-repeat-ngram N (every mode) never writes an N-gram twice in one sentence: 2 stops the loops
a greedy decoder can fall into ("great great great"). The same --seed gives the same output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgan.cli import HelpFormatter, add_transfer_arguments, run_main
from textgan.devices import add_device_argument
from textgan.errors import CheckpointError, SamplingError

if TYPE_CHECKING:  # textgan.sampling imports torch: loaded once the flags are checked
    from textgan.sampling import LoadedModel

DEFAULT_STEPS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textgan.sample", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--run-dir", default=None,
                        help="run folder written by textgan.pretrain / textgan.train")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="a checkpoint file to use instead of the run folder's choice "
                             "(relative paths are also looked up inside --run-dir)")
    parser.add_argument("--style", default=None,
                        help="class per attribute, e.g. sentiment=positive,tense=past (a class "
                             "index such as sentiment=1 works too); omitted attributes are drawn "
                             "from the prior (--reconstruct, --transfer: kept from the source "
                             "where a discriminator reads it); without --style, every "
                             "combination")
    parser.add_argument("--n", type=int, default=5,
                        help="sentences to sample (per style combination without --style)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature of sampling (< 1: safer, > 1: more varied)")
    parser.add_argument("--top-k", type=int, default=0,
                        help="sample among the k most likely words only (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0,
                        help="nucleus sampling: the smallest set of words with this mass "
                             "(1 = off)")
    parser.add_argument("--greedy", action="store_true",
                        help="take the most likely word at every step instead of sampling")
    parser.add_argument("--no-repeat-ngram", metavar="N", type=int, default=0,
                        help="never write an N-gram twice in one sentence, in every mode (0 = "
                             "off; 2 stops greedy loops such as 'great great great')")
    parser.add_argument("--max-len", type=int, default=None,
                        help="most tokens per sentence, EOS included (default: the run's "
                             "data.max_tokens)")
    parser.add_argument("--seed", type=int, default=0, help="seed of z, prior classes and words")
    add_device_argument(parser)
    parser.add_argument("--no-ema", action="store_true",
                        help="use the raw weights even if the checkpoint holds EMA weights")
    parser.add_argument("--reconstruct", metavar="TEXT", action="append", default=None,
                        help="reconstruct this sentence instead of sampling (repeatable), in its "
                             "own style as the discriminator reads it (a pretrain checkpoint "
                             "has none: the prior); --style overrides the attributes it names")
    parser.add_argument("--transfer", metavar="TEXT", action="append", default=None,
                        help="rewrite this sentence in --style (repeatable)")
    parser.add_argument("--transfer-file", metavar="FILE", default=None,
                        help="rewrite every sentence of this UTF-8 file (one per line, blank "
                             "lines skipped) in --style")
    add_transfer_arguments(parser)
    parser.add_argument("--interpolate", metavar=("A", "B"), nargs=2, default=None,
                        help="decode --steps sentences between the codes of sentences A and B")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="sentences on the --interpolate path, both ends included (>= 2)")
    parser.add_argument("--truncate", action="store_true",
                        help="cut --reconstruct/--transfer/--interpolate sentences longer than "
                             "data.max_tokens instead of refusing them")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        raise SamplingError(f"--n must be at least 1, got {args.n}")
    # Flag mistakes and the sentence file are checked before the (slower) model load.
    transfer_texts = _transfer_texts(args)
    from textgan.sampling import load_for_inference, print_sampled_sentence

    if args.checkpoint is not None and args.run_dir is not None:
        # a checkpoint named for a run folder: if its tokenizer is not the folder's, say that it
        # comes from another run, not that the folder was changed
        from textgan.evaluation.checkpoints import load_run_model

        model = load_run_model(_model_path(args), args.run_dir, named=True, device=args.device,
                               use_ema=not args.no_ema)
    else:
        model = load_for_inference(_model_path(args), device=args.device,
                                   use_ema=not args.no_ema, run_dir=args.run_dir)
    result: dict[str, Any] = {"checkpoint": str(model.checkpoint), "stage": model.stage,
                              "weights": model.weights, "samples": [], "reconstructions": [],
                              "transfers": [], "interpolation": []}
    if args.reconstruct is not None:
        result["reconstructions"] = _reconstruct(model, args)
        return result
    if transfer_texts is not None:
        result["transfers"] = _transfer(model, transfer_texts, args)
        return result
    if args.interpolate is not None:
        result["interpolation"] = _interpolate(model, args)
        return result
    sentences = print_sampled_sentence(
        model, args.style, args.n, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, no_repeat_ngram=args.no_repeat_ngram,
        strategy="greedy" if args.greedy else "sample", seed=args.seed, max_len=args.max_len,
        file=sys.stdout)
    result["samples"] = [{"text": s.text, "style": s.style, "ended": s.ended} for s in sentences]
    return result


def _model_path(args: argparse.Namespace) -> Path:
    if args.checkpoint is None:
        if args.run_dir is None:
            raise CheckpointError("give --run-dir (a run folder) or --checkpoint (a file)")
        return Path(args.run_dir)
    from textgan.runs import named_checkpoint

    return named_checkpoint(args.checkpoint, args.run_dir)


def _reconstruct(model: LoadedModel, args: argparse.Namespace) -> list[dict[str, str]]:
    # Greedy from the posterior mean: a reconstruction shows what the model encodes; sampling
    # options (--temperature, --top-k, --top-p, --greedy) apply to sampling only;
    # --no-repeat-ngram applies to every mode.
    from textgan.sampling import reconstruct, resolve_style

    style = resolve_style(args.style, model.attributes)
    outputs = reconstruct(model, args.reconstruct, style=style, seed=args.seed,
                          no_repeat_ngram=args.no_repeat_ngram, max_len=args.max_len,
                          truncate=args.truncate)
    for source, output in zip(args.reconstruct, outputs):
        print(f"{source} -> {output}")
    return [{"input": source, "output": output}
            for source, output in zip(args.reconstruct, outputs)]


def _transfer_texts(args: argparse.Namespace) -> list[str] | None:
    """The sentences to transfer (--transfer, then --transfer-file), or None in other modes.

    Also refuses mixed modes and a transfer without --style.
    """
    modes = [flag for flag, given in (("--reconstruct", args.reconstruct is not None),
                                      ("--transfer/--transfer-file", args.transfer is not None
                                       or args.transfer_file is not None),
                                      ("--interpolate", args.interpolate is not None)) if given]
    if len(modes) > 1:
        raise SamplingError(f"{' and '.join(modes)} are separate modes; give one of them")
    if modes != ["--transfer/--transfer-file"]:
        return None
    if args.style is None or not args.style.strip():
        raise SamplingError("--transfer and --transfer-file need --style, the style to move the "
                            "sentences to (e.g. --style sentiment=positive)")
    texts = list(args.transfer or [])
    if args.transfer_file is not None:
        texts += _read_sentences(Path(args.transfer_file))
    return texts


def _read_sentences(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 file, stripped."""
    if not path.is_file():
        raise SamplingError(f"--transfer-file {path}: "
                            f"{'is a folder' if path.is_dir() else 'file not found'}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SamplingError(f"--transfer-file {path} is not UTF-8 text ({error.reason} at byte "
                            f"{error.start})") from None
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise SamplingError(f"--transfer-file {path} holds no sentences (only blank lines)")
    return sentences


def _transfer(model: LoadedModel, texts: list[str], args: argparse.Namespace
              ) -> list[dict[str, Any]]:
    # Greedy, as --reconstruct: the sampling options apply to sampling only.
    from textgan.sampling import style_label, transfer

    transfers = transfer(model, texts, args.style, seed=args.seed,
                         no_repeat_ngram=args.no_repeat_ngram, max_len=args.max_len,
                         truncate=args.truncate, style_strengths=args.style_strengths,
                         min_confidence=args.min_confidence)
    for moved in transfers:
        # a rewrite decoded with other than the plain code (strength 1) says so
        stronger = "" if moved.strength == 1.0 else f" (strength {moved.strength:g})"
        print(f"{moved.source} -> {moved.text}  [{style_label(moved.target_style)}]{stronger}")
    return [{"source": moved.source, "text": moved.text, "source_style": moved.source_style,
             "target_style": moved.target_style, "strength": moved.strength}
            for moved in transfers]


def _interpolate(model: LoadedModel, args: argparse.Namespace) -> list[dict[str, Any]]:
    from textgan.sampling import interpolate

    first, last = args.interpolate
    texts = interpolate(model, first, last, steps=args.steps, style=args.style, seed=args.seed,
                        no_repeat_ngram=args.no_repeat_ngram, max_len=args.max_len,
                        truncate=args.truncate)
    for number, text in enumerate(texts, start=1):
        print(f"{number}. {text}")
    last_index = len(texts) - 1
    return [{"t": index / last_index, "text": text} for index, text in enumerate(texts)]


if __name__ == "__main__":
    run_main(main)
