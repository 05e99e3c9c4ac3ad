"""oneDNN's 1x1 strided backward-weights kernel on this processor: which narrow shortcuts it breaks in channels_last.

trtprune trains in channels_last. A pruned ResNet shortcut (a 1x1 convolution at stride 2) with fewer
input channels than oneDNN's channel block (8 on AVX2, 16 on AVX-512) meets uxlfoundation/oneDNN#6035:
its backward-weights kernel hangs, corrupts the heap or returns wrong weight gradients, depending on the
processor and the number of threads. Since 9e2991f the train loop keeps those convolutions in NCHW
(:mod:`trtprune.train.layout`); runs made before it, on a processor where the kernel returned wrong
gradients without failing, fine-tuned such shortcuts wrongly.

For each number of input channels and threads, a child process trains a narrow shortcut 30 steps
(3 -> C channels 3x3, then C -> 8 channels 1x1 at stride 2, batch 32 at 32x32) twice: in channels_last
as before 9e2991f (*raw*), and under ``training_layout`` as now (*fixed*). Its gradients are compared
with the same network's in NCHW: ``same`` (largest error under 1e-4 of the largest gradient), ``wrong``
(the error), ``hang`` (killed after --timeout seconds) or ``crash`` (exit status and stderr's last line).

    python benchmarks/onednn_shortcut.py [--channels 4,8,12,16] [--threads 1,2]

Results per processor: benchmarks/results/onednn_shortcut-<processor>.{md,json} (another processor's run
writes its own pair). Not a timing benchmark, but run it alone: a hang spins every thread it has.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import textwrap

import torch
from _results import RESULTS, processor_slug, save

from trtprune.backends.ort import cpu_name
from trtprune.report.markdown import markdown_table

log = logging.getLogger("onednn_shortcut")

STEPS = 30
TOLERANCE = 1e-4  # of the largest reference gradient; float32 reorderings stay near 1e-6
CHILD = textwrap.dedent(
    """
    import contextlib, copy, sys, torch
    from torch import nn
    from trtprune.train.layout import training_layout
    channels, threads, mode, steps = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    net = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8)
    )
    ref, x, w = copy.deepcopy(net), torch.randn(32, 3, 32, 32), torch.randn(32, 8, 16, 16)
    ref(x).mul(w).mean().backward()  # not .square(): after batch norm its gradient to the convolutions is ~0
    if mode == "fixed":
        layout = training_layout(net, torch.device("cpu"))
    else:
        layout = contextlib.nullcontext(net.to(memory_format=torch.channels_last))
    with layout:
        for _ in range(steps):
            net.zero_grad()
            net(x.contiguous(memory_format=torch.channels_last)).mul(w).mean().backward()
    error = max(
        ((a.grad - b.grad).abs().max() / b.grad.abs().max()).item() for a, b in zip(net.parameters(), ref.parameters())
    )
    print(f"error {error:.3g}")
    """
)


def trial(channels: int, threads: int, mode: str, timeout: float) -> dict:
    """One child process: ``{"result": same|wrong|hang|crash, "detail": ...}``."""
    argv = [sys.executable, "-c", CHILD, str(channels), str(threads), mode, str(STEPS)]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"result": "hang", "detail": f"killed after {timeout:g} s"}
    if run.returncode != 0 or not run.stdout.startswith("error "):
        last = (run.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"result": "crash", "detail": f"exit {run.returncode}: {last[:120]}"}
    error = float(run.stdout.split()[1])
    return {"result": "same" if error < TOLERANCE else "wrong", "detail": f"error {error:.3g}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="4,8,12,16", help="input channels of the shortcut, comma-separated")
    parser.add_argument("--threads", default="1,2", help="torch threads, comma-separated")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a child counts as hung")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    processor = cpu_name()
    rows = []
    for channels in map(int, args.channels.split(",")):
        for threads in map(int, args.threads.split(",")):
            row = {"channels": channels, "threads": threads}
            for mode in ("raw", "fixed"):
                row[mode] = trial(channels, threads, mode, args.timeout)
                log.info("%d channels, %d thread(s), %s: %s", channels, threads, mode, row[mode])
            rows.append(row)
    setting = {
        "processor": processor,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "onednn": torch.backends.mkldnn.is_available(),
        "steps": STEPS,
    }
    save(
        RESULTS / f"onednn_shortcut-{processor_slug(processor)}",
        markdown(rows, setting),
        {"setting": setting, "rows": rows},
    )


def markdown(rows: list[dict], setting: dict) -> str:
    table = markdown_table(
        [
            {
                "input channels": r["channels"],
                "threads": r["threads"],
                "channels_last (before 9e2991f)": _cell(r["raw"]),
                "training_layout (now)": _cell(r["fixed"]),
            }
            for r in rows
        ]
    )
    return "\n".join(
        [
            "# oneDNN's 1x1 strided backward-weights kernel on narrow shortcuts (oneDNN#6035)",
            "",
            f"Processor: {setting['processor']} (torch {setting['torch']}, CPU capability "
            f"{setting['cpu_capability']}). A 3 -> C -> 8 shortcut (the 1x1 at stride 2) trained "
            f"{setting['steps']} steps; gradients against NCHW's.",
            "",
            table,
            "",
            "Command: `python benchmarks/onednn_shortcut.py`",
            "",
        ]
    )


def _cell(trial_result: dict) -> str:
    return f"{trial_result['result']} ({trial_result['detail']})"


if __name__ == "__main__":
    main()
