"""Detectors at matched measured latency, the default's pipeline with HALP's channel scores: is it the
scores or the costs that put HALP ahead on the detector? ``detect_fmnist_landed.py``'s comparison
(SSDlite320 on the canvas set, ONNX Runtime, CPU, at 50% of the base detector's measured latency, 3
paired seeds, every fine-tune 6 epochs on all 2,000 training canvases, every measurement the mean share
of 3 harness calls) with one more arm: ``sp-lamp:importance=taylor-bn``, the default method (the
measured block table, the exact group knapsack, linear stage targets, the matching loop) ranking and
valuing channels by HALP's Taylor-BN scores (Eq. 27) instead of SP-LAMP's curve scaled to each group's
Taylor total. HALP's and the default's runs are the landed comparison's own (copied from
detect_fmnist_landed-state/, not run again), and all 9 are timed together beside the base.

On the landed comparison HALP led the default by 0.7 mAP points (paired, 3 seeds). From the base, the
two scorers choose different stage-1 widths under the same table: the default keeps the first blocks
and the squeeze-excite bottlenecks wider and cuts the late expansions harder, as its SP-LAMP curve
(about harmonic inside a group) makes the lower half of a wide group cheap to remove and the lower half
of a narrow one dear; Taylor-BN's widths are close to HALP's own.

It starts from the trained base and the table committed in detect_fmnist-state/; resumable in parts
like every comparison (``_suite.py``): commit benchmarks/results/ after each part and rerun the same
command. About 14 minutes a run alone on 2 cores.
Results: benchmarks/results/detect_fmnist_taylor.{md,json} and detect_fmnist_taylor-ssdlite320_mobilenet_v3_large.png.

    python benchmarks/detect_fmnist_taylor.py --max-minutes 38 --one-processor --freeze-cgroup /sys/fs/cgroup/freezer/devwork
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from _suite import RESULTS, State, run_main
from detect_fmnist import MODEL, markdown
from detect_fmnist_landed import landed

from trtprune.compare.config import run_dir_name
from trtprune.core.atomic import copy_file

TAYLOR = "sp-lamp:importance=taylor-bn"
COPIED = ("halp", "sp-lamp")  # the landed comparison's arms, taken as they are
SUITE = replace(
    landed("detect_fmnist_taylor"),
    parts={MODEL: {"budgets": (0.5,), "methods": ("sp-lamp", "halp", TAYLOR)}},
    first=(TAYLOR,),
)


def copy_landed(src: Path, dst: Path) -> None:
    """Seed this comparison's state ``dst`` with the finished runs of ``COPIED`` in the landed
    comparison's state ``src`` (their report.json and model.onnx, the part's base.onnx, and the
    commit and processor each was made on), where it does not hold them yet."""
    part = f"compare-{MODEL}"
    names = [run_dir_name(m, b, s) for m in COPIED for b in SUITE.parts[MODEL]["budgets"] for s in range(3)]
    files = [f"runs/{n}/{f}" for n in names for f in ("model.onnx", "report.json")]  # report.json last: whole
    for rel in [*files, "base.onnx"]:
        if not (dst / part / rel).exists():
            copy_file(src / part / rel, dst / part / rel)
    landed_state, state = State(src, src), State(dst, dst)
    for book in ("commits.json", "machines.json"):
        made = landed_state.read(book)[part]

        def add(data: dict, made: dict = made) -> None:
            kept = data.setdefault(part, {})
            kept.update({n: made[n] for n in names if n not in kept})

        state.record(book, add)


def state_paths() -> tuple[Path, Path]:
    """The landed comparison's state and this one's, as the command line places them (``--results``,
    ``--state``; parsed again, in full, by :func:`run_main`)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--state", default=str(SUITE.state))
    parser.add_argument("--results", default=str(RESULTS))
    args, _ = parser.parse_known_args()
    return Path(args.results) / "detect_fmnist_landed-state", Path(args.state)


if __name__ == "__main__":
    copy_landed(*state_paths())
    run_main(SUITE, __doc__.splitlines()[0], markdown(SUITE))
