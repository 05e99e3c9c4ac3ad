"""Is a fidelity case's error the grid's, the probes' or the model's? Score other tables on its measured plans.

Builds the table of a finished ``lut_fidelity.py`` case again with another design (``--mode``,
``--points``: 0 for the full step grid read as a staircase, ``--stage-probes``) and scores it on the
plans that case already measured (no new plan is timed): median and p90 share error with the stage
scales off and on, and, for the scaled rule, fitted to each kind of probe alone (uniform cuts, stage
cuts, designed plans). If a denser grid or another mode does no better, the error is the additive
model's on this engine and machine, not the table's design.

    python benchmarks/lut_diagnose.py resnet18@64 --points 0 --stage-probes   # the full grid, every probe
    python benchmarks/lut_diagnose.py resnet18@64 --mode network

Run it with nothing else on the machine. Writes benchmarks/results/lut_diagnose.{md,json} (every
diagnosis so far, keyed by case and design).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

from _cases import case_shape  # benchmarks/_cases.py, beside this script
from _results import RESULTS, save  # benchmarks/_results.py, beside this script
from lut_fidelity import CASES

from trtprune.lut.build import LutConfig, build_lut
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.lut.verify import VerifyRow, median_p90, share_error_pct
from trtprune.report.markdown import markdown_table

STATE = RESULTS / "lut_fidelity-state" / "fidelity-state.json"


def errors(model: LatencyModel, rows: list[VerifyRow]) -> list[float]:
    return [round(v, 2) for v in median_p90(share_error_pct(model, r.widths, r.share) for r in rows)]


def diagnose(case: str, args) -> dict:
    model_name, shape = case_shape(case, CASES)
    options = {"points": args.points or None}
    if args.stage_probes:
        options["stage_probes"] = (0.75, 0.5, 0.3)
    config = LutConfig(model=model_name, input_shape=shape, mode=args.mode, **options)
    path = Path(args.workdir) / f"{case.replace('@', '-')}-{args.mode}-p{args.points}.db"
    build_lut(config, path)  # resumes
    rows = [
        VerifyRow.from_json(r)
        for r in json.loads(STATE.read_text())["cases"][f"{case}/block"]["raw"]["verify"][0]["rows"]
    ]
    with LutStore(path) as store:
        cost, probes = store.cost(), store.probes()
        out = {"engines": cost["engines"], "build_s": round(cost["wall_s"], 1)}
        for scaled in (False, True):
            out[f"{'scaled' if scaled else 'unscaled'}_median_p90"] = errors(
                LatencyModel(store, stage_scales=scaled), rows
            )
        latency = LatencyModel(store, stage_scales=True)
        for kind in ("probe-", "stage-", "design-"):
            subset = [p for p in probes if p.name.startswith(kind)]
            if subset:
                fitted = copy.copy(latency)
                fitted.stage_scales, fitted.join_weight = fitted._fit(subset, scaled_stages=True)
                out[f"scaled_fit_on_{kind.rstrip('-')}_median_p90"] = errors(fitted, rows)
        base = latency.base_ms
        unscaled = LatencyModel(store, stage_scales=False)
        out["probes"] = {p.name: {"measured": round(p.share, 3), "rows_add_up_to": round(1 + unscaled._singles(
            unscaled.settings.probe_widths[p.name]) / base, 3)} for p in probes}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="a finished lut_fidelity.py case (model@size, block mode)")
    parser.add_argument("--mode", default="block", choices=("block", "network"))
    parser.add_argument("--points", type=int, default=6, help="0: every step, read as a staircase")
    parser.add_argument("--stage-probes", action="store_true", help="also time the stage probes")
    parser.add_argument("--workdir", default="engines/bench-lut-diagnose")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    stem = RESULTS / "lut_diagnose"
    done = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else {}
    key = f"{args.case} {args.mode} points={args.points}" + (" +stage probes" if args.stage_probes else "")
    done[key] = diagnose(args.case, args)
    columns = list(dict.fromkeys(n for d in done.values() for n in d if n != "probes"))
    table = [{"case / design": k, **{n: d.get(n, "-") for n in columns}} for k, d in done.items()]
    text = "\n".join([
        "# Where a table's error comes from (ONNX Runtime CPU, 1 thread)",
        "",
        "Each row: a case's table built again with another design, scored on the 20 plans `lut_fidelity.py` "
        "measured for the case (share errors, median and p90, percent; stage scales off and on, and fitted to "
        "each kind of probe alone). Commands: `python benchmarks/lut_diagnose.py CASE [--mode M] [--points N] "
        "[--stage-probes]`, one per row.",
        "",
        markdown_table(table),
        "",
        "Probes (whole networks timed beside the base): the share measured against the share the rows add up "
        "to, per design in `lut_diagnose.json`.",
    ])  # fmt: skip
    save(stem, text + "\n", done)


if __name__ == "__main__":
    main()
