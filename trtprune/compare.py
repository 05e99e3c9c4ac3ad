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

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from trtprune.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareConfig:
    lut: str
    methods: tuple[str, ...] = ("sp-lamp", "halp", "lap", "uniform", "global-l1")
    budgets: tuple[float, ...] = (0.3, 0.5, 0.7)
    seeds: int = 1
    out: str = "engines/compare"
    prune: dict[str, Any] = field(default_factory=dict)  # shared PruneConfig fields (data, stages, limit_train...)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(config: CompareConfig) -> None:
    from trtprune.methods.base import method_names

    unknown = [m for m in config.methods if m not in method_names()]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; choose from: {', '.join(method_names())}")
    bad = [b for b in config.budgets if not 0 < b < 1]
    if bad:
        raise UsageError(f"budget ratio {bad[0]} must be in (0, 1): a share of the unpruned latency")
    if config.seeds < 1:
        raise UsageError("--seeds must be at least 1")


def run_compare(config: CompareConfig, progress=None) -> Path:
    """Run (or resume) every run, measure them together, write the tables; returns OUT."""
    from trtprune.atomic import write_json, write_text
    from trtprune.prune import PruneConfig, run_prune

    _check(config)
    out = Path(config.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    runs = []
    for budget in config.budgets:
        for method in config.methods:
            for seed in range(config.seeds):
                run_dir = out / "runs" / f"{method}-b{budget:g}-s{seed}"
                if not (run_dir / "report.json").exists():  # run directories are atomic: present means whole
                    t0 = time.perf_counter()
                    pc = PruneConfig(lut=config.lut, budget_ratio=budget, method=method, seed=seed, out=str(run_dir))
                    run_prune(replace(pc, **config.prune))
                    log.info("%s at %.2f seed %d: %.0f s", method, budget, seed, time.perf_counter() - t0)
                runs.append((method, budget, seed, run_dir))
                if progress:
                    progress({"done": len(runs), "total": len(config.budgets) * len(config.methods) * config.seeds})
    rows, environment = _measure(runs)
    result = {
        "format": 1,
        "config": config.to_json(),
        "environment": environment,
        "rows": rows,
        "summary": summarize(rows),
    }
    write_json(out / "compare.json", result)
    write_text(out / "compare.md", markdown(result))
    pareto_plot(rows, out / "pareto.png")
    return out


def _measure(runs: list[tuple[str, float, int, Path]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from trtprune.bench import measure_onnx_side_by_side
    from trtprune.lut.store import LutStore

    reports = {run_dir: json.loads((run_dir / "report.json").read_text()) for *_, run_dir in runs}
    with LutStore(reports[runs[0][3]]["table"]) as store:
        meta = store.require_meta()
    paths = {"base": runs[0][3] / "base.onnx", **{str(d): d / "model.onnx" for *_, d in runs}}
    measured = measure_onnx_side_by_side(meta, paths)
    if measured is None:
        raise UsageError(f"compare measures the emitted ONNX models; backend {meta.backend!r} takes modules")
    t, environment = measured
    base = t["base"].median_ms
    rows = []
    for method, budget, seed, run_dir in runs:
        r = reports[run_dir]
        ms = t[str(run_dir)].median_ms
        share = ms / base
        rows.append(
            {
                "method": method,
                "budget_ratio": budget,
                "seed": seed,
                "measured_ms": ms,
                "base_ms": base,
                "measured_share": share,
                "speedup": 1 / share,
                "meets_budget": share <= budget,
                "noisy": t[str(run_dir)].noisy,
                "spread": t[str(run_dir)].spread,
                "top1": r["top1"],
                "base_top1": r["base_top1"],
                "params": r["params"],
                "base_params": r["base_params"],
                "flops": r["flops"],
                "base_flops": r["base_flops"],
                "run_share": r["measured_share"],
                "wall_s": r["wall_s"],
                "method_s": r.get("method_s"),
                "run": str(run_dir),
            }
        )
    return rows, environment


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (budget, method): means over seeds, and the spread (sample std) of top-1."""
    out = []
    keys = sorted({(r["budget_ratio"], r["method"]) for r in rows})
    for budget, method in keys:
        rs = [r for r in rows if r["budget_ratio"] == budget and r["method"] == method]
        top1 = [r["top1"] for r in rs]
        out.append(
            {
                "budget_ratio": budget,
                "method": method,
                "seeds": len(rs),
                "top1_mean": statistics.fmean(top1),
                "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                "measured_share_mean": statistics.fmean(r["measured_share"] for r in rs),
                "measured_ms_mean": statistics.fmean(r["measured_ms"] for r in rs),
                "speedup_mean": statistics.fmean(r["speedup"] for r in rs),
                "all_meet_budget": all(r["meets_budget"] for r in rs),
                "params_mean": statistics.fmean(r["params"] for r in rs),
                "flops_mean": statistics.fmean(r["flops"] for r in rs),
            }
        )
    return out


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
        "in one interleaved harness call beside the base.",
        "",
        "| budget | method | measured ms | share | speed-up | top-1 (mean ± std, n) | params | MMACs | budget met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        lines.append(
            f"| {s['budget_ratio']:.2f} | {s['method']} | {s['measured_ms_mean']:.4f} | {s['measured_share_mean']:.3f} | "
            f"{s['speedup_mean']:.2f}x | {s['top1_mean']:.4f} ± {s['top1_std']:.4f} ({s['seeds']}) | "
            f"{s['params_mean']:,.0f} | {s['flops_mean'] / 1e6:.2f} | {'yes' if s['all_meet_budget'] else 'NO'} |"
        )
    lines += [
        "",
        "Per run:",
        "",
        "| budget | method | seed | measured ms | share | top-1 | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['budget_ratio']:.2f} | {r['method']} | {r['seed']} | {r['measured_ms']:.4f} | "
            f"{r['measured_share']:.3f} | {r['top1']:.4f} | {r['params']:,} |"
        )
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trtprune.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        summary = [s for s in summarize(rows) if s["method"] == method]
        ax.errorbar(
            [s["measured_ms_mean"] for s in summary],
            [s["top1_mean"] for s in summary],
            yerr=[s["top1_std"] for s in summary],
            marker="o",
            capsize=3,
            label=method,
        )
    base = rows[0]
    ax.scatter([base["base_ms"]], [base["base_top1"]], marker="*", s=120, color="black", label="base")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("top-1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
