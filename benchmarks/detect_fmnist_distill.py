"""Detectors at matched measured latency, distilled: ``detect_fmnist_full.py``'s comparison (SSDlite320
on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured latency, the default
method, HALP and uniform, 3 paired seeds, every fine-tune 3 epochs on all 2,000 training canvases) with
every fine-tune distilled from the unpruned detector's head outputs (``--distill``, its defaults):
whether the teacher recovers what the detector's own losses alone leave below the base.

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again) and keeps its own runs in detect_fmnist_distill-state/; resumable in parts like
every comparison (``_suite.py``): commit benchmarks/results/ after each part and rerun the same command.
Results: benchmarks/results/detect_fmnist_distill.{md,json} and detect_fmnist_distill-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_distill.py --max-minutes 38 --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from _suite import run_main
from detect_fmnist import markdown, suite
from detect_fmnist_full import FULL_RECIPE

from trtprune.train.config import DistillConfig

SUITE = suite("detect_fmnist_distill", FULL_RECIPE, base_from="detect_fmnist", distill=DistillConfig())

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
