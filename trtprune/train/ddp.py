"""Data parallel under ``torchrun``: the process group, which rank does what, and sharing a result.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), trtprune joins the process group torchrun set
up (gloo on CPU, nccl on GPU). Rank 0 does the work that must happen once (scoring, solving,
timing candidates, writing outputs) and shares its result with :func:`from_main`; every rank
fine-tunes its shard with DistributedDataParallel (:mod:`trtprune.train.loop`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from trtprune.core.errors import TrtpruneError

T = TypeVar("T")


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, or when not launched distributed: the process that writes outputs."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_int("RANK", 0) == 0


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[bool]:
    """Join the torchrun process group when WORLD_SIZE > 1 (left as it is if already joined);
    yields whether the run is distributed."""
    if env_int("WORLD_SIZE", 1) <= 1:
        yield False
        return
    if not dist.is_available():
        raise TrtpruneError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    try:
        yield True
    finally:
        if created:
            dist.destroy_process_group()


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, its (picklable) result on every rank; a failure on rank 0 (a user
    error, say) is raised on every rank, so no rank waits forever."""
    if not is_distributed():
        return compute()
    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", compute())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def barrier() -> None:
    if is_distributed():
        dist.barrier()
