"""Every method at matched measured latency on Fashion-MNIST (ONNX Runtime, CPU): ResNet-20 at 30/50/70%
of the base latency, ResNet-56 at 50%, 3 paired seeds, one fine-tuning recipe for all.

Resumable end to end: the trained bases, the latency tables and every finished run are kept
under --out and reused; rerun the same command after an interruption. What a wiped machine needs
to resume (the bases, the tables, each finished run's report.json and model.onnx) is also copied
as it finishes into --state (benchmarks/results/compare_fmnist-state/, committed) and restored from
there into --out, so the benchmark spans sessions on machines that keep nothing but the repository.
Work in parts: ``--max-minutes N`` starts no run (nor base-training epoch) after N minutes, lets
the one in progress finish, copies the state and stops; commit benchmarks/results/ after each part
and rerun the same command to resume. Every run records the commit of the code that decided and
fine-tuned it (``commits.json`` in the state; run it from a clean clone of that commit), and every
part its wall time (``parts.json``). Once every run has finished, all are timed together.
Results (per-run and summary tables, pareto plots, the recipe and the wall time) are saved beside
this script in benchmarks/results/compare_fmnist.{md,json} and compare_fmnist-<model>.png.

    python benchmarks/compare_fmnist.py --max-minutes 40      # one part: stops starting runs after 40 min
    python benchmarks/compare_fmnist.py --models resnet20     # one model
    python benchmarks/compare_fmnist.py --freeze-cgroup /sys/fs/cgroup/freezer/devwork
        # freeze that cgroup (other jobs on the machine) whenever a latency is timed
"""

from __future__ import annotations

from pathlib import Path

from _suite import (
    SEEDS,
    State,
    Suite,
    code_commit,
    paired,
    result_lines,
    run_main,
    table,
    unfinished_lines,
)
from _suite import base_checkpoint as _base_checkpoint

from trtprune.prune import PruneConfig
from trtprune.train.config import DistillConfig, TrainConfig

__all__ = [
    "RECIPE",
    "SEEDS",
    "STAGES",
    "STATE",
    "State",
    "base_checkpoint",
    "code_commit",
    "paired",
    "table",
    "template",
]

# The recipe, the same for every method: 2 stages (re-scored each), each fine-tune 1 epoch on
# 15,000 training samples drawn at random (a new draw per fine-tune), then the final fine-tune
# after physical pruning: 45,000 samples per run in all; SGD momentum 0.9, lr 0.01 cosine, batch 128.
STAGES = 2
# limit_test: per-stage top-1 on the first 2,000 test images; the reported top-1 uses all 10,000
RECIPE = TrainConfig(epochs=1, lr=0.01, batch_size=128, limit_train=15000, limit_test=2000)


BASES = {  # trained once from scratch with `trtprune train` (SGD 0.9, lr 0.1 cosine, wd 5e-4, batch 128)
    "resnet20": {"epochs": 15},
    "resnet56": {"epochs": 10},
}
PARTS = {
    "resnet20": {
        "budgets": (0.3, 0.5, 0.7),
        "methods": (
            "sp-lamp",  # the default
            "sp-lamp:importance=sp-lamp",  # the paper's own score
            "halp",
            "lap",
            "uniform",
            "global-l1",
            "sp-lamp-macs",
            "torch-pruning",
            "modelopt-fastnas",  # NVIDIA Model Optimizer's FastNAS
        ),
    },
    "resnet56": {"budgets": (0.5,), "methods": ("sp-lamp", "halp", "uniform")},
}
# run first, at every budget, before the rest: the default and its nearest rival
FIRST = ("sp-lamp", "halp")
SUITE = Suite(
    name="compare_fmnist",
    title="Fashion-MNIST",
    data={"data": "fashion-mnist"},
    data_args=("--data", "fashion-mnist"),
    train_args=("--lr", "0.1", "--seed", "0"),
    bases=BASES,
    parts=PARTS,
    recipe=RECIPE,
    stages=STAGES,
    first=FIRST,
)
STATE = SUITE.state


def template(model: str, checkpoint: str, lut: str, distill: DistillConfig | None = None) -> PruneConfig:
    """Every run's shared settings: the model, its base, the table, the recipe (and distillation)."""
    return SUITE.template(model, checkpoint, lut, distill)


def base_checkpoint(model: str, out: Path, minutes_left: float | None = None) -> dict:
    """Train this comparison's base of ``model`` once (:func:`_suite.base_checkpoint`)."""
    return _base_checkpoint(SUITE, model, out, minutes_left)


def _markdown(parts: dict[str, dict], command: str, unfinished: list[str]) -> str:
    lines = [
        "# Methods at matched measured latency: ResNet-20 and ResNet-56 on Fashion-MNIST (ONNX Runtime, CPU)",
        "",
        "Recipe, the same for every method and seed (seeds 0-2 paired across methods): "
        f"{STAGES} stages, each re-scored, pruned to its stage target as soft masks and fine-tuned "
        f"{RECIPE.epochs} epoch on {RECIPE.limit_train:,} training images drawn at random "
        "(a new draw per fine-tune), then pruned physically and fine-tuned once more the same way "
        f"({(STAGES + 1) * RECIPE.limit_train:,} samples per run); SGD momentum 0.9, lr "
        f"{RECIPE.lr} cosine, weight decay {RECIPE.weight_decay}, batch {RECIPE.batch_size}. Top-1 is ONNX Runtime's on the "
        "whole 10,000-image test split. Every method is matched to each stage's target by the same loop that "
        "builds and times its choice in the engine (aiming 2% under).",
        "",
    ]
    for model, r in parts.items():
        b, t = r["base"], r["table"]
        total = sum(row["wall_s"] for row in r["rows"])
        lines += [
            f"## {model}",
            "",
            f"Base: `{b['command']}` (top-1 {b['top1']:.4f}"
            + (f", {b['wall_s'] / 60:.0f} min" if b.get("wall_s") else "")
            + f"). Table: block mode, step 8, built on {t.get('processor') or 'an unrecorded processor'} "
            f"({t['engines_built']} engines this session), base {t['base_ms']:.4f} ms; every method decides "
            "from it and is matched in the engine on the processor it runs on. "
            f"Runs: {len(r['rows'])}, {total / 60:.0f} min of prune wall time in all (resumed sessions included).",
            "",
            *result_lines(SUITE, model, r),
        ]
    lines += unfinished_lines(unfinished, command)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], _markdown)
