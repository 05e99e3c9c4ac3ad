"""Detectors at matched measured latency, with a fuller recipe: ``detect_fmnist.py``'s comparison
(SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured latency,
the default method, HALP and uniform, 3 paired seeds) with every fine-tune 3 epochs on all 2,000
training canvases instead of 1 epoch on 1,000: how much of the base's mAP the methods recover when
the recipe is not the limit.

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again) and keeps its own runs in detect_fmnist_full-state/; resumable in parts like every
comparison (``_suite.py``): commit benchmarks/results/ after each part and rerun the same command.
Results: benchmarks/results/detect_fmnist_full.{md,json} and detect_fmnist_full-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_full.py --max-minutes 38 --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from dataclasses import replace

from _suite import run_main
from detect_fmnist import RECIPE, markdown, suite

FULL_RECIPE = replace(RECIPE, epochs=3, limit_train=None)
SUITE = suite("detect_fmnist_full", FULL_RECIPE, base_from="detect_fmnist")

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
