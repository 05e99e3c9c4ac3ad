"""Detectors at matched measured latency: SSDlite320 on the canvas set (ONNX Runtime, CPU), at 50% of
the base detector's measured latency, with the default method, HALP and uniform, 3 paired seeds, one
fine-tuning recipe (the detector's own losses) for all; mAP@[.5:.95] against measured latency.

The canvas set is not a public detection set: it is Fashion-MNIST items pasted at several scales on
grey canvases, with their boxes, written in COCO format from a seed (:mod:`trtprune.data.canvas`).
No detection set can be downloaded on these machines; this one exercises the real loader, the
detector's losses and the COCO evaluator (pycocotools). It is written under engines/ on each machine
(the same bytes from the same seed), not committed; run the benchmark from the repository's root.

The detector is deployed whole: the exported ``model.onnx`` holds the resize, the network, box
decoding and NMS, at a fixed post-processing load (every score passes and the detector's top-k
keeps :data:`~trtprune.models.detection_zoo.FIXED_LOAD_TOPK` candidates per class), so the latency
measured beside the base is what ships, whatever the weights.

Resumable in parts like ``compare_fmnist.py`` (the same machinery, ``_suite.py``): the base trains
in parts (``--max-minutes``), the table and every finished run are copied into --state
(benchmarks/results/detect_fmnist-state/, committed) and restored from there; commit
benchmarks/results/ after each part and rerun the same command. Once every run has finished, all
are timed together beside the base. Results: benchmarks/results/detect_fmnist.{md,json} and
detect_fmnist-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist.py --max-minutes 40 --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

import logging
from pathlib import Path

from _suite import Suite, result_lines, run_main, unfinished_lines

from trtprune.data.canvas import CanvasConfig, write_canvas_set
from trtprune.decide.matching import MatchPolicy
from trtprune.train.config import DistillConfig, TrainConfig

log = logging.getLogger("detect_fmnist")

MODEL = "ssdlite320_mobilenet_v3_large"
SIDE = 160  # the canvas side and the detector's input (torchvision's SSDlite runs at 320)
CANVAS = CanvasConfig(train=2000, val=300, size=SIDE, seed=0)
# written by the benchmark where it runs (the repository's root), the path every run's config records
CANVAS_ROOT = f"engines/canvas-fmnist-{SIDE}"
# The recipe, the same for every method: 2 stages (re-scored each), each fine-tuned 1 epoch on
# 1,000 canvases drawn at random, then pruned physically and fine-tuned once more the same way;
# SGD momentum 0.9, lr 0.01 cosine, batch 16. mAP on the first 100 val canvases per stage, on all 300 at the end.
STAGES = 2
RECIPE = TrainConfig(epochs=1, lr=0.01, batch_size=16, limit_train=1000, limit_test=100)


def write_canvas(_out: Path) -> None:
    """The canvas set at :data:`CANVAS_ROOT` (written once; the same bytes on every machine)."""
    if not (Path(CANVAS_ROOT) / "annotations" / "instances_val.json").exists():
        write_canvas_set(CANVAS_ROOT, CANVAS)


def suite(
    name: str = "detect_fmnist",
    recipe: TrainConfig = RECIPE,
    base_from: str | None = None,
    distill: DistillConfig | None = None,
    match: MatchPolicy = MatchPolicy(calls=1),
    final: TrainConfig | None = None,
) -> Suite:
    """The comparison with ``recipe`` (``base_from``: the suite whose trained base and table it starts
    from; ``distill``: every fine-tune distilled from the base detector's head outputs; ``match``: how
    every run lands on its targets, one harness call per measurement unless it says more; ``final``: the
    recipe of the fine-tune after physical pruning, None: ``recipe``)."""
    data_args = ("--data", "coco", "--data-root", CANVAS_ROOT, "--input", f"1x3x{SIDE}x{SIDE}")
    return Suite(
        name=name,
        title="canvas set (Fashion-MNIST items)",
        data={"data": "coco", "data_root": CANVAS_ROOT},
        data_args=data_args,
        train_args=("--lr", "0.05", "--batch-size", "16", "--seed", "0"),
        bases={MODEL: {"epochs": 30}},
        parts={MODEL: {"budgets": (0.5,), "methods": ("sp-lamp", "halp", "uniform")}},
        # HALP's first run on a detector measures over a thousand conv configurations (one engine each):
        # the default and uniform run first
        first=("sp-lamp", "uniform"),
        recipe=recipe,
        stages=STAGES,
        metric="mAP@[.5:.95]",
        metric_short="mAP",
        prepare=write_canvas,
        base_from=base_from,
        distill=distill,
        match=match,
        final=final,
    )


def markdown(suite: Suite):
    """The results page of ``suite``: ``(parts, command, unfinished) -> text`` for :func:`run_main`."""
    return lambda parts, command, unfinished: _markdown(suite, parts, command, unfinished)


def _recipe_text(recipe: TrainConfig) -> str:
    epochs = f"{recipe.epochs} epoch{'s' if recipe.epochs > 1 else ''}"
    drawn = (
        f"{recipe.limit_train:,} canvases drawn at random" if recipe.limit_train else f"all {CANVAS.train:,} canvases"
    )
    return f"fine-tuned {epochs} on {drawn}"


def _final_text(recipe: TrainConfig, final: TrainConfig | None) -> str:
    """How the fine-tune after physical pruning differs from the stages' (``final`` None: it does not)."""
    if final is None or final == recipe:
        return "the same way"
    ours = recipe.to_json()
    return "the same way but with " + ", ".join(f"{k} {v}" for k, v in final.to_json().items() if v != ours.get(k))


def _calls_text(calls: int) -> str:
    return "one harness call" if calls == 1 else f"the mean share of {calls} harness calls"


def _loss_text(distill: DistillConfig | None) -> str:
    if distill is None:
        return "with the detector's own losses"
    return (
        f"with (1 - {distill.weight}) x the detector's own losses + {distill.weight} x the distance of its head "
        f"outputs to the base detector's (`--distill`: class scores' KL at temperature {distill.temperature:g}, "
        "box regressions' smooth L1, anchor by anchor)"
    )


def _markdown(suite: Suite, parts: dict[str, dict], command: str, unfinished: list[str]) -> str:
    recipe = suite.recipe
    lines = [
        "# Detectors at matched measured latency: SSDlite320 on the canvas set (ONNX Runtime, CPU)",
        "",
        f"Data: the canvas set ({CANVAS.train:,} train / {CANVAS.val} val canvases of {SIDE} px, up to "
        f"{CANVAS.max_items} Fashion-MNIST items each at scales {', '.join(map(str, CANVAS.scales))}, seed "
        f"{CANVAS.seed}): made here from Fashion-MNIST, not a public detection set. The detector is timed "
        "whole (resize, network, box decoding and NMS at a fixed load) in ONNX Runtime, 1 thread.",
        "",
        f"Recipe, the same for every method and seed (seeds 0-2 paired): {STAGES} stages, each re-scored, cut to "
        f"its stage target and {_recipe_text(recipe)} {_loss_text(suite.distill)}, then pruned "
        f"physically and fine-tuned once more {_final_text(recipe, suite.final)}; SGD momentum 0.9, lr "
        f"{recipe.lr} cosine, batch {recipe.batch_size}. The metric is COCO mAP@[.5:.95] (pycocotools) "
        "on all val canvases, of the exported model in ONNX Runtime.",
        "",
        f"Matching: every measurement of a candidate beside the base, and each run's final and joint "
        f"measurement, is {_calls_text(suite.match.calls)}; the loop aims {100 * suite.match.margin:g}% under "
        "each stage's target.",
        "",
    ]
    for model, r in parts.items():
        b, t = r["base"], r["table"]
        lines += [
            f"## {model}",
            "",
            f"Base: `{b['command']}` (mAP@[.5:.95] {b['top1']:.4f}"
            + (f", {b['wall_s'] / 60:.0f} min" if b.get("wall_s") else "")
            + f"). Table: block mode, step 8, base {t['base_ms']:.4f} ms (the whole detector).",
            "",
            *result_lines(suite, model, r),
        ]
    lines += unfinished_lines(unfinished, command)
    return "\n".join(lines) + "\n"


SUITE = suite()

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
