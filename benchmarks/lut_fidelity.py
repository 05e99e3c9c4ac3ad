"""Latency-table fidelity and cost on every case the table is claimed for (ONNX Runtime or OpenVINO, CPU).

For each case (model @ input size) and mode: build the table (engines built, rows measured and
copied, wall time), then verify it twice on the same 20 random plans on prune's allowed widths,
30-100% of base latency, each plan timed beside the unpruned network (``trtprune lut verify``):
median and p90 error on latency as a share of the base, and in raw milliseconds. The second
verification re-measures the same plans: how far two measurements of one plan fall apart (the
*measured floor*: no table can be held to less on this machine) and the table's error against
the second measurement.

    python benchmarks/lut_fidelity.py [--cases resnet20@28,resnet50@224] [--modes block] [--samples 20]
    python benchmarks/lut_fidelity.py --backend openvino   # the same cases in OpenVINO

Resumes: a table interrupted mid-build is finished where it stopped, and finished cases are kept
in ``--workdir`` (``fidelity-state.json``); ``--restart`` measures every case again. Run it with
nothing else on the machine. Writes benchmarks/results/lut_fidelity.{md,json} (``lut_fidelity-<backend>``
for another engine than ``ort``, or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import time
from pathlib import Path

from _cases import case_shape  # benchmarks/_cases.py, beside this script
from _results import RESULTS, save  # benchmarks/_results.py, beside this script

from trtprune.backends import BACKENDS
from trtprune.core.atomic import write_text
from trtprune.lut.build import LutConfig, build_lut
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.lut.verify import VerifyRow, median_p90, relative_error_pct, share_error_pct, verify
from trtprune.report.markdown import markdown_table

CASES = {  # case -> input shape; other model@size cases take the model's own channel count
    "resnet20@28": "1x1x28x28",  # Fashion-MNIST (1 channel), as the demo and compare_fmnist prune it
    "resnet18@64": "1x3x64x64",
    "resnet18@224": "1x3x224x224",
    "resnet50@224": "1x3x224x224",
    "mobilenet_v2@224": "1x3x224x224",
    "efficientnet_lite0@224": "1x3x224x224",
}
TARGETS = {"median": 2.0, "p90": 5.0}  # share error, percent (issue 13)
WORKDIR = "engines/bench-lut"  # tables and finished cases
ENGINES = {"ort": "ONNX Runtime", "openvino": "OpenVINO"}  # report titles


def floor(first: list[VerifyRow], second: list[VerifyRow]) -> dict[str, float]:
    """The same plans measured twice: |share1 - share2| / share2 in percent, median and p90."""
    diffs = [relative_error_pct(a.share, b.share) for a, b in zip(first, second, strict=True)]
    median, p90 = median_p90(diffs)
    return {"median": median, "p90": p90}


def share_errors(latency: LatencyModel, rows: list[VerifyRow]) -> list[float]:
    """Each verified plan's share error under ``latency``'s prediction rule (verify's own statistic)."""
    return [share_error_pct(latency, r.widths, r.share) for r in rows]


def _rounded(errors_pct: list[float]) -> tuple[float, float]:
    median, p90 = median_p90(errors_pct)
    return round(median, 2), round(p90, 2)


def table_path(case: str, mode: str, workdir: Path, backend: str = "ort") -> Path:
    """The case's table; ONNX Runtime's keep their names from before the option, other engines' name it."""
    model, shape = case_shape(case, CASES)
    return workdir / f"{model}-{shape}-{mode}{'' if backend == 'ort' else '-' + backend}.db"


def build_case(case: str, mode: str, args, workdir: Path) -> dict:
    """Build (or finish building) the case's table; what the build cost."""
    model, shape = case_shape(case, CASES)
    coarse = {"coarse_above": args.coarse_above or None} if args.coarse_above is not None else {}
    config = LutConfig(
        model=model, input_shape=shape, backend=args.backend, mode=mode, step=args.step, pairs=args.pairs, **coarse
    )
    built = build_lut(config, table_path(case, mode, workdir, args.backend))  # resumes an interrupted build
    return {k: str(v) if isinstance(v, Path) else v for k, v in built.__dict__.items()}


def verify_case(case: str, mode: str, built: dict, args, workdir: Path) -> tuple[dict, dict]:
    path = table_path(case, mode, workdir, args.backend)
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        runs.append((verify(str(path), samples=args.samples, seed=args.seed), time.perf_counter() - t0))
    (first, first_s), (second, _) = runs
    j1, j2 = first.to_json(), second.to_json()
    shares = [r.share for r in first.rows]
    fl = floor(first.rows, second.rows)
    row = {
        "case": case,
        "mode": mode,
        "engines": built["engines_built"],
        "rows": built["measured"],
        "copied": built["copied"],
        "build_s": round(built["wall_s"], 1),
        "base_ms": round(built["base_ms"], 4),
        "plans_share": f"{min(shares):.2f}-{max(shares):.2f}",
        "median_err_pct": round(j1["median_error_pct"], 2),
        "p90_err_pct": round(j1["p90_error_pct"], 2),
        "ms_median_pct": round(j1["absolute_median_error_pct"], 2),
        "ms_p90_pct": round(j1["absolute_p90_error_pct"], 2),
        "scaled_median_pct": round(j1["stage_scales_median_error_pct"], 2),
        "scaled_p90_pct": round(j1["stage_scales_p90_error_pct"], 2),
        "again_median_pct": round(j2["median_error_pct"], 2),
        "again_p90_pct": round(j2["p90_error_pct"], 2),
        "floor_median_pct": round(fl["median"], 2),
        "floor_p90_pct": round(fl["p90"], 2),
        "verify_s": round(first_s, 1),
    }
    with LutStore(path) as store:
        latency = LatencyModel(store, stage_scales=True)
    fitted = {"stage_scales": latency.stage_scales, "join_weight": latency.join_weight}
    return row, {"build": built, "verify": [j1, j2], "fitted": fitted}


def rescore(key: str, case: dict, workdir: Path, backend: str = "ort") -> None:
    """Recompute a finished case's table errors from its stored tables and measurements with this
    trtprune's prediction rule (no timing: the same measurements, another rule)."""
    path = table_path(*key.split("/"), workdir, backend)
    with LutStore(path) as store:
        latency, fitted = LatencyModel(store), LatencyModel(store, stage_scales=True)
    row = case["row"]
    first, second = ([VerifyRow.from_json(r) for r in v["rows"]] for v in case["raw"]["verify"])
    row["median_err_pct"], row["p90_err_pct"] = _rounded(share_errors(latency, first))
    row["scaled_median_pct"], row["scaled_p90_pct"] = _rounded(share_errors(fitted, first))
    row["again_median_pct"], row["again_p90_pct"] = _rounded(share_errors(latency, second))
    ms = [relative_error_pct(latency.predict_widths(r.widths), r.measured_ms) for r in first]
    row["ms_median_pct"], row["ms_p90_pct"] = _rounded(ms)
    case["raw"]["fitted"] = {"stage_scales": fitted.stage_scales, "join_weight": fitted.join_weight}
    case["raw"]["weight_limit"] = weight_limit(latency, first, second)


WEIGHTS = [i / 20 for i in range(21)]  # the joined-layer weights scanned by weight_limit


def weight_limit(latency: LatencyModel, first: list[VerifyRow], second: list[VerifyRow]) -> dict:
    """How far the table's one fitted parameter is from the best it could be on these plans.

    The joined-layer weight is scanned over [0, 1]; the best weight is the one with the lowest
    median error against the first measurement, scored against the second (a held-out measurement
    of the same plans, so the choice cannot fit that measurement's noise). Where even that weight
    misses the targets, fitting the weight better (more or other probes) cannot meet them; the
    separable rows and the machine's floor are what is left."""

    def errors(weight: float, rows: list[VerifyRow]) -> list[float]:
        model = copy.copy(latency)
        model.join_weight = weight
        return share_errors(model, rows)

    best = min(WEIGHTS, key=lambda w: median_p90(errors(w, first))[0])
    best_median, best_p90 = _rounded(errors(best, second))
    return {
        "fitted_weight": round(latency.join_weight, 3),
        "best_weight": best,
        "best_median_pct": best_median,
        "best_p90_pct": best_p90,
    }


def report(rows: list[dict], args, limits: dict[str, dict] | None = None) -> str:
    limits = limits or {}
    met = [r for r in rows if r["median_err_pct"] <= TARGETS["median"] and r["p90_err_pct"] <= TARGETS["p90"]]
    return "\n".join(
        [
            f"# LUT fidelity ({ENGINES.get(args.backend, args.backend)} CPU, 1 thread, "
            f"{platform.processor() or platform.machine()})",
            "",
            f"Command: `python benchmarks/lut_fidelity.py --cases {args.cases} --modes {args.modes} "
            f"--samples {args.samples} --step {args.step} --seed {args.seed}"
            + (f" --backend {args.backend}" if args.backend != "ort" else "")
            + (" --pairs" if args.pairs else "")
            + (f" --coarse-above {args.coarse_above}" if args.coarse_above is not None else "")
            + (f" --workdir {args.workdir}" if args.workdir != WORKDIR else "")
            + (f" --out {args.out}" if args.out else "")
            + (" --rescore`" if args.rescore else "`"),
            "",
            *(
                [
                    "Errors recomputed from the stored tables and measurements with this trtprune's prediction rule "
                    "(`--rescore`, no timing).",
                    "",
                ]
                if args.rescore
                else []
            ),  # fmt: skip
            f"Tables built as `trtprune lut build` builds them (step {args.step}, "
            f"{'with' if args.pairs else 'without'} measured pairs). `engines`: engines built (what a TensorRT "
            "user pays in build time); `rows` measured, `copied` from a structurally identical block.",
            "",
            markdown_table(rows),
            "",
            f"Errors over {args.samples} random plans on prune's allowed widths (`plans_share`: the measured range, as "
            "shares of the base network), |predicted - measured| / measured: on latency as a share of the base "
            "network measured beside each plan (`median_err_pct`, `p90_err_pct`; again against a second measurement "
            "of the same plans: `again_*`) and in raw milliseconds (`ms_*`). `scaled_*`: the same measurements "
            "against the opt-in stage scales (`LatencyModel(stage_scales=True)`: each group's change times its "
            "stage's scale, fitted with the joined-layer weight to the stage probes); the main columns use the "
            "default rule (each group's change as its block measured it, the weight fitted to the probes). `floor_*`: how far the two "
            "measurements of the same plan fall apart (shares): what this machine allows at best.",
            "",
            f"Targets (median <= {TARGETS['median']}%, p90 <= {TARGETS['p90']}% share error) met in "
            f"{len(met)} of {len(rows)} cases"
            + (f": {', '.join(r['case'] + ' ' + r['mode'] for r in met)}." if met else "."),
            *_limit_section(limits),
        ]
    )


def _limit_section(limits: dict[str, dict]) -> list[str]:
    """The weight-limit table (``--rescore``): the fitted joined-layer weight against the best one."""
    if not limits:
        return []
    rows = [{"case": key, **limit} for key, limit in limits.items()]
    return [
        "",
        "## What one fitted weight could reach",
        "",
        "The prediction has one fitted parameter, the joined-layer weight (fitted to the table's probes). "
        f"`best_weight`: of the weights {WEIGHTS[0]:g}-{WEIGHTS[-1]:g} in steps of {WEIGHTS[1]:g}, the one with the "
        "lowest median error against the first measurement; `best_*`: its errors against the second measurement "
        "of the same plans (held out). Where these miss the targets, no fit of the weight (more probes, random-plan "
        "probes) meets them: what remains is the separable rows and the machine's floor.",
        "",
        markdown_table(rows),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="model@size, comma-separated")
    parser.add_argument("--modes", default="block", help="block and/or network, comma-separated")
    parser.add_argument(
        "--backend", default="ort", choices=BACKENDS.names(), help="the engine the tables are measured in"
    )
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="the random plans verified")
    parser.add_argument("--step", type=int, default=8, help="the table's grid step")
    parser.add_argument("--pairs", action="store_true", help="also measure joined pairs (off, as in trtprune lut)")
    parser.add_argument(
        "--coarse-above", type=int, default=None, help="the table's coarse_above (0: every group on the step grid)"
    )
    parser.add_argument(
        "--out", default=None, help="results path stem (default benchmarks/results/lut_fidelity[-<backend>])"
    )
    parser.add_argument("--workdir", default=WORKDIR, help="tables and finished cases are kept here")
    parser.add_argument("--restart", action="store_true", help="measure every case again (tables are rebuilt)")
    parser.add_argument(
        "--rescore", action="store_true", help="recompute finished cases' errors with this prediction rule (no timing)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    engine = "" if args.backend == "ort" else f"-{args.backend}"
    state_path = workdir / f"fidelity-state{engine}.json"
    settings = {k: getattr(args, k) for k in ("samples", "seed", "step", "pairs", "coarse_above", "backend")}
    state = json.loads(state_path.read_text()) if state_path.exists() and not args.restart else {}
    old = {"coarse_above": None, "backend": "ort", **state.get("settings", settings)}  # states from before the options
    if old != settings:
        raise SystemExit(f"{state_path} was measured with {state['settings']}, not {settings}: pass --restart")
    state = {"settings": settings, "builds": state.get("builds", {}), "cases": state.get("cases", {})}
    for case in args.cases.split(","):
        for mode in args.modes.split(","):
            key = f"{case}/{mode}"
            if key in state["cases"] and args.rescore:
                rescore(key, state["cases"][key], workdir, args.backend)
                write_text(state_path, json.dumps(state, indent=1, default=float))
            if key in state["cases"]:
                continue
            if key not in state["builds"]:
                if args.restart:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{table_path(case, mode, workdir, args.backend)}{suffix}").unlink(missing_ok=True)
                state["builds"][key] = build_case(case, mode, args, workdir)
                write_text(state_path, json.dumps(state, indent=1, default=float))
            row, raw = verify_case(case, mode, state["builds"][key], args, workdir)
            state["cases"][key] = {"row": row, "raw": raw}
            write_text(state_path, json.dumps(state, indent=1, default=float))
            print(json.dumps(row), flush=True)
    wanted = [f"{c}/{m}" for c in args.cases.split(",") for m in args.modes.split(",")]
    rows = [state["cases"][k]["row"] for k in wanted]
    limits = {k: state["cases"][k]["raw"]["weight_limit"] for k in wanted if args.rescore}
    save(
        Path(args.out or RESULTS / f"lut_fidelity{engine}"),
        report(rows, args, limits) + "\n",
        {k: state["cases"][k] for k in wanted},
    )


if __name__ == "__main__":
    main()
