"""Distillation from the unpruned model: the default method at 50% of ResNet-20's latency on
Fashion-MNIST, 3 paired seeds, the compare benchmark's recipe with and without ``--distill``.

Resumable (finished runs under --out are kept); every model of both arms is timed in one
interleaved call beside the base. Saves benchmarks/results/distill_fmnist.{md,json}.

    python benchmarks/distill_fmnist.py [--freeze-cgroup /sys/fs/cgroup/freezer/devwork]
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from pathlib import Path

from _quiet import benchmark_parser, start  # benchmarks/_quiet.py, beside this script
from _results import RESULTS, save
from compare_fmnist import RECIPE, SEEDS, STAGES, base_checkpoint, table, template

from trtprune.train.config import DistillConfig

ARMS = {"without": None, "distill": DistillConfig()}
BUDGET = 0.5


def main() -> None:
    from trtprune.compare.config import CompareConfig, run_dir_name
    from trtprune.compare.run import measure_runs, run_compare

    out = start(benchmark_parser(__doc__.splitlines()[0]).parse_args())
    t0 = time.perf_counter()
    base = base_checkpoint("resnet20", out)
    lut = table("resnet20", base["checkpoint"], out)
    runs = []
    for arm, extra in ARMS.items():
        config = CompareConfig(
            prune=template("resnet20", base["checkpoint"], lut["path"], extra),
            methods=("sp-lamp",),
            budgets=(BUDGET,),
            seeds=SEEDS,
            out=str(out / f"distill-{arm}"),
        )
        run_compare(config, measure=False)  # runs (or resumes) the arm; measured below with the other
        runs += [(arm, BUDGET, s, Path(config.out) / "runs" / run_dir_name("sp-lamp", BUDGET, s)) for s in range(SEEDS)]
    rows, environment = measure_runs(runs, lut["path"])  # both arms, one interleaved call
    summary = {}
    for arm in ARMS:
        top1 = [r["top1"] for r in rows if r["method"] == arm]
        summary[arm] = {"mean": statistics.fmean(top1), "std": statistics.stdev(top1), "runs": top1}
    by_seed = {(r["method"], r["seed"]): r["top1"] for r in rows}
    gaps = [by_seed["distill", s] - by_seed["without", s] for s in range(SEEDS)]  # paired by seed
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        f"# Distillation: the default method at {BUDGET:.0%} of ResNet-20's latency, Fashion-MNIST, {SEEDS} seeds",
        "",
        f"Base `{base['command']}` (top-1 {base['top1']:.4f}); the recipe of `compare_fmnist.py` "
        f"({STAGES} stages, {(STAGES + 1) * RECIPE.limit_train:,} fine-tuning samples per run); "
        "`distill`: the same with `--distill --distill-temperature 4 --distill-weight 0.5` (KL to the unpruned "
        "model's logits at T=4, mixed half and half with the label loss). Every model timed in one interleaved "
        f"call beside the base ({environment.get('engine')} {environment.get('version')}, "
        f"{environment.get('threads')} thread).",
        "",
        "| arm | seed | measured share | top-1 |",
        "|---|---|---|---|",
        *[f"| {r['method']} | {r['seed']} | {r['measured_share']:.3f} | {r['top1']:.4f} |" for r in rows],
        "",
        "| arm | top-1 mean ± std |",
        "|---|---|",
        *[f"| {arm} | {s['mean']:.4f} ± {s['std']:.4f} |" for arm, s in summary.items()],
        "",
        f"Paired difference (distill - without), per seed: {', '.join(f'{g:+.4f}' for g in gaps)}; "
        f"mean {statistics.fmean(gaps):+.4f} ± {statistics.stdev(gaps):.4f}.",
        "",
        f"Command: `{command}` ({(time.perf_counter() - t0) / 60:.0f} min this session)",
    ]
    arms = {arm: d.to_json() if d else None for arm, d in ARMS.items()}
    payload = {
        "command": command,
        "recipe": RECIPE.to_json(),
        "arms": arms,
        "rows": rows,
        "summary": summary,
        "gaps": gaps,
    }
    save(RESULTS / "distill_fmnist", "\n".join(lines) + "\n", payload)


if __name__ == "__main__":
    main()
