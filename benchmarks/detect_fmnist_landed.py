"""Detectors at matched measured latency, landed on the mean of 3 harness calls: ``detect_fmnist_long.py``'s
comparison (SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured
latency, the default method, HALP and uniform, 3 paired seeds, every fine-tune 6 epochs on all 2,000
training canvases) with every measurement of the matching loop, and each run's final and joint
measurement, the mean share of 3 harness calls beside the base (``MatchPolicy.calls``, the default
since format 2) instead of one. One call's share of this detector moves by 4-7% from call to call:
the earlier comparisons' runs landed 5-12% under the budget on one processor and over it on another
(``match_landing.md``), and a run pruned further than its budget asks loses mAP it had the latency for.

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again) and keeps its own runs in detect_fmnist_landed-state/; resumable in parts like every
comparison (``_suite.py``): commit benchmarks/results/ after each part and rerun the same command.
Results: benchmarks/results/detect_fmnist_landed.{md,json} and detect_fmnist_landed-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_landed.py --max-minutes 38 --one-processor --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from _suite import Suite, run_main
from detect_fmnist import markdown, suite
from detect_fmnist_long import LONG_RECIPE

from trtprune.decide.matching import MatchPolicy
from trtprune.train.config import TrainConfig


def landed(name: str, final: TrainConfig | None = None) -> Suite:
    """This comparison under another ``name`` (its own state and results), with ``final`` the recipe of the
    fine-tune after physical pruning (None: the stages' 6 epochs at lr 0.01)."""
    return suite(name, LONG_RECIPE, base_from="detect_fmnist", match=MatchPolicy(calls=3), final=final)


SUITE = landed("detect_fmnist_landed")

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
