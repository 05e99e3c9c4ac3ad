"""``trtprune compare``: every method at every budget through the same pipeline, measured side by side.

Each (method, budget, seed) is one ``trtprune prune`` run with the same table,
checkpoint, stages and fine-tuning recipe; its run directory is kept under
``OUT/runs/`` so an interrupted comparison resumes with the runs it has. Then every
emitted ``model.onnx`` and the unpruned ``base.onnx`` are timed in one process, in one
interleaved harness call, so every number shares one machine state. Writes
``compare.json`` (rows and per method/budget summaries), ``compare.md`` and
``pareto.png`` (top-1 against measured latency).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

from trtprune.backends import BackendConfig
from trtprune.compare.config import REMEASURE_OVER, CompareConfig, Stopped, check_config, run_dir_name
from trtprune.core.atomic import write_json, write_text
from trtprune.core.errors import UsageError
from trtprune.core.progress import RunDone
from trtprune.engine.bench import measure_onnx_side_by_side
from trtprune.lut.settings import measuring_backend
from trtprune.lut.store import LutStore
from trtprune.prune import load_result, run_prune
from trtprune.report.compare import markdown, pareto_plot, summarize

log = logging.getLogger(__name__)


def run_compare(
    config: CompareConfig,
    progress=None,
    finished_only: bool = False,
    max_minutes: float | None = None,
    measure: bool = True,
) -> Path:
    """Run (or resume) every run, measure them together, write the tables; returns OUT.

    ``finished_only``: run nothing; measure and tabulate the runs that have finished (a snapshot
    of a long comparison in progress), the missing ones listed in the tables. ``max_minutes``: once
    that many minutes have passed, start no further run (the one in progress finishes) and raise
    :class:`Stopped` instead of measuring; a second call resumes with the runs finished so far. A
    call always finishes at least one missing run (``max_minutes=0``: exactly one per call).
    ``measure`` False: run only (a later call measures every run together)."""

    check_config(config)
    out = Path(config.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    runs, missing = [], []
    total = len(config.budgets) * len(config.methods) * config.seeds
    started, ran = time.monotonic(), 0
    for budget in config.budgets:
        for spec in config.methods:
            for seed in range(config.seeds):
                run_dir = out / "runs" / run_dir_name(spec, budget, seed)
                if not (run_dir / "report.json").exists() and finished_only:
                    missing.append(run_dir.name)
                    continue
                if not (run_dir / "report.json").exists():  # run directories are atomic: present means whole
                    minutes = (time.monotonic() - started) / 60
                    if max_minutes is not None and ran and minutes >= max_minutes:
                        raise Stopped(len(runs), total, minutes)
                    ran += 1
                    t0 = time.perf_counter()
                    run_prune(config.run_config(spec, budget, seed, str(run_dir)))
                    log.info("%s at %.2f seed %d: %.0f s", spec, budget, seed, time.perf_counter() - t0)
                runs.append((spec, budget, seed, run_dir))
                if progress:
                    progress(RunDone(len(runs), total))
    if not measure:
        return out
    if not runs:
        raise UsageError(f"compare: no finished run under {out / 'runs'} to measure")
    rows, environment = measure_runs(runs, config.lut, config.prune.match.calls)
    result = {
        "format": 4,  # 3: remeasure_over; 4: a remeasured run's share is the mean of all its calls, call_shares
        "config": config.to_json(),
        "environment": environment,
        "remeasure_over": REMEASURE_OVER,
        "rows": rows,
        "summary": summarize(rows),
        "missing": missing,
    }
    write_json(out / "compare.json", result)
    write_text(out / "compare.md", markdown(result))
    pareto_plot(rows, out / "pareto.png")
    return out


def measure_runs(
    runs: list[tuple[str, float, int, Path]], lut: str, calls: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every emitted model and the base in one interleaved call (``calls`` such calls: each share
    their mean), with the timing settings of the comparison's table ``lut`` (runs restored from
    elsewhere may name it by another path); runs over their budget by more than :data:`REMEASURE_OVER`
    are measured once more beside the base, the same way, and their share is the mean of all their
    calls (a second look refines the figure; it does not replace it)."""

    results = {run_dir: load_result(run_dir) for *_, run_dir in runs}
    with LutStore(lut) as store:
        meta = store.require_meta()
    base_onnx = runs[0][3] / "base.onnx"
    engine = measuring_backend(meta)
    per_call, t, environment = joint_shares(engine, base_onnx, {str(d): d / "model.onnx" for *_, d in runs}, calls)
    over = [d for _, budget, _, d in runs if statistics.fmean(per_call[str(d)]) > budget * (1 + REMEASURE_OVER)]
    again: dict[str, list[float]] = {}
    if over:
        log.info("re-measuring %d run(s) over their budget by more than %.0f%%", len(over), 100 * REMEASURE_OVER)
        again, *_ = joint_shares(engine, base_onnx, {str(d): d / "model.onnx" for d in over}, calls)
    base = t["base"].median_ms
    rows = []
    for spec, budget, seed, run_dir in runs:
        key = str(run_dir)
        rows.append(_row(results[run_dir], spec, budget, seed, per_call[key], again.get(key, []), t[key], base))
    return rows, environment


def joint_shares(
    engine: tuple[str, BackendConfig], base_onnx: Path, models: dict[str, Path], calls: int
) -> tuple[dict[str, list[float]], dict, dict]:
    """``models`` beside the base in ``calls`` interleaved calls (fresh sessions each): each one's
    paired share per call, the first call's timings and the environment."""
    per_call = []
    for _ in range(calls):
        measured = measure_onnx_side_by_side(*engine, {"base": base_onnx, **models}, reference="base")
        if measured is None:
            raise UsageError(f"compare measures the emitted ONNX models; backend {engine[0]!r} takes modules")
        per_call.append(measured)
    shares = {k: [t[k].ratio for t, _ in per_call] for k in models}
    return shares, *per_call[0]


def _row(r, spec: str, budget: float, seed: int, first: list[float], again: list[float], t, base_ms: float) -> dict:
    """One run's row: its result and its measured share, the mean of all its calls (``first``: the joint
    measurement's, ``again``: the second look's where it was timed again)."""
    share = statistics.fmean(first + again)
    return {
        "method": spec,
        "importance": r.method.importance,
        "budget_ratio": budget,
        "seed": seed,
        "measured_ms": share * base_ms,
        "base_ms": base_ms,
        "measured_share": share,
        "first_share": statistics.fmean(first),
        "call_shares": first + again,
        "remeasured": bool(again),
        "speedup": 1 / share,
        "meets_budget": share <= budget,
        "over_budget": share > budget * (1 + REMEASURE_OVER),
        "noisy": t.noisy,
        "spread": t.spread,
        "top1": r.top1,
        "base_top1": r.base_top1,
        "params": r.params,
        "base_params": r.base_params,
        "flops": r.flops,
        "base_flops": r.base_flops,
        "run_share": r.measured_share,
        "wall_s": r.wall_s,
        "method_s": r.method_s,
        "run": r.run_dir,
    }
