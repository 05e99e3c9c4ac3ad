"""Behaviour unchanged, shown: every method prunes the same way on this commit as on an older one.

Timing is noisy, so the comparison feeds the new code the latencies the old code measured. Each
method runs once on the old commit (checked out beside, run through its own CLI) with every
candidate timing it makes recorded in call order (with the candidate's layer shapes), then once on
this commit with those recorded shares played back in the same order (a candidate whose shapes
differ from the recorded one stops the replay: the decisions already differ). Then the two runs
must agree on everything but timings: each stage's widths, kept channels and prediction, the
matching trace's goals and predictions, the plan, the pruned weights, top-1 (per stage and final),
parameters and MACs. Same table, base checkpoint, seeds and a short recipe for every method.

    python benchmarks/same_behaviour.py --old b5b8919 --out engines/same-behaviour

Resumable: finished runs are kept under ``--out``; results in ``benchmarks/results/same_behaviour.{md,json}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script

log = logging.getLogger("same_behaviour")
ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "benchmarks" / "results" / "compare_fmnist-state"  # the comparison's base and table
METHODS = ("sp-lamp", "halp", "lap", "uniform", "global-l1", "sp-lamp-macs", "torch-pruning", "modelopt-fastnas")
RECIPE = ["--budget-ratio", "0.5", "--stages", "2", "--finetune-epochs", "1", "--limit", "512", "--limit-eval", "256"]
TIMED_KEYS = {"measured", "measured_share", "measured_in_table_ms", "speedup", "meets_budget", "wall_s", "method_s"}
TIMED_KEYS |= {"remeasure_table_s", "run_dir", "config", "method"}  # config and method: compared apart
NEW_KEYS = {"task_metrics"}  # fields an older report does not have (None there): compared where both have them


def _shapes(model) -> str:
    """What a timed candidate is: a digest of its parameters' shapes."""
    shapes = [list(p.shape) for p in model.parameters()]
    return hashlib.sha1(json.dumps(shapes).encode()).hexdigest()[:16]


def _hook_timer(calls_path: Path, replay: bool) -> None:
    """Record (old commit) or play back (this one) every CandidateTimer.share in call order."""
    from trtprune.prune.timer import CandidateTimer  # the same path on both commits

    measured = CandidateTimer.share
    recorded = json.loads(calls_path.read_text()) if replay else []
    calls: list[list] = []

    def share(self, model) -> float:
        key = _shapes(model)
        if replay:
            if len(calls) >= len(recorded) or recorded[len(calls)][0] != key:
                raise SystemExit(f"replay diverged at timing call {len(calls) + 1}: another candidate than recorded")
            value = recorded[len(calls)][1]
        else:
            value = measured(self, model)
        calls.append([key, value])
        if not replay:
            calls_path.write_text(json.dumps(calls))
        return value

    CandidateTimer.share = share


def run_one(calls: str, replay: bool, args: list[str]) -> None:
    """Child process: hook the timer and run ``trtprune prune`` with ``args`` (this PYTHONPATH's code)."""
    logging.basicConfig(level=logging.WARNING)
    _hook_timer(Path(calls), replay)
    from trtprune.cli import main

    sys.argv = ["trtprune", "prune", *args]
    main()


def _run(src: Path, out: Path, method: str, tables: Path, calls: Path, replay: bool) -> None:
    if (out / "report.json").exists():
        return
    args = ["--lut", str(tables / "lut.db"), "--checkpoint", str(tables / "base.pt"), "--method", method]
    args += [*RECIPE, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": f"{src}:{Path(__file__).parent}"}
    code = "import same_behaviour as s, sys; s.run_one(sys.argv[1], sys.argv[2] == '1', sys.argv[3:])"
    subprocess.run([sys.executable, "-c", code, str(calls), "1" if replay else "0", *args], env=env, check=True)


def _weights(run: Path) -> dict:
    import torch

    return torch.load(run / "model.pt", map_location="cpu", weights_only=True)


def _method(description) -> dict:
    """A method's description without what it timed on the way: durations (``*_s``, e.g. LAP's
    ``search_s``) and HALP's ``layers_measured`` (the conv configurations its table lacked, which the
    old run's measurements filled for the new one)."""
    described = description.to_json()  # a MethodDescription
    return {k: v for k, v in described.items() if k != "layers_measured" and not k.endswith("_s")}


def compare_runs(old: Path, new: Path) -> list[str]:
    """What differs between two runs, timings aside (empty: the same). Both reports are read by this
    commit's ``load_result`` (the old one in its older format), so a format change is no difference."""
    import torch

    from trtprune.prune import load_result

    a, b = load_result(old), load_result(new)
    skip = TIMED_KEYS | {"stages"} | {k for k in NEW_KEYS if getattr(a, k) is None}
    diffs = [f.name for f in fields(a) if f.name not in skip and getattr(a, f.name) != getattr(b, f.name)]
    if _method(a.method) != _method(b.method):
        diffs.append("method")
    if replace(a.config, out=None) != replace(b.config, out=None):
        diffs.append("config")
    for sa, sb in zip(a.stages, b.stages, strict=True):
        diffs += [f"stage {sa.stage} {f.name}" for f in fields(sa) if f.name not in ("measured_share", "measured_ms")
                  and getattr(sa, f.name) != getattr(sb, f.name)]  # fmt: skip
    if json.loads((old / "plan.json").read_text()) != json.loads((new / "plan.json").read_text()):
        diffs.append("plan.json")
    wa, wb = _weights(old), _weights(new)
    sa, sb = wa.get("state_dict", wa), wb.get("state_dict", wb)
    if sa.keys() != sb.keys() or any(not torch.equal(sa[k], sb[k]) for k in sa):
        diffs.append("pruned weights")
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="b5b8919", help="the commit before the change")
    parser.add_argument("--out", type=Path, default=Path("engines/same-behaviour"))
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out: Path = args.out.resolve()
    src = out / "old-src"
    if not src.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), args.old], check=True)
    old_commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    tables = out / "tables"
    if not tables.exists():  # the comparison's table, HALP's conv table and base, shared by both runs
        shutil.copytree(STATE / "resnet20", tables)
        shutil.copy(STATE / "resnet20-base.pt", tables / "base.pt")
    rows = []
    for method in args.methods.split(","):
        calls = out / f"{method}.calls.json"
        log.info("%s: old commit", method)
        _run(src, out / "old" / method, method, tables, calls, replay=False)
        log.info("%s: this commit, the old timings played back", method)
        _run(ROOT, out / "new" / method, method, tables, calls, replay=True)
        diffs = compare_runs(out / "old" / method, out / "new" / method)
        rows.append({"method": method, "timings_replayed": len(json.loads(calls.read_text())), "differs": diffs})
        log.info("%s: %s", method, "the same" if not diffs else f"DIFFERS in {diffs}")
    new_commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    lines = [
        "# Behaviour unchanged: each method's run on the old commit and on this one, the same timings",
        "",
        f"Old commit {old_commit.stdout.strip()}, this commit {new_commit.stdout.strip()}; ResNet-20 / Fashion-MNIST, "
        "the comparison's base and table, budget 0.5, 2 stages, 1 fine-tuning epoch on 512 samples, seed 0. "
        "Compared: each stage's widths, kept channels, prediction and matching trace, the plan, the pruned "
        "weights (tensor equality), top-1, parameters and MACs; not compared: timings.",
        "",
        "| method | timings played back | differs |",
        "|---|---|---|",
        *[f"| {r['method']} | {r['timings_replayed']} | {', '.join(r['differs']) or 'nothing'} |" for r in rows],
        "",
        f"Command: `python benchmarks/same_behaviour.py --old {args.old}`",
    ]
    save(RESULTS / "same_behaviour", "\n".join(lines) + "\n", {"old": old_commit.stdout.strip(), "rows": rows})
    print("\n".join(lines))
    if any(r["differs"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
