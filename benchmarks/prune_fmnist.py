"""ResNet-20 on Fashion-MNIST pruned to 70/50/30% of its measured latency (ONNX Runtime, CPU).

Runs `trtprune prune` for each budget ratio (or, with --from-runs, only reads finished run
directories) and tabulates measured speed-up and top-1 before/after from each run's result
(report.json, read as trtprune's typed ``PruneResult``).
Prints and saves benchmarks/results/prune_fmnist.{md,json}.

    python benchmarks/prune_fmnist.py --checkpoint engines/demo/base.pt --lut engines/resnet20/lut.db
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script

from trtprune.prune import load_result
from trtprune.report.markdown import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="engines/demo/base.pt")
    parser.add_argument("--lut", default="engines/resnet20/lut.db")
    parser.add_argument("--ratios", default="0.7,0.5,0.3")
    parser.add_argument("--stages", default="1,3,1", help="stages per ratio")
    parser.add_argument("--runs", default="engines/accept", help="run directories: <runs>/r20-<ratio>")
    parser.add_argument("--from-runs", action="store_true", help="only tabulate finished runs")
    args = parser.parse_args()
    rows = []
    for ratio, stages in zip(args.ratios.split(","), args.stages.split(","), strict=True):
        run = Path(args.runs) / f"r20-{ratio}"
        cmd = [
            sys.executable,
            "-m",
            "trtprune.cli",
            "prune",
            "resnet20",
            "--checkpoint",
            args.checkpoint,
            "--data",
            "fashion-mnist",
            "--lut",
            args.lut,
            "--budget-ratio",
            ratio,
            "--stages",
            stages,
            "--finetune-epochs",
            "1",
            "--out",
            str(run),
        ]
        if not args.from_runs:
            subprocess.run(cmd, check=True)
        r = load_result(run)
        rows.append(
            {
                "budget_ratio": float(ratio),
                "stages": int(stages),
                "base_ms": round(r.base_ms, 4),
                "pruned_ms": round(r.pruned_ms, 4),
                "speedup": round(r.speedup, 2),
                "budget_met": r.meets_budget,
                "base_top1": r.base_top1,
                "top1": r.top1,
                "params": r.params,
                "base_params": r.base_params,
                "macs": r.flops,
                "wall_s": round(r.wall_s),
                "command": " ".join(["trtprune", *cmd[3:]]),
            }
        )
    text = (
        "\n".join(
            [
                "# ResNet-20 / Fashion-MNIST pruned to a share of its measured latency (ONNX Runtime CPU, 1 thread)",
                "",
                markdown_table([{k: v for k, v in r.items() if k != "command"} for r in rows]),
                "",
                "Latencies: base.onnx and model.onnx of each run measured interleaved in one process; top-1 of both",
                "in ONNX Runtime on the 10,000-image test split. Commands:",
                "",
                *[f"- `{r['command']}`" for r in rows],
            ]
        )
        + "\n"
    )
    save(RESULTS / "prune_fmnist", text, rows)


if __name__ == "__main__":
    main()
