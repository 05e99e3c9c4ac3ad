"""Detectors at matched measured latency, the final fine-tune at a fifth of the lr: ``detect_fmnist_landed.py``'s
comparison (SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured
latency, the default method, HALP and uniform, 3 paired seeds, every fine-tune 6 epochs on all 2,000
training canvases, every measurement the mean share of 3 harness calls) with the fine-tune after
physical pruning at lr 0.002 instead of 0.01 (``--final-lr 0.002``; the stages' fine-tunes unchanged).
In the landed runs that fine-tune restarted the cosine schedule at 0.01 and lost 6-7 mAP points in its
first epoch, which its last five epochs won back only in part: the default method ended 1.3 points
under the base (0.652 against 0.665). The question: is that restart the rest of the gap?

Answer so far (part 1, AMD EPYC, 2026-12-07): no. The default's 3 seeds scored 0.6411, 0.6500 and
0.6572 (mean 0.649) against the landed runs' 0.6523, 0.6614 and 0.6436 (mean 0.652): paired -1.1,
-1.1 and +1.4 points. The lower lr keeps the first epoch's mAP but ends no higher. Uniform and HALP
were not run (a resume runs them next; not worth the 90 minutes unless the recipe changes again).

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again), as the landed comparison did, and keeps its own runs in detect_fmnist_final_lr-state/;
resumable in parts like every comparison (``_suite.py``): commit benchmarks/results/ after each part and
rerun the same command. The default method runs its 3 seeds first, then uniform, then HALP: each seed
pairs with the landed comparison's run of the same method and seed, which differs only in the final lr.
Results: benchmarks/results/detect_fmnist_final_lr.{md,json} and detect_fmnist_final_lr-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_final_lr.py --max-minutes 38 --one-processor --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from dataclasses import replace

from _suite import run_main
from detect_fmnist import markdown
from detect_fmnist_landed import landed
from detect_fmnist_long import LONG_RECIPE

SUITE = landed("detect_fmnist_final_lr", final=replace(LONG_RECIPE, lr=0.002))

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
