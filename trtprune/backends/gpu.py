"""Helpers shared by the CUDA backends: where a GPU number comes from, and how it is timed.

:func:`gpu_environment` records the GPU, driver, clocks and CUDA version that
every GPU latency is stored with. :class:`CudaGraphTimer` times one enqueued
inference the way trtexec does: captured once into a CUDA graph, replayed
``k`` times back to back between two CUDA events on one stream, so the number
is GPU time without host launch overhead or transfers. torch is imported
lazily (no pycuda: torch's streams, events and graphs are all that is needed).
"""

from __future__ import annotations

import csv
import logging
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

NVIDIA_SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "uuid")
NVIDIA_SMI_TIMEOUT_S = 10.0


def _nvidia_smi() -> list[dict[str, str]]:
    """One row per GPU from ``nvidia-smi --query-gpu``; empty when it is missing, slow or fails."""
    cmd = ["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for values in csv.reader(line for line in out.splitlines() if line.strip()):
        if len(values) == len(NVIDIA_SMI_FIELDS):
            rows.append({k: v.strip() for k, v in zip(NVIDIA_SMI_FIELDS, values, strict=True)})
    return rows


def _device_uuid(props: Any) -> str | None:
    uuid = getattr(props, "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else None


def gpu_environment(device: int | None = None) -> dict[str, Any]:
    """GPU name, driver, SM/memory clocks, CUDA version and compute capability of ``device``.

    The driver and clocks come from ``nvidia-smi`` when it answers within a
    timeout (clocks drift with power state, so they are recorded, not trusted);
    the rest from ``torch.cuda``.
    """
    env: dict[str, Any] = {}
    smi = _nvidia_smi()
    try:
        import torch

        cuda_ok = torch.cuda.is_available()
    except ImportError:
        torch, cuda_ok = None, False
    row = smi[0] if smi else None
    if cuda_ok:
        index = torch.cuda.current_device() if device is None else device
        props = torch.cuda.get_device_properties(index)
        major, minor = torch.cuda.get_device_capability(index)
        env.update(
            gpu=torch.cuda.get_device_name(index),
            compute_capability=f"{major}.{minor}",
            gpu_memory_mib=int(props.total_memory) >> 20,
            cuda=torch.version.cuda,
        )
        uuid = _device_uuid(props)
        matches = [r for r in smi if uuid and r["uuid"] == uuid] or [r for r in smi if r["name"] == env["gpu"]]
        row = matches[0] if matches else row
    if row is not None:
        env.setdefault("gpu", row["name"])
        env.update(
            driver=row["driver_version"],
            sm_clock=row["clocks.sm"],
            mem_clock=row["clocks.mem"],
            max_sm_clock=row["clocks.max.sm"],
        )
    else:
        env["driver"] = None
    return env


class CudaGraphTimer:
    """Times an enqueued inference by CUDA-graph replay between two CUDA events.

    ``enqueue`` is a zero-argument callable that enqueues one inference on
    ``stream`` (torch ops run on the current stream, which is ``stream`` whenever
    the timer calls it; raw engines pass ``stream.cuda_stream`` themselves). It
    is warmed up on that side stream, as PyTorch requires before capture, then
    captured into a :class:`torch.cuda.CUDAGraph`. When capture fails (an op
    that cannot be captured), the timer falls back to plain launches;
    ``uses_graph`` says which, ``graph_error`` why.
    """

    def __init__(
        self,
        enqueue: Callable[[], object],
        stream: torch.cuda.Stream | None = None,
        warmup: int = 3,
        use_graph: bool = True,
    ) -> None:
        import torch

        self._torch = torch
        self._enqueue = enqueue
        self.stream = stream if stream is not None else torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.uses_graph = False
        self.graph_error: str | None = None
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            for _ in range(max(1, warmup)):
                enqueue()
        self.stream.synchronize()
        if use_graph:
            self._capture()

    def _capture(self) -> None:
        torch = self._torch
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                self._enqueue()
            with torch.cuda.stream(self.stream):
                graph.replay()  # a graph that captured but cannot run fails here, not inside timed()
            torch.cuda.synchronize()
        except Exception as exc:  # capture failures surface as RuntimeError or the engine's own type
            self.graph_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("CUDA graph capture failed, timing plain launches instead: %s", self.graph_error)
            torch.cuda.synchronize()
            return
        self.graph, self.uses_graph = graph, True

    def run_once(self) -> None:
        """Enqueue one inference on the timer's stream (replay when captured); does not synchronize."""
        with self._torch.cuda.stream(self.stream):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._enqueue()

    def timed(self, iterations: int) -> float:
        """Run ``iterations`` inferences back to back; GPU milliseconds between the two events."""
        torch = self._torch
        with torch.cuda.stream(self.stream):
            self._start.record(self.stream)
            if self.graph is not None:
                replay = self.graph.replay
                for _ in range(iterations):
                    replay()
            else:
                enqueue = self._enqueue
                for _ in range(iterations):
                    enqueue()
            self._end.record(self.stream)
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))

    def close(self) -> None:
        if self.graph is not None:
            self.stream.synchronize()
            self.graph.reset()
            self.graph = None
        self.uses_graph = False
