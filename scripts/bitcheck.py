"""Bit check for refactors that must not change behaviour: the tiny pipeline's checkpoints and
samples, as digests to compare before and after a change.

    python scripts/bitcheck.py > before.txt        # on the old code
    python scripts/bitcheck.py --compare before.txt  # on the new code: exit 1 on any difference

Runs, in a fresh temporary folder: `pretrain --preset tiny`, then `train`, then
`sample --n 2 --seed 1`, all on the CPU with one thread (threads change float sums), and prints
per checkpoint a sha256 of its tensors (key paths sorted) and a sha256 of its other leaves (keys
naming wall-clock times left out), then a sha256 of the sample output and the output itself.
Key order does not count: a config section whose fields move keeps its digest.
It takes about two minutes.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
TIME_KEYS = ("time", "times", "start_time", "started")


def leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from leaves(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from leaves(item, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def is_wall_clock(path: str) -> bool:
    return any(part.split("[")[0] in TIME_KEYS for part in path.split("/"))


def digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    tensors, others, count = hashlib.sha256(), hashlib.sha256(), 0
    for key, value in leaves(state):
        if is_wall_clock(key):
            continue
        if isinstance(value, torch.Tensor):
            t = value.detach().contiguous().cpu()
            tensors.update(f"{key}{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                tensors.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            count += 1
        else:
            others.update(key.encode() + repr(value).encode())
    return f"tensors={count} sha256={tensors.hexdigest()} other={others.hexdigest()}"


def run(*argv: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True).stdout


def bitcheck() -> str:
    lines = []
    with tempfile.TemporaryDirectory(prefix="textgan-bitcheck-") as tmp:
        run_dir = Path(tmp) / "run"
        common = ("--device", "cpu", "--no-progress", "--run-dir", str(run_dir))
        run("textgan.pretrain", "--preset", "tiny", *common)
        run("textgan.train", *common)
        for path in sorted(run_dir.rglob("*.pt")):
            if "judges" not in path.parts:
                lines.append(f"{path.relative_to(run_dir)} {digest(path)}")
        out = run("textgan.sample", "--run-dir", str(run_dir), "--device", "cpu", "--n", "2",
                  "--seed", "1")
        lines.append(f"sample sha256={hashlib.sha256(out.encode()).hexdigest()}")
        lines.extend(out.splitlines())
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", metavar="FILE", type=Path,
                        help="an earlier output: print the differences, exit 1 if any")
    args = parser.parse_args()
    result = bitcheck()
    if args.compare is None:
        print(result, end="")
        return 0
    diff = list(difflib.unified_diff(args.compare.read_text().splitlines(), result.splitlines(),
                                     str(args.compare), "now", lineterm=""))
    print("\n".join(diff) if diff else f"bit-identical to {args.compare}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
