"""Provides DistributedDataParallel training under torchrun: process group, rank-0 writes, sharded batches.

`torchrun` starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK. Every
process runs the same trainer; this module supplies the few places where they differ:

- one process group per training run: NCCL on CUDA (one GPU per process, LOCAL_RANK),
  gloo on CPU;
- rank 0 owns the run folder: it creates it and broadcasts the path, and only it writes
  spec, status, checkpoints, history and results. Other ranks see a read-only Run;
- each step's global batch is the same ``batch_size`` rows a single process would take
  from the epoch's fixed order; rank r trains on rows r, r + W, r + 2W, ... of it (about
  batch_size / W rows each). Each rank's loss is normalised by the global batch's weight
  sum (times W, since DDP averages gradients over ranks), so the averaged gradient equals
  the single-process gradient of the whole batch. Steps per epoch and the learning-rate
  schedule are unchanged. What still differs from one process: dropout masks and, on CPU,
  BatchNorm statistics (per rank; on CUDA BatchNorm becomes SyncBatchNorm);
- rank 0 decides early stopping and every rank follows, so no rank waits on a collective
  the others have left.

Strings and flags travel as tensors, never as pickled objects.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from mmzoo.errors import TrainingError
from mmzoo.runs.folders import Run

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """True inside a process started by torchrun (or anything that sets its environment)."""
    return all(name in os.environ for name in ENV_VARS)


def is_main_process() -> bool:
    """Rank 0, or not distributed: the process that prints results."""
    return int(os.environ.get("RANK", "0")) == 0


class ReadOnlyRun(Run):
    """The run folder as ranks other than 0 see it: they read it, rank 0 alone writes it."""

    def set_status(self, state: str, **extra) -> None:
        pass


class _Step(torch.nn.Module):
    """One training forward as a module, so DDP's forward hooks prepare the gradient all-reduce."""

    def __init__(self, model: torch.nn.Module, forward: Callable) -> None:
        super().__init__()
        self.model = model
        self.run_forward = forward

    def forward(self, data, idx: torch.Tensor, device) -> dict[str, torch.Tensor]:
        return self.run_forward(self.model, data, idx, device)


@dataclass
class Context:
    """Where this process stands: rank, world size and device; a single process when ``backend`` is None."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        """What spec.yaml records about the launch (nothing for a single process)."""
        return {"distributed": {"backend": self.backend, "world_size": self.world_size}} if self.enabled else {}

    def shared_run(self, make: Callable[[], Run]) -> Run:
        """``make()`` on rank 0 only (it may create the folder); the other ranks get its path."""
        if not self.enabled:
            return make()
        run = make() if self.is_main else None
        path = self.broadcast_text(str(run.path) if run else "")
        return run if run else ReadOnlyRun(Path(path))

    def main_first(self):
        """Rank 0 runs the block first (e.g. filling a cache on disk), then the others, who find it done."""
        if not self.enabled:
            return nullcontext()
        return _main_first(self)

    def wrap(self, model: torch.nn.Module, forward: Callable) -> Callable:
        """``step(data, idx, device) -> outputs``: through DDP when distributed and there is something to train."""
        if not self.enabled or not any(p.requires_grad for p in model.parameters()):
            return lambda data, idx, device: forward(model, data, idx, device)
        # A 1x1 convolution's gradient has arbitrary strides on its size-1 dimensions, which DDP's
        # layout check reports as a mismatch; the reduced values are correct, so the warning is noise.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        if self.device.type == "cuda":
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces BatchNorm children in place
        # The graph is the same every step (an idle rank trains on a zero-weight row), so
        # static_graph lets DDP handle parameters a fusion leaves unused without a search per step.
        return torch.nn.parallel.DistributedDataParallel(_Step(model, forward), device_ids=None, static_graph=True,
                                                       gradient_as_bucket_view=True)

    def shard(self, idx: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's rows of the global batch ``idx`` (B,), their weights, and the loss normaliser.

        The normaliser is None for a single process (the loss divides by its own weight sum).
        """
        if not self.enabled:
            return idx, weights[idx], None
        mine = idx[self.rank::self.world_size]  # (about B / W,)
        own = weights[mine]
        if len(mine) == 0:
            # The epoch's last batch can be smaller than the world: this rank still joins the
            # gradient all-reduce, with one row that weighs nothing.
            mine, own = idx[:1], torch.zeros(1)
        return mine, own, weights[idx].sum() / self.world_size

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over ranks: with ``shard``'s normaliser, the global batch's loss on every rank."""
        if not self.enabled:
            return value
        total = value.detach().float().reshape(1).to(self.device)
        dist.all_reduce(total)
        return total[0] / self.world_size

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        if not self.enabled:
            return bool(flag)
        value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def broadcast_text(self, text: str) -> str:
        """Rank 0's ``text`` on every rank, sent as UTF-8 bytes in tensors."""
        data = text.encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, src=0)
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buffer, src=0)
        return bytes(buffer.cpu().tolist()).decode()

    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        elif self.enabled:
            dist.barrier()


@contextmanager
def _main_first(ctx: Context):
    if not ctx.is_main:
        ctx.barrier()
    yield
    if ctx.is_main:
        ctx.barrier()


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise TrainingError(f"environment variable {name}={value!r} is not an integer",
                            hint="start distributed training with torchrun, which sets RANK, WORLD_SIZE "
                                 "and LOCAL_RANK") from None


@contextmanager
def session(device: torch.device):
    """The process group for one training run when launched by torchrun; a single-process Context otherwise.

    Joins a process group the caller already initialised (and leaves it to the caller).
    On success every rank waits at a barrier for rank 0 to finish writing, then the
    group is destroyed; on an error the group is torn down without waiting, and torchrun
    stops the other ranks.
    """
    if not launched():
        yield Context(device=device)
        return
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise TrainingError(f"torchrun started process LOCAL_RANK={local} on this node, but torch sees only "
                                f"{count} CUDA device(s)", hint=f"use --nproc_per_node {count} (one process per GPU)")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if dist.is_initialized():
        yield Context(device, dist.get_rank(), dist.get_world_size(), local, dist.get_backend())
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    ctx = Context(device=device, rank=rank, world_size=world, local_rank=local, backend=backend)
    dist.init_process_group(backend, device_id=device if backend == "nccl" else None)
    try:
        yield ctx
        ctx.barrier()
    finally:
        dist.destroy_process_group()
