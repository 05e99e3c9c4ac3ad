"""The same plan timed beside its base again and again: how far one machine's measurements fall apart.

Each repetition is one call of the timing harness (the plan and the unpruned network interleaved,
paired round by round), made in the sessions prepared at the start, and again in a fresh session
for the plan. On a shared machine the paired share of a small model can switch between regimes that
one call's spread does not show; this is the floor any latency table and any budget check face.

    python benchmarks/timing_regimes.py [--model resnet20 --shape 1x1x28x28] [--widths 0.5] [--repeats 20]

Run it with nothing else on the machine. Writes benchmarks/results/timing_regimes-<model>.{md,json}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script

from trtprune.backends import BackendConfig
from trtprune.core.shapes import parse_shape
from trtprune.engine.candidates import prepare
from trtprune.engine.timing import measure_interleaved
from trtprune.graph.groups import find_groups
from trtprune.models import build_model
from trtprune.surgery.apply import prune_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--shape", default="1x1x28x28")
    parser.add_argument("--widths", type=float, default=0.5, help="every group cut to this share of its channels")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    shape = parse_shape(args.shape)
    net = build_model(args.model, shape, pretrained=False).eval()
    groups = find_groups(net, shape)
    plan = prune_copy(net, groups, {g.name: max(1, round(g.channels * args.widths)) for g in groups.groups}).eval()
    cfg = BackendConfig()
    rows = []
    with ExitStack() as stack:
        base = stack.enter_context(prepare(net, shape, "ort", cfg)).timed
        kept = stack.enter_context(prepare(plan, shape, "ort", cfg)).timed
        t0 = time.perf_counter()
        for i in range(args.repeats):
            t = measure_interleaved({"base": base, "plan": kept}, reference="base")
            with prepare(plan, shape, "ort", cfg) as fresh:
                f = measure_interleaved({"base": base, "fresh": fresh.timed}, reference="base")
            rows.append(
                {
                    "repeat": i,
                    "at_s": round(time.perf_counter() - t0, 1),
                    "base_ms": round(t["base"].median_ms, 4),
                    "plan_ms": round(t["plan"].median_ms, 4),
                    "share": round(t["plan"].ratio, 4),
                    "call_spread": round(t["plan"].spread, 4),
                    "fresh_share": round(f["fresh"].ratio, 4),
                }
            )
            print(rows[-1], flush=True)
    shares = [r["share"] for r in rows] + [r["fresh_share"] for r in rows]
    med = statistics.median(shares)
    summary = {
        "median_share": med,
        "min_share": min(shares),
        "max_share": max(shares),
        "p90_dev_pct": sorted(100 * abs(s - med) / med for s in shares)[int(0.9 * (len(shares) - 1))],
        "median_call_spread": statistics.median(r["call_spread"] for r in rows),
    }
    from trtprune.report.markdown import markdown_table

    text = "\n".join(
        [
            f"# Timing regimes: {args.model} {args.shape}, every group at {args.widths:.0%} width, ONNX Runtime CPU",
            "",
            f"Command: `python benchmarks/timing_regimes.py --model {args.model} --shape {args.shape} "
            f"--widths {args.widths} --repeats {args.repeats}`",
            "",
            markdown_table(rows),
            "",
            f"Paired share over {len(shares)} calls: median {med:.4f}, range {summary['min_share']:.4f}-"
            f"{summary['max_share']:.4f}, p90 deviation from the median {summary['p90_dev_pct']:.1f}%; "
            f"median spread within one call {summary['median_call_spread']:.4f}.",
        ]
    )
    save(Path(RESULTS / f"timing_regimes-{args.model}"), text + "\n", {"rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
