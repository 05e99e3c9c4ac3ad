"""The quick protocol that decides the default method's settings before the comparison is frozen
(issue 27): ResNet-20 on Fashion-MNIST, seed 0, budgets 0.3 and 0.5, the compare benchmark's
recipe, the same base and table. Arms: the default (SP-LAMP scaled by the Taylor-BN total), a
measured loss-change probe per group instead (``sp-lamp:importance=sp-lamp-probe``), and the
default with distillation from the unpruned model. Every model is timed in one interleaved call
beside the base. About 10 minutes on 2 cores. Saves benchmarks/results/default_protocol.{md,json}.

    python benchmarks/default_protocol.py --out engines/bench   # after compare_fmnist restored its state
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from pathlib import Path

from _quiet import benchmark_parser, start  # benchmarks/_quiet.py, beside this script
from _results import RESULTS, save
from compare_fmnist import STATE, State, base_checkpoint, code_commit, table, template

from trtprune.train.config import DistillConfig

ARMS = {
    "default": ("sp-lamp", None),
    "probe": ("sp-lamp:importance=sp-lamp-probe", None),
    "distill": ("sp-lamp", DistillConfig()),
}
BUDGETS = (0.3, 0.5)
SEED = 0


def main() -> None:
    from trtprune.compare.config import CompareConfig, run_dir_name
    from trtprune.compare.run import measure_runs, run_compare

    args = benchmark_parser(__doc__.splitlines()[0]).parse_args()
    out = start(args)
    State(STATE, out).restore()  # the comparison's base and table
    t0 = time.perf_counter()
    base = base_checkpoint("resnet20", out)
    lut = table("resnet20", base["checkpoint"], out)
    runs = []
    for arm, (spec, extra) in ARMS.items():
        config = CompareConfig(
            prune=template("resnet20", base["checkpoint"], lut["path"], extra),
            methods=(spec,),
            budgets=BUDGETS,
            seeds=1,
            out=str(out / f"protocol-{arm}"),
        )
        run_compare(config, measure=False)
        runs += [(arm, b, SEED, Path(config.out) / "runs" / run_dir_name(spec, b, SEED)) for b in BUDGETS]
    rows, environment = measure_runs(runs, lut["path"])
    lines = [
        "# Deciding the default: ResNet-20 / Fashion-MNIST, seed 0, the comparison's recipe",
        "",
        f"Code {code_commit()}; engine {environment.get('engine')} {environment.get('version')} on "
        f"{environment.get('processor')}; all models timed in one interleaved call beside the base; "
        f"{(time.perf_counter() - t0) / 60:.0f} min.",
        "",
        "| arm | method | budget | measured share | top-1 | params |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        spec = ARMS[r["method"]][0]
        lines.append(
            f"| {r['method']} | {spec} | {r['budget_ratio']:.1f} | {r['measured_share']:.3f} | {r['top1']:.4f} "
            f"| {r['params']:,} |"
        )
    means = {arm: statistics.fmean(r["top1"] for r in rows if r["method"] == arm) for arm in ARMS}
    lines += ["", "Mean top-1 over both budgets: " + ", ".join(f"{a} {m:.4f}" for a, m in means.items()) + "."]
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines += ["", f"Command: `{command}`"]
    save(RESULTS / "default_protocol", "\n".join(lines) + "\n", {"command": command, "rows": rows, "means": means})


if __name__ == "__main__":
    main()
