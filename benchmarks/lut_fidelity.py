"""Latency-table fidelity and cost: network vs block mode, ONNX Runtime on CPU.

For each model and mode: build the table from scratch (engines built, wall time),
then verify it on 20 random plans on prune's allowed widths (predicted vs measured whole-network
latency: median and p90 absolute percentage error, as shares of the base network
measured alongside; raw-millisecond errors too), and repeatability (the same plan
measured twice, minutes apart). Prints a Markdown table and saves it, with the
raw JSON, beside this script in benchmarks/results/.

    python benchmarks/lut_fidelity.py [--models resnet20,resnet18] [--samples 20] [--step 8] [--pairs]

Tables are built as ``trtprune lut`` builds them (no joined pairs unless ``--pairs``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script

from trtprune.backends import BackendConfig
from trtprune.lut.build import LutConfig, build_lut
from trtprune.lut.verify import verify
from trtprune.report import markdown_table

MODELS = {"resnet18": "1x3x224x224", "resnet20": "1x1x28x28"}


def repeatability(model: str, shape: str) -> dict:
    """One pruned plan measured twice, minutes apart (with table building in between in the real run)."""
    from trtprune.candidates import prepare
    from trtprune.groups import find_groups
    from trtprune.models import build_model
    from trtprune.shapes import parse_shape
    from trtprune.surgery import prune_copy
    from trtprune.timing import measure_interleaved

    dims = parse_shape(shape)
    net = build_model(model, dims, pretrained=False)
    groups = find_groups(net, dims)
    half = prune_copy(net, groups, {g.name: max(8, (g.channels // 2) // 8 * 8) for g in groups.groups})
    runner, base = prepare(half, dims, "ort", BackendConfig()), prepare(net, dims, "ort", BackendConfig())
    t = measure_interleaved({"half": runner.timed, "base": base.timed}, reference="base")
    return {
        "plan": "every group at half width (multiple of 8)",
        "median_ms": t["half"].median_ms,
        "share": t["half"].ratio,
    }


def join_weight(path: Path) -> float:
    """The joined-layer weight the table's probes fit (:class:`~trtprune.lut.predict.LatencyModel`)."""
    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore

    with LutStore(path) as store:
        return round(LatencyModel(store).join_weight, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet18")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--step", type=int, default=8, help="grid step (the same for both modes)")
    parser.add_argument("--pairs", action="store_true", help="also measure joined pairs (off, as in trtprune lut)")
    parser.add_argument(
        "--out", default=None, help="results path stem (default benchmarks/results/lut_fidelity-<models>)"
    )
    parser.add_argument("--workdir", default="engines/bench-lut", help="tables are kept (and resumed) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows, raw = [], {}
    for model in args.models.split(","):
        shape = MODELS[model]
        first = repeatability(model, shape)
        for mode in ("network", "block"):
            path = Path(args.workdir) / f"{model}-{mode}.db"
            path.unlink(missing_ok=True)
            for extra in ("-wal", "-shm"):
                Path(str(path) + extra).unlink(missing_ok=True)
            result = build_lut(
                LutConfig(model=model, input_shape=shape, mode=mode, step=args.step, pairs=args.pairs), path
            )
            t0 = time.perf_counter()
            ver = verify(str(path), samples=args.samples)
            verify_s = time.perf_counter() - t0
            j = ver.to_json()
            raw[f"{model}/{mode}"] = {
                "build": {k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()},
                "verify": j,
            }
            rows.append(
                {
                    "model": model,
                    "input": shape,
                    "mode": mode,
                    "engines": result.engines_built,
                    "rows": result.measured,
                    "copied": result.copied,
                    "wall_s": round(result.wall_s, 1),
                    "base_ms": round(result.base_ms, 4),
                    "median_err_pct": round(j["median_error_pct"], 2),
                    "p90_err_pct": round(j["p90_error_pct"], 2),
                    "join_weight": join_weight(path),
                    "singles_median_pct": round(j["no_pairs_median_error_pct"], 2),
                    "singles_p90_pct": round(j["no_pairs_p90_error_pct"], 2),
                    "abs_ms_median_pct": round(j["absolute_median_error_pct"], 2),
                    "abs_ms_p90_pct": round(j["absolute_p90_error_pct"], 2),
                    "verify_s": round(verify_s, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        second = repeatability(model, shape)
        raw[f"{model}/repeatability"] = {
            "first_ms": first["median_ms"],
            "second_ms": second["median_ms"],
            "diff_pct": 100 * abs(second["median_ms"] - first["median_ms"]) / first["median_ms"],
            "first_share": first["share"],
            "second_share": second["share"],
            "share_diff_pct": 100 * abs(second["share"] - first["share"]) / first["share"],
        }
    lines = [
        f"# LUT fidelity (ONNX Runtime CPU, 1 thread, {platform.processor() or platform.machine()})",
        "",
        f"Command: `python benchmarks/lut_fidelity.py --models {args.models} --samples {args.samples} --step {args.step}"
        + (" --pairs`" if args.pairs else "`"),
        "",
        f"Tables built {'with' if args.pairs else 'without'} measured pairs (`--pairs`). `rows` were measured, "
        "`copied` stored from a structurally identical block (block mode's dedupe). `join_weight`: the share of the "
        "joined-layer over-count (c_in x c_out layers between two cut groups) fitted to the table's probes.",
        "",
        markdown_table(rows),
        "",
        "Errors are |predicted - measured| / measured over random plans on prune's allowed widths (30-100% of base latency),",
        "on latency as a share of the base network measured beside each plan (`median_err_pct`, `p90_err_pct`),",
        "as the plain sum of single-group changes without the joined-layer correction (`singles_*`), and in raw",
        "milliseconds (`abs_ms_*`).",
        "",
        "Repeatability (same plan, measured before and after the model's two table builds):",
        *[
            f"- {k}: {v['first_ms']:.4f} ms then {v['second_ms']:.4f} ms ({v['diff_pct']:.2f}% apart); as a share of the "
            f"unpruned network measured beside it {v['first_share']:.4f} then {v['second_share']:.4f} "
            f"({v['share_diff_pct']:.2f}% apart)"
            for k, v in raw.items()
            if k.endswith("repeatability")
        ],
    ]
    for model in args.models.split(","):
        net, blk = (next(r for r in rows if r["model"] == model and r["mode"] == m) for m in ("network", "block"))
        lines.append(
            f"- {model}: block mode took {100 * blk['wall_s'] / net['wall_s']:.1f}% of network mode's wall time"
        )
    text = "\n".join(lines) + "\n"
    save(Path(args.out or RESULTS / f"lut_fidelity-{args.models.replace(',', '-')}"), text, {"rows": rows, "raw": raw})


if __name__ == "__main__":
    main()
