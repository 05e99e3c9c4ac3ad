"""All five methods on ResNet-20 / Fashion-MNIST at 30/50/70% of the measured latency (ONNX Runtime, CPU).

Runs ``trtprune compare`` (resumable: finished runs under --out are kept) from a fixed
trained checkpoint and its latency table, building either first if missing, then saves
the rows and the table beside this script as benchmarks/results/compare_fmnist.{json,md}.

    python benchmarks/compare_fmnist.py --checkpoint engines/demo/base.pt --lut engines/resnet20/lut.db \\
        --seeds 2 --stages 1 --limit 4000
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--checkpoint", default="engines/demo/base.pt")
    parser.add_argument("--lut", default="engines/resnet20/lut.db")
    parser.add_argument("--methods", default="sp-lamp,halp,lap,uniform,global-l1")
    parser.add_argument("--budgets", default="0.3,0.5,0.7")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--stages", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per stage and after")
    parser.add_argument("--limit", type=int, default=4000, help="fine-tune on the first N training samples")
    parser.add_argument("--limit-eval", type=int, default=2000, help="per-stage top-1 on the first N test samples")
    parser.add_argument("--out", default="engines/compare-fmnist")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cli = [sys.executable, "-m", "trtprune.cli"]
    if not Path(args.checkpoint).exists():
        subprocess.run(
            [*cli, "train", args.model, "--data", "fashion-mnist", "--epochs", "2", "--out", args.checkpoint],
            check=True,
        )
    if not Path(args.lut).exists():
        subprocess.run(
            [*cli, "lut", args.model, "--checkpoint", args.checkpoint, "--mode", "network", "--out", args.lut],
            check=True,
        )
    cmd = [
        *cli, "compare", args.model, "--lut", args.lut, "--checkpoint", args.checkpoint, "--data", "fashion-mnist",
        "--methods", args.methods, "--budgets", args.budgets, "--seeds", str(args.seeds), "--stages", str(args.stages),
        "--finetune-epochs", str(args.epochs), "--limit", str(args.limit), "--limit-eval", str(args.limit_eval), "--out", args.out,
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    result = json.loads((Path(args.out) / "compare.json").read_text())
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    md = (Path(args.out) / "compare.md").read_text()
    text = f"{md}\nCommand: `{command}` ({wall / 60:.0f} min wall, resumed runs included)\n"
    save(RESULTS / "compare_fmnist", text, {"command": command, "wall_s": wall, **result})


if __name__ == "__main__":
    main()
