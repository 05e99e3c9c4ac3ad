"""Detectors at matched measured latency, the final fine-tune twice as long: ``detect_fmnist_landed.py``'s
comparison (SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured
latency, the default method, HALP and uniform, 3 paired seeds, every fine-tune 6 epochs on all 2,000
training canvases, every measurement the mean share of 3 harness calls) with the fine-tune after
physical pruning 12 epochs instead of 6 (``--final-epochs 12``; lr 0.01 cosine as before, the stages'
fine-tunes unchanged). Every fine-tune 6 epochs instead of 3 lifted the default from 0.640 to 0.652
(``detect_fmnist_long.py``), 1.3 points under the base's 0.665; a lower lr for the final fine-tune did not
help (``detect_fmnist_final_lr.py``). The question: is the rest of the gap the final fine-tune's length?

It starts from the trained base and the table committed in detect_fmnist-state/ (copied into --out,
not trained again), as the landed comparison did, and keeps its own runs in detect_fmnist_final_long-state/;
resumable in parts like every comparison (``_suite.py``): commit benchmarks/results/ after each part and
rerun the same command. The default method runs its 3 seeds first, then HALP, then uniform (uniform's
seed 0 ran before the order changed to put the default's closest rival first): each seed pairs with
the landed comparison's run of the same method and seed, which has the same recipe up to the final
fine-tune's length (its stages are matched again, so its widths may differ by measurement noise). HALP's
per-layer conv table is the landed comparison's (detect_fmnist_landed-state/, measured on the same
processor kind, copied into --out before HALP's first run here), so HALP does not time again the
entries it timed there. About 16-18 minutes a run alone on 2 cores (AMD EPYC: 933-1062 s).
Results: benchmarks/results/detect_fmnist_final_long.{md,json} and detect_fmnist_final_long-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_final_long.py --max-minutes 38 --one-processor --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

from dataclasses import replace

from _suite import run_main
from detect_fmnist import markdown
from detect_fmnist_landed import landed
from detect_fmnist_long import LONG_RECIPE

SUITE = replace(landed("detect_fmnist_final_long", final=replace(LONG_RECIPE, epochs=12)), first=("sp-lamp", "halp"))

if __name__ == "__main__":
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
