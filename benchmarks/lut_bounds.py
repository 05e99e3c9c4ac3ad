"""The fit's bounds, rescored on stored measurements (no timing): every table the fidelity benchmarks
kept (benchmarks/results/lut_fidelity*-state/), read as it was built and read again with its stage
scales and joined-layer weight fitted within LutConfig format 5's wider bounds (the same rows,
frames and probes: a copy of the table whose build settings name the new bounds), scored against
the plans its benchmark measured (share error, median / p90) and, where the case was built twice,
how far the two tables' predictions of those plans fall apart.

    python benchmarks/lut_bounds.py

Results: benchmarks/results/lut_fidelity_bounds.{md,json}.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script
from lut_fidelity import apart, rounded, share_errors, table_path

from trtprune.lut.config import LutConfig
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.lut.verify import VerifyRow
from trtprune.report.markdown import markdown_table

# (state folder, state file, backend): every fidelity run whose tables are kept
STATES = [
    ("lut_fidelity-state", "fidelity-state.json", "ort"),
    ("lut_fidelity-closing-state", "fidelity-state.json", "ort"),
    ("lut_fidelity-remeasure-state", "fidelity-state.json", "ort"),
    ("lut_fidelity-state", "fidelity-state-openvino.json", "openvino"),
]
NEW = LutConfig(model=None)  # today's defaults: the bounds a table of format 5 is fitted within


def read(path: Path, widened: bool) -> LatencyModel:
    """The table as built, or (``widened``) a copy whose build settings take format 5's bounds."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copy(path, Path(tmp) / "t.db"))
        if widened:
            db = sqlite3.connect(copy)
            meta = json.loads(db.execute("SELECT value FROM meta WHERE key='meta'").fetchone()[0])
            build = meta["config"]["build"]
            build.setdefault("closing", False)  # what format 3 and before mean by its absence
            build |= {"format": LutConfig.FORMAT, "scale_bounds": list(NEW.scale_bounds)}
            build["weight_bounds"] = list(NEW.weight_bounds)
            with db:
                db.execute("UPDATE meta SET value=? WHERE key='meta'", (json.dumps(meta),))
            db.close()
        with LutStore(copy) as store:
            return LatencyModel(store)


def score(folder: str, name: str, backend: str, widened: bool) -> list[dict]:
    state = json.loads((RESULTS / folder / name).read_text())
    rows = []
    for key, c in state["cases"].items():
        case, mode = key.split("/")
        plans = [VerifyRow.from_json(r) for r in c["raw"]["verify"][0]["rows"]]
        first = read(table_path(case, mode, RESULTS / folder, backend), widened)
        label = case if backend == "ort" else f"{case}-{backend}"
        row = {"case": label, "state": folder, "widened": widened}
        row["median_err_pct"], row["p90_err_pct"] = rounded(share_errors(first, plans))
        row["scales"] = {k: round(v, 3) for k, v in first.stage_scales.items()}
        row["weight"] = round(first.join_weight, 3)
        again = table_path(case, mode, RESULTS / folder, backend, again=True)
        if again.exists():
            row["repeat_median_pct"], row["repeat_p90_pct"] = rounded(apart(first, read(again, widened), plans))
        rows.append(row)
    return rows


def main() -> None:
    rows = [
        r
        for folder, name, backend in STATES
        for widened in (False, True)
        for r in score(folder, name, backend, widened)
    ]
    columns = ["case", "state", "widened", "median_err_pct", "p90_err_pct", "repeat_median_pct", "repeat_p90_pct",
               "scales", "weight"]  # fmt: skip
    text = "\n".join(
        [
            "# The fit's bounds, rescored on stored measurements",
            "",
            f"Each table the fidelity benchmarks kept, read as built (`widened` False: stage scales in [1/2, 2], "
            f"joined-layer weight in [0, 1], LutConfig format 4 and before) and with format {LutConfig.FORMAT}'s bounds "
            f"(scales in {list(NEW.scale_bounds)}, weight in {list(NEW.weight_bounds)}): the same rows, frames and "
            "probes, scored against the 20 plans its benchmark measured beside the base (share error, %), and where "
            "the case was built twice, how far the two tables' predictions fall apart. No timing: "
            "`python benchmarks/lut_bounds.py`.",
            "",
            markdown_table([{c: r.get(c, "") for c in columns} for r in rows]),
        ]
    )
    print(text)
    save(RESULTS / "lut_fidelity_bounds", text + "\n", {"rows": rows})


if __name__ == "__main__":
    main()
