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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trtprune.errors import TrtpruneError, UsageError
from trtprune.records import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareConfig(Record):
    """Every method spec at every budget, ``seeds`` paired seeds each, sharing ``prune``'s settings."""

    lut: str
    methods: tuple[str, ...] = ("sp-lamp", "halp", "lap", "uniform", "global-l1")
    budgets: tuple[float, ...] = (0.3, 0.5, 0.7)
    seeds: int = 1
    out: str = "engines/compare"
    prune: dict[str, Any] = field(default_factory=dict)  # shared PruneConfig fields (data, stages, limit_train...)


def _check(config: CompareConfig) -> None:
    from dataclasses import fields

    from trtprune.methods.base import parse_method_spec
    from trtprune.prune import PruneConfig

    per_run = {"lut", "budget_ms", "budget_ratio", "method", "method_options", "seed", "out"}
    shared = {f.name for f in fields(PruneConfig)} - per_run
    unknown = sorted(set(config.prune) - shared)
    if unknown:
        raise UsageError(
            f"compare: {unknown[0]!r} is not a shared prune setting; use one of: {', '.join(sorted(shared))}"
        )

    for spec in config.methods:
        parse_method_spec(spec)  # unknown names and options fail here, naming the valid ones
    bad = [b for b in config.budgets if not 0 < b < 1]
    if bad:
        raise UsageError(f"budget ratio {bad[0]} must be in (0, 1): a share of the unpruned latency")
    if config.seeds < 1:
        raise UsageError("--seeds must be at least 1")


def run_dir_name(spec: str, budget: float, seed: int) -> str:
    """``sp-lamp:importance=sp-lamp-group`` at 0.5, seed 1 -> ``sp-lamp_importance-sp-lamp-group-b0.5-s1``."""
    return f"{spec.replace(':', '_').replace('=', '-')}-b{budget:g}-s{seed}"


class Stopped(TrtpruneError):
    """:func:`run_compare` reached its ``max_minutes`` before every run had finished; rerun to resume
    (the CLI exits with 3: not a failure, not finished)."""

    exit_code = 3

    def __init__(self, finished: int, total: int, minutes: float) -> None:
        super().__init__(f"stopped after {minutes:.0f} min with {finished} of {total} runs finished; rerun to resume")
        self.finished, self.total = finished, total


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
    from trtprune.atomic import write_json, write_text
    from trtprune.methods.base import parse_method_spec
    from trtprune.prune import PruneConfig, run_prune

    _check(config)
    out = Path(config.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    runs, missing = [], []
    total = len(config.budgets) * len(config.methods) * config.seeds
    started, ran = time.monotonic(), 0
    for budget in config.budgets:
        for spec in config.methods:
            method, options = parse_method_spec(spec)
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
                    pc = PruneConfig(
                        lut=config.lut,
                        budget_ratio=budget,
                        method=method,
                        method_options=options,
                        seed=seed,
                        out=str(run_dir),
                    )
                    run_prune(replace(pc, **config.prune))
                    log.info("%s at %.2f seed %d: %.0f s", spec, budget, seed, time.perf_counter() - t0)
                runs.append((spec, budget, seed, run_dir))
                if progress:
                    progress({"done": len(runs), "total": total})
    if not measure:
        return out
    if not runs:
        raise UsageError(f"compare: no finished run under {out / 'runs'} to measure")
    rows, environment = measure_runs(runs, config.lut)
    result = {
        "format": 2,
        "config": config.to_json(),
        "environment": environment,
        "rows": rows,
        "summary": summarize(rows),
        "missing": missing,
    }
    write_json(out / "compare.json", result)
    write_text(out / "compare.md", markdown(result))
    pareto_plot(rows, out / "pareto.png")
    return out


REMEASURE_OVER = 0.03  # a run measuring more than this share over its budget is timed once more


def measure_runs(runs: list[tuple[str, float, int, Path]], lut: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every emitted model and the base in one interleaved call, with the timing settings of the
    comparison's table ``lut`` (runs restored from elsewhere may name it by another path); runs over
    their budget by more than :data:`REMEASURE_OVER` are measured once more beside the base (the
    second figure counts)."""
    from trtprune.bench import measure_onnx_side_by_side
    from trtprune.lut.store import LutStore
    from trtprune.prune import load_result

    results = {run_dir: load_result(run_dir) for *_, run_dir in runs}
    with LutStore(lut) as store:
        meta = store.require_meta()
    base_onnx = runs[0][3] / "base.onnx"
    measured = measure_onnx_side_by_side(
        meta, {"base": base_onnx, **{str(d): d / "model.onnx" for *_, d in runs}}, reference="base"
    )
    if measured is None:
        raise UsageError(f"compare measures the emitted ONNX models; backend {meta.backend!r} takes modules")
    t, environment = measured
    shares = {str(d): t[str(d)].ratio for *_, d in runs}  # paired with the base round by round
    over = [d for _, budget, _, d in runs if shares[str(d)] > budget * (1 + REMEASURE_OVER)]
    second = {}
    if over:
        log.info("re-measuring %d run(s) over their budget by more than %.0f%%", len(over), 100 * REMEASURE_OVER)
        again, _ = measure_onnx_side_by_side(
            meta, {"base": base_onnx, **{str(d): d / "model.onnx" for d in over}}, reference="base"
        )
        second = {str(d): again[str(d)].ratio for d in over}
    base = t["base"].median_ms
    rows = []
    for spec, budget, seed, run_dir in runs:
        key = str(run_dir)
        share = second.get(key, shares[key])
        rows.append(_row(results[run_dir], spec, budget, seed, share, shares[key], key in second, t[key], base))
    return rows, environment


def _row(r, spec: str, budget: float, seed: int, share: float, first: float, again: bool, t, base_ms: float) -> dict:
    """One run's row: its measured share (the second figure where it was timed again), its result."""
    return {
        "method": spec,
        "importance": r.method.get("importance"),
        "budget_ratio": budget,
        "seed": seed,
        "measured_ms": share * base_ms,
        "base_ms": base_ms,
        "measured_share": share,
        "first_share": first,
        "remeasured": again,
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


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (budget, method): means over seeds, the spread (sample std) of top-1, and budget counts."""
    out = []
    for budget, method in dict.fromkeys((r["budget_ratio"], r["method"]) for r in rows):
        rs = [r for r in rows if r["budget_ratio"] == budget and r["method"] == method]
        top1 = [r["top1"] for r in rs]
        out.append(
            {
                "budget_ratio": budget,
                "method": method,
                "importance": rs[0].get("importance"),
                "seeds": len(rs),
                "top1_mean": statistics.fmean(top1),
                "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                "measured_share_mean": statistics.fmean(r["measured_share"] for r in rs),
                "measured_share_max": max(r["measured_share"] for r in rs),
                "measured_ms_mean": statistics.fmean(r["measured_ms"] for r in rs),
                "speedup_mean": statistics.fmean(r["speedup"] for r in rs),
                "meet_budget": sum(r["meets_budget"] for r in rs),
                "over_budget": sum(r.get("over_budget", False) for r in rs),
                "all_meet_budget": all(r["meets_budget"] for r in rs),
                "params_mean": statistics.fmean(r["params"] for r in rs),
                "flops_mean": statistics.fmean(r["flops"] for r in rs),
            }
        )
    return sorted(out, key=lambda s: (s["budget_ratio"], -s["top1_mean"]))


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    base = rows[0]
    env = result["environment"]
    lines = [
        "# Method comparison at matched measured latency",
        "",
        f"Base: {base['base_ms']:.4f} ms, top-1 {base['base_top1']:.4f}, {base['base_params']:,} params, "
        f"{base['base_flops'] / 1e6:.2f} MMACs. Engine: {env.get('engine')} {env.get('version')} on "
        f"{env.get('processor') or env.get('device')}, {env.get('threads')} thread(s). Every model below was timed "
        f"in one interleaved harness call beside the base; runs more than {100 * REMEASURE_OVER:.0f}% over their "
        "budget were timed once more beside the base and the second figure is the one shown.",
        "",
        "| budget | method | importance | measured ms | share (max) | speed-up | top-1 (mean ± std, n) | params | MMACs "
        "| within budget | over by >3% |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        lines.append(
            f"| {s['budget_ratio']:.2f} | {s['method']} | {s.get('importance') or ''} | {s['measured_ms_mean']:.4f} | "
            f"{s['measured_share_mean']:.3f} ({s.get('measured_share_max', s['measured_share_mean']):.3f}) | "
            f"{s['speedup_mean']:.2f}x | {s['top1_mean']:.4f} ± {s['top1_std']:.4f} ({s['seeds']}) | "
            f"{s['params_mean']:,.0f} | {s['flops_mean'] / 1e6:.2f} | {s.get('meet_budget', '')}/{s['seeds']} | "
            f"{s.get('over_budget', 0)} |"
        )
    if result.get("missing"):
        lines += [
            "",
            f"Not finished yet ({len(result['missing'])} runs, not in the table): {', '.join(result['missing'])}.",
        ]
    lines += [
        "",
        "Per run:",
        "",
        "| budget | method | seed | measured ms | share | first share | top-1 | params | run wall s | commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:  # commit: where the caller recorded the code each run was made with
        first = f"{r['first_share']:.3f}" if r.get("remeasured") else ""
        lines.append(
            f"| {r['budget_ratio']:.2f} | {r['method']} | {r['seed']} | {r['measured_ms']:.4f} | "
            f"{r['measured_share']:.3f} | {first} | {r['top1']:.4f} | {r['params']:,} | {r['wall_s']:.0f} | "
            f"{r.get('commit') or ''} |"
        )
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict[str, Any]], path: Path, title: str | None = None) -> None:
    """Top-1 against measured latency share: every run a small point, each method's mean a marker
    with its seed spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trtprune.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    summary = summarize(rows)
    for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        color = f"C{i % 10}"
        rs = [r for r in rows if r["method"] == method]
        ax.scatter([r["measured_share"] for r in rs], [r["top1"] for r in rs], s=10, color=color, alpha=0.5)
        ss = sorted((s for s in summary if s["method"] == method), key=lambda s: s["budget_ratio"])
        ax.errorbar(
            [s["measured_share_mean"] for s in ss],
            [s["top1_mean"] for s in ss],
            yerr=[s["top1_std"] for s in ss],
            marker="o",
            capsize=3,
            color=color,
            label=method,
        )
    ax.scatter([1.0], [rows[0]["base_top1"]], marker="*", s=120, color="black", label="base", zorder=5)
    for budget in sorted({r["budget_ratio"] for r in rows}):
        ax.axvline(budget, color="gray", lw=0.5, ls=":")
    ax.set_xlabel("measured latency / unpruned latency (timed side by side)")
    ax.set_ylabel("top-1")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
