"""Data-parallel training over several processes and machines, through ignite.distributed.

    python -m textgan.pretrain --nproc-per-node 2          # 2 processes on this machine
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:29500 \\
        -m textgan.pretrain --run-dir /shared/run           # 8 processes on 2 machines

How the work is split, and why:

- **Same global batches, a share each.** Every process builds the same length-bucketed batches
  from the same seed and keeps `batch[rank::world_size]` of each (`BucketBatchSampler.shard`).
  `data.batch_size` is therefore the global batch, and the sequence of global batches does not
  depend on the number of processes: a run resumed with another world size sees the batches it
  would have seen.
- **One all-reduce of the gradients per optimizer step**, weighted by each process's sentence
  count, so the update equals the single-process update on the global batch for the losses
  that are means over sentences (`average_gradients`). We do not wrap the networks in
  DistributedDataParallel: the steps call several methods of each network (`decode`,
  `forward_soft`, `embed_soft`), and the generator runs many times before one backward
  (teacher forcing, then max_len soft steps), while DDP syncs only through `forward` and
  expects each parameter to become ready once per backward.
- **Step outputs are averaged over processes** (one small all-reduce), so the progress bar,
  NaN stop and TensorBoard see global values; validation metrics reduce through their
  `sync_all_reduce` / gather in `textgan.metrics` and `textgan.style_validation`.
- **Rank 0 alone writes** the config, tokenizer, checkpoints (ignite's DiskSaver), TensorBoard
  and sample text; the others wait at a barrier where rank 0 writes what they then read. On
  several machines the run folder must be on a shared filesystem.
- **Randomness**: every process seeds with `seed` before building the networks (identical
  initial weights, checked by a broadcast from rank 0), then with `seed + rank`, so the noise
  and prior samples of the processes differ. Checkpoints hold every process's torch RNG state;
  a resume with the same world size continues each process's stream exactly, one with another
  world size re-seeds each process from the saved state and its rank.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from textgan.devices import resolve_device
from textgan.errors import ConfigError, TextganError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "gloo", "nccl")


def add_parallel_arguments(parser: Any) -> None:
    """--nproc-per-node and --backend for an entry point (torchrun needs neither)."""
    parser.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                        help="data-parallel processes on this machine (each takes a share of "
                             "every batch; data.batch_size stays the global batch). Across "
                             "machines, start the module under torchrun instead")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="torch.distributed backend: 'auto' is nccl with CUDA, else gloo")


def world_size() -> int:
    return idist.get_world_size()


def rank() -> int:
    return idist.get_rank()


def is_main_process() -> bool:
    return idist.get_rank() == 0


def launched_by_torchrun() -> bool:
    """torchrun (or any env:// launcher) sets these for every process it starts."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def pick_backend(name: str, device: str) -> str:
    if name != "auto":
        return name
    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port nobody listens on now (two runs on one machine must not share one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(worker: Callable[..., Any], args: Any, *worker_args: Any) -> Any:
    """Run `worker(args, *worker_args)` in every process of the run; rank 0's result.

    One process: called here. `--nproc-per-node N > 1`: N processes spawned through
    `idist.spawn` (rank 0's result comes back through a file). Under torchrun: this process
    joins the group torchrun set up. The worker must be a module-level function (spawned
    processes import it by name), and its result picklable.
    """
    nproc = getattr(args, "nproc_per_node", 1)
    if nproc < 1:
        raise ConfigError(f"--nproc-per-node must be at least 1, got {nproc}")
    backend = pick_backend(getattr(args, "backend", "auto"), getattr(args, "device", "auto"))
    if launched_by_torchrun():
        idist.initialize(backend)
        try:
            return _run_worker(worker, args, *worker_args)
        finally:
            idist.finalize()
    if nproc == 1:
        return _run_worker(worker, args, *worker_args)
    with tempfile.TemporaryDirectory(prefix="textgan-launch-") as folder:
        result_file = Path(folder) / "result.pt"
        try:
            idist.spawn(backend, _spawned, args=(worker, result_file, args, *worker_args),
                        nproc_per_node=nproc, master_addr="127.0.0.1", master_port=free_port())
        except torch.multiprocessing.ProcessRaisedException as error:
            raise _user_error(error) from None
        return torch.load(result_file, weights_only=False) if result_file.is_file() else None


def _spawned(local_rank: int, worker: Callable[..., Any], result_file: Path,
             *worker_args: Any) -> None:
    """A spawned process: a fresh interpreter, so logging is set up again."""
    from textgan.cli import setup_logging

    setup_logging()
    if "OMP_NUM_THREADS" not in os.environ:
        # N processes with torch's default of one thread per core would oversubscribe the CPU
        # N-fold (torchrun sets OMP_NUM_THREADS=1 for the same reason)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // idist.get_nproc_per_node()))
    result = _run_worker(worker, *worker_args)
    if is_main_process():
        torch.save(result, result_file)


# Callbacks for the end of this process's worker, e.g. the run folder's lock (textgan.stage).
_at_worker_exit: list[Callable[[bool], None]] = []


def at_worker_exit(callback: Callable[[bool], None]) -> None:
    """Call `callback(failed)` when the worker running in this process returns or raises:
    what a stage holds for its whole run is let go there, in whichever process took it."""
    _at_worker_exit.append(callback)


def _run_worker(worker: Callable[..., Any], *worker_args: Any) -> Any:
    failed = True
    try:
        result = worker(*worker_args)
        failed = False
        return result
    finally:
        while _at_worker_exit:
            _at_worker_exit.pop()(failed)


def _user_error(error: Exception) -> Exception:
    """A TextganError raised in a spawned process is still a user's mistake: one line."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("textgan.errors."):
        return TextganError(last.split(": ", 1)[-1])
    return error


def pick_device(name: str) -> torch.device:
    """The process's device (`devices.resolve_device`); a bare 'cuda' is each process's own
    GPU in a data-parallel run."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", idist.get_local_rank())
    return device


def main_process_first(action: Callable[[], Any]) -> Any:
    """Run `action` on rank 0, then on the others (e.g. train a tokenizer, then load it)."""
    if world_size() == 1:
        return action()
    if is_main_process():
        result = action()
        idist.barrier()
        return result
    idist.barrier()
    return action()


def broadcast_modules(*modules: torch.nn.Module) -> None:
    """Make every process's weights and buffers equal to rank 0's."""
    if world_size() == 1:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            with torch.no_grad():
                tensor.copy_(idist.broadcast(tensor.detach().clone(), src=0))


def average_gradients(params: Iterable[torch.nn.Parameter], count: int) -> None:
    """Replace each process's gradients by the sentence-weighted mean over processes.

    A process whose loss was a mean over its `count` sentences contributes count/total of the
    result, so the gradient is that of the mean over the global batch. One all-reduce over a
    flat buffer; a parameter without a gradient here counts as zero (a process may see no
    labelled sentence, its peers some) and gets one, so all processes step the same params.
    """
    if world_size() == 1:
        return
    params = list(params)
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    grads = [param.grad for param in params]
    # filled on the device: torch.tensor(...) would copy from the host, which waits for a GPU
    weight = torch.full((1,), float(count), device=grads[0].device, dtype=grads[0].dtype)
    flat = _flatten_dense_tensors([*(grad * count for grad in grads), weight])
    idist.all_reduce(flat)
    flat = flat / flat[-1]
    for grad, reduced in zip(grads, _unflatten_dense_tensors(flat[:-1], grads)):
        grad.copy_(reduced)


def mean_over_processes(values: torch.Tensor, count: int) -> tuple[torch.Tensor, float]:
    """(count-weighted mean of a 1-D tensor over processes, total count); one all-reduce."""
    if world_size() == 1:
        return values, float(count)
    packed = torch.cat([values.detach().double() * count,
                        values.new_full((1,), float(count), dtype=torch.float64)])
    idist.all_reduce(packed)
    total = packed[-1]
    return (packed[:-1] / total).to(values.dtype), float(total)


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over processes (a copy; the input is left as it was)."""
    if world_size() == 1:
        return values
    return idist.all_reduce(values.clone())


def any_process(flag: bool) -> bool:
    """True on every process when it is True on any (a stop decision all must share)."""
    if world_size() == 1:
        return flag
    return bool(idist.all_reduce(torch.tensor([float(flag)]), op="MAX").item())


def gather_lists(items: list[Any]) -> list[Any]:
    """Every process's list, concatenated in rank order (the same on every process)."""
    if world_size() == 1:
        return items
    parts: list[Any] = [None] * world_size()
    # torch's object gather: ignite's all_gather of a Python list changes its result's shape
    # with the list's length
    torch.distributed.all_gather_object(parts, items)
    return [item for part in parts for item in part]
