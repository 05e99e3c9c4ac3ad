"""Which CNNs trtprune prunes and exports: timm's families and every torchvision classification CNN.

Each model is built with random weights (no download) at a small input (64 px; 224 for VGG and
AlexNet, whose head pools need it; 96 for Inception-V3), pruned at one random plan keeping
10-60% of every group, exported to ONNX and run in ONNX Runtime (``check_model`` of ``tests/model_coverage.py``).
A row is ``ok`` when the ONNX output equals the pruned torch model, the parameter count is the
plan's and no layer is left empty; the *oracle* column compares the pruned model with the unpruned
one whose removed channels are zeroed (exact when the groups are right; not applicable to models
with norms over channels or over 60M parameters). Groups left whole are counted with the first reason.

    python benchmarks/coverage.py [--only timm|torchvision]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script

# the coverage check is test code (tests/model_coverage.py): this sweep runs it over the whole zoo
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def _table(title: str, rows: list[dict]) -> list[str]:
    ok = sum(r["status"] == "ok" for r in rows)
    lines = [
        f"## {title}: {ok} of {len(rows)} prune and export",
        "",
        "| model | family | groups | left whole | ok / refused | ONNX vs torch | oracle | params kept | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = "ok" if r["status"] == "ok" else f"refused: {r['reason']}"
        whole = str(r["pinned"]) + (f", e.g. {r['reason']}" if r["status"] == "ok" and r["pinned"] else "")
        kept = f"{r['params_pruned'] / r['params']:.0%}" if r["params"] and r["params_pruned"] else "-"
        lines.append(
            f"| {r['model']} | {r['family']} | {r['groups']} | {whole} | {status} | {_fmt(r['ort_error'])} | "
            f"{_fmt(r['oracle_error'])} | {kept} | {r['seconds']:.1f} |"
        )
    return lines + [""]


def main() -> None:
    from model_coverage import TIMM_SWEEP, check_model

    from trtprune.models import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["timm", "torchvision"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sets = {
        "timm": [(n, f) for n, f in TIMM_SWEEP.items()],
        "torchvision": [(s.name, "torchvision") for s in list_models() if s.family == "torchvision"],
    }
    payload: dict[str, list[dict]] = {}
    text = ["# Coverage: prune at a random plan, export, compare in ONNX Runtime", ""]
    for title, models in sets.items():
        if args.only and title != args.only:
            continue
        rows = []
        for name, family in models:
            start = time.perf_counter()
            row = check_model(name).to_json()
            row.update(family=family, seconds=time.perf_counter() - start)
            print(f"{name}: {row['status']} {row['reason']}", flush=True)
            rows.append(row)
        payload[title] = rows
        text += _table(title, rows)
    save(RESULTS / "coverage", "\n".join(text), payload)


if __name__ == "__main__":
    main()
