"""Process groups for training under torchrun: which rank this is, its device, and how the ranks agree.

`torchrun --nproc-per-node N ddad-edge train ...` starts N copies of the command with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in their environment. `detect_env` reads them; without them (or
with WORLD_SIZE=1) training is a single process and none of this is used. Process rank r of N:

- trains on GPU `cuda:LOCAL_RANK` with NCCL, or on the CPU with gloo;
- sees, every epoch, the shard `shard_epoch(...)` of one permutation that all ranks draw from the same
  seed and epoch number (what torch's DistributedSampler does: pad by wrapping to a multiple of N, then
  every N-th index from position r), so an epoch still shows every image once over all ranks;
- draws its own diffusion noise (`rank_seed`), so the ranks' batches are independent samples.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist

from ddad_edge.errors import DdadError


class CollectiveBackend(str, Enum):
    """The communication library of a process group: NCCL between GPUs, gloo between CPU processes."""

    NCCL = "nccl"
    GLOO = "gloo"


@dataclass(frozen=True)
class DistEnv:
    """This process's place among the training processes (rank 0 of 1 when not started by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0


def _env_int(environ: Mapping[str, str], key: str, default: int) -> int:
    value = environ.get(key, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DdadError(f"environment variable {key}={value!r} is not an integer (torchrun sets it)") from None


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The rank, world size and local rank that torchrun put in the environment (default: `os.environ`)."""
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local = _env_int(environ, "LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DdadError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} do not fit together: "
                        "start multi-process training with torchrun --nproc-per-node N")
    env = DistEnv(rank, world, local)
    if env.distributed and not (environ.get("MASTER_ADDR") and environ.get("MASTER_PORT")):
        raise DdadError(f"WORLD_SIZE={world} but MASTER_ADDR / MASTER_PORT are not set: start multi-process "
                        "training with torchrun --nproc-per-node N, which sets them")
    return env


def device_for(env: DistEnv, requested: str = "auto") -> torch.device:
    """The device of this rank: `cuda:LOCAL_RANK` for auto / cuda when torch sees GPUs, else the CPU."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested not in ("auto", "cuda") and not requested.startswith("cuda:"):
        raise DdadError(f"device {requested!r}: choose auto, cpu or cuda")
    if not torch.cuda.is_available():
        if requested == "auto":
            return torch.device("cpu")
        raise DdadError(f"device {requested} was asked for, but torch sees no CUDA GPU here")
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise DdadError(f"LOCAL_RANK {env.local_rank} has no GPU: torch sees {count}; start at most {count} "
                        "processes per node (torchrun --nproc-per-node)")
    if requested.startswith("cuda:") and int(requested.split(":")[1]) != env.local_rank:
        # Every rank would otherwise pile onto one GPU; torchrun's LOCAL_RANK is the GPU of each process.
        raise DdadError(f"device {requested} under torchrun: pass --device cuda (or auto) and each process takes "
                        "the GPU of its LOCAL_RANK; choose GPUs with CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", env.local_rank)


def backend_for(device: torch.device) -> CollectiveBackend:
    return CollectiveBackend.NCCL if device.type == "cuda" else CollectiveBackend.GLOO


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint32)[0])


def rank_seed(seed: int, rank: int, step: int) -> int:
    """A 32-bit seed of its own for each (seed, rank, step): independent noise streams per rank, and a
    resumed run re-seeds from the step it continues at."""
    return _derived_seed(seed, 1, rank, step)


def shard_epoch(n: int, world_size: int, rank: int, seed: int, epoch: int) -> torch.Tensor:
    """This rank's indices (int64, ceil(n / world_size) of them) into n images for one epoch.

    One permutation of range(n) from (seed, epoch), the same on every rank, wrapped around to a multiple
    of world_size, of which rank r takes positions r, r + world_size, ...: the shards are disjoint
    except for the few wrapped indices and together cover every image.
    """
    g = torch.Generator().manual_seed(_derived_seed(seed, 0, epoch))  # not a rank's: shared
    order = torch.randperm(n, generator=g)
    total = math.ceil(n / world_size) * world_size
    if total > n:
        order = torch.cat([order] * math.ceil(total / n))[:total]
    return order[rank:total:world_size]


class Ranks:
    """What the training loop asks of the other ranks; in a single process every answer is local."""

    def __init__(self, env: DistEnv, device: torch.device) -> None:
        self.env = env
        self.device = device

    @property
    def distributed(self) -> bool:
        return self.env.distributed

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module to call in training: DistributedDataParallel around it when distributed.

        Gradients are averaged over the ranks in backward, so each rank's loss stays the mean over its
        own batch and the update is that of the global batch (batch_size × world_size).
        """
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on any rank (a deadline that one rank has passed)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar tensor over the ranks (the loss of the global batch)."""
        if not self.distributed:
            return float(value.detach())
        t = value.detach().float().reshape(1).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.env.world_size

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (a plan that must not differ between them)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()


@contextmanager
def process_group(env: DistEnv, device: torch.device) -> Iterator[Ranks]:
    """Join the process group of `env` for the block (none when not distributed).

    A group that is already initialised (by a caller that trains several models in one process group,
    like train-all) is used and left open; one started here is destroyed on exit.
    """
    ranks = Ranks(env, device)
    if not env.distributed or dist.is_initialized():
        yield ranks
        return
    backend = backend_for(device)
    if backend is CollectiveBackend.NCCL:
        torch.cuda.set_device(device)
        dist.init_process_group(backend.value, rank=env.rank, world_size=env.world_size, device_id=device)
    else:
        dist.init_process_group(backend.value, rank=env.rank, world_size=env.world_size)
    try:
        yield ranks
    finally:
        dist.destroy_process_group()
