"""A comparison's report: per (budget, method) summaries, the markdown tables and the Pareto plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from trtprune.core.atomic import atomic_path


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
        f"in one interleaved harness call beside the base; runs more than {100 * result['remeasure_over']:.0f}% over their "
        "budget were timed once more beside the base, the same way, and the share shown is the mean of all "
        "their calls (the first measurement's in `first share`).",
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
