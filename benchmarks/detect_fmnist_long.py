"""Detectors at matched measured latency, with a longer recipe: ``detect_fmnist_full.py``'s comparison
(SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured latency,
the default method, HALP and uniform, 3 paired seeds, every fine-tune on all 2,000 training canvases)
with every fine-tune 6 epochs instead of 3: whether the gap the fuller recipe left to the base
(0.640 against 0.665, default) is the recipe's length. The pruned detectors then see 18 epochs of
fine-tuning in all (3 fine-tunes), against the base's 30 epochs of training.

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again) and keeps its own runs in detect_fmnist_long-state/; resumable in parts like every
comparison (``_suite.py``): commit benchmarks/results/ after each part and rerun the same command.
Results: benchmarks/results/detect_fmnist_long.{md,json} and detect_fmnist_long-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_long.py --max-minutes 42 --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from dataclasses import replace

from _suite import run_main
from detect_fmnist import markdown, suite
from detect_fmnist_full import FULL_RECIPE

LONG_RECIPE = replace(FULL_RECIPE, epochs=6)
SUITE = suite("detect_fmnist_long", LONG_RECIPE, base_from="detect_fmnist")

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
