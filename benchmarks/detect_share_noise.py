"""What moves a whole detector's measured share from one harness call to the next: its network or its
pre/post-processing? The landed comparison's base detector and its pruned runs (SSDlite320, canvas
set, budget 0.5; ``detect_fmnist_landed-state/``: each run's ``model.onnx``) and the network part of
each (backbone, neck and heads, exported alone as ``trtprune.prune.latency_parts`` does; a run's from the
base cut to the run's widths, as latency does not depend on the weights) are timed together in ``--calls``
interleaved harness calls, fresh sessions each, in the table's engine. Per call: the base's whole and
network milliseconds, each pruned detector's share of the whole and of the network, and the
pre/post-processing (whole - network) of both. If the whole share moves while the network share holds,
the post-processing's own regime is what the matching loop's and the comparison's shares carry; if the
network share moves too, it is the network's.

On this question's first look (stop 38, AMD EPYC): the base whole read 4.97-7.76 ms from one call to
the next, and one pruned detector's share 0.42-0.52.

    python benchmarks/detect_share_noise.py [--calls 10] [--runs sp-lamp-b0.5-s0,halp-b0.5-s0] [--freeze-cgroup DIR]

Results: benchmarks/results/detect_share_noise-<processor>.{md,json}.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
from pathlib import Path

from _quiet import benchmark_parser, start
from _results import RESULTS, processor_slug, save

from trtprune.engine.bench import measure_onnx_side_by_side
from trtprune.engine.export import export_onnx
from trtprune.graph.groups import find_groups
from trtprune.lut.settings import measuring_backend
from trtprune.lut.store import LutStore
from trtprune.models.loading import load_model
from trtprune.surgery.apply import prune_copy
from trtprune.tasks import get_task

log = logging.getLogger("detect_share_noise")
STATE = RESULTS / "detect_fmnist_landed-state"
BASE = RESULTS / "detect_fmnist-state" / "ssdlite320_mobilenet_v3_large-base.pt"  # the landed comparison's base
MODEL = "ssdlite320_mobilenet_v3_large"
SHAPE = (1, 3, 160, 160)


def network_parts(runs: list[str], out: Path) -> dict[str, Path]:
    """The network part of the base detector and of each run's (the base cut to the run's widths),
    exported to ONNX under ``out``."""
    base = load_model(MODEL, SHAPE, BASE).model.eval()
    groups = find_groups(base, SHAPE)
    part = get_task("detect").network_part
    paths = {"base.network": export_onnx(part(base), SHAPE, out / "base.network.onnx")}
    for r in runs:
        widths = json.loads((STATE / f"compare-{MODEL}" / "runs" / r / "report.json").read_text())["widths"]
        pruned = prune_copy(base, groups, widths).eval()
        paths[f"{r}.network"] = export_onnx(part(pruned), SHAPE, out / f"{r}.network.onnx")
    return paths


def one_call(engine, paths: dict[str, Path], runs: list[str]) -> tuple[dict, dict]:
    """One interleaved call of every whole detector and network part (fresh sessions): the base's
    milliseconds and each run's shares and pre/post-processing, and the environment."""
    timings, environment = measure_onnx_side_by_side(*engine, paths)
    ms = {k: t.median_ms for k, t in timings.items()}
    row = {"base_whole_ms": ms["base"], "base_network_ms": ms["base.network"]}
    row["base_post_ms"] = ms["base"] - ms["base.network"]
    for r in runs:
        row[r] = {
            "whole_share": ms[r] / ms["base"],
            "network_share": ms[f"{r}.network"] / ms["base.network"],
            "post_ms": ms[r] - ms[f"{r}.network"],
        }
    return row, dict(environment)


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def markdown(calls: list[dict], runs: list[str], environment: dict, command: str) -> str:
    lines = [
        "# What moves a whole detector's share from call to call",
        "",
        f"Engine: {environment.get('engine')} {environment.get('version')} on {environment.get('processor')}, "
        f"{environment.get('threads')} thread(s); {len(calls)} interleaved calls, fresh sessions each; "
        "values: mean ± std (min-max) over the calls.",
        "",
        f"Base: whole {spread([c['base_whole_ms'] for c in calls])} ms, network "
        f"{spread([c['base_network_ms'] for c in calls])} ms, pre/post-processing "
        f"{spread([c['base_post_ms'] for c in calls])} ms.",
        "",
        "| run | whole share | network share | pre/post-processing ms |",
        "|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r} | {spread([c[r]['whole_share'] for c in calls])} | "
            f"{spread([c[r]['network_share'] for c in calls])} | {spread([c[r]['post_ms'] for c in calls])} |"
        )
    head = " | ".join(f"{r} whole / network" for r in runs)
    lines += ["", "Per call:", "", f"| call | base whole ms | base network ms | base post ms | {head} |"]
    lines.append("|---|---|---|---|" + "---|" * len(runs))
    for i, c in enumerate(calls):
        cells = " | ".join(f"{c[r]['whole_share']:.3f} / {c[r]['network_share']:.3f}" for r in runs)
        lines.append(
            f"| {i} | {c['base_whole_ms']:.3f} | {c['base_network_ms']:.3f} | {c['base_post_ms']:.3f} | {cells} |"
        )
    return "\n".join(lines + ["", f"Command: `{command}`"]) + "\n"


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10, help="interleaved harness calls")
    parser.add_argument("--runs", default="sp-lamp-b0.5-s0,halp-b0.5-s0", help="comma list of the landed runs")
    args = parser.parse_args()
    start(args)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    part = STATE / f"compare-{MODEL}"
    with LutStore(STATE / MODEL / "lut.db") as store:
        engine = measuring_backend(store.require_meta())
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"base": part / "base.onnx", **{r: part / "runs" / r / "model.onnx" for r in runs}}
        paths |= network_parts(runs, Path(tmp))
        calls = []
        for i in range(args.calls):
            row, environment = one_call(engine, paths, runs)
            calls.append(row)
            log.info("call %d: base whole %.3f ms", i, row["base_whole_ms"])
    command = f"python benchmarks/detect_share_noise.py --calls {args.calls} --runs {','.join(runs)}"
    stem = RESULTS / f"detect_share_noise-{processor_slug(str(environment.get('processor')))}"
    save(stem, markdown(calls, runs, environment, command), {"runs": runs, "calls": calls, "environment": environment})


if __name__ == "__main__":
    main()
