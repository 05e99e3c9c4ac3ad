"""Side-by-side measurements of exported models: top-1 in ORT and latency with the shared harness."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.core.atomic import atomic_path, write_json, write_text

if TYPE_CHECKING:
    from trtprune.prune import PruneResult


def write_prune_report(result: PruneResult, out: Path) -> None:
    """report.json (the result), report.md and the plots of a prune run."""

    report = result.to_json()
    write_json(out / "report.json", report)
    write_text(out / "report.md", _markdown(report))
    _plots(report, out)


def _remeasured(m: dict) -> str:
    if m and m.get("call_shares"):
        shares = ", ".join(f"{x:.3f}" for x in m["call_shares"])
        n = len(m["call_shares"])
        return (
            f"Measured in {n} harness calls (shares {shares}); the share is their mean, the timings the median call's."
        )
    if not m or not m.get("shares"):
        return ""
    shares = ", ".join(f"{x:.3f}" for x in m["shares"])
    return f"The first measurement was over the budget; measured three times (shares {shares}), the median kept."


_LABELS = {"top1": "top-1", "map": "mAP@[.5:.95]", "map_50": "mAP@.5"}


def _label(r: dict) -> str:
    return (r.get("task_metrics") or {}).get("label", "top-1")


def _metric_rows(r: dict) -> list[str]:
    """One row per metric of the task (top-1; a detector's mAP@[.5:.95] and mAP@.5), ONNX Runtime, test split."""
    t = r.get("task_metrics") or {"base": {"top1": r["base_top1"]}, "pruned": {"top1": r["top1"]}}
    return [
        f"| {_LABELS.get(k, k)} (ONNX Runtime, test split) | {t['base'][k]:.4f} | {t['pruned'][k]:.4f} |"
        for k in t["pruned"]
    ]


def _parts_lines(r: dict) -> list[str]:
    """Whole vs network latency (a detector's), measured in one interleaved call."""
    parts = (r.get("task_metrics") or {}).get("latency_parts")
    if not parts:
        return []
    rows = [
        f"| {name} | {p['whole_ms']:.3f} | {p['network_ms']:.3f} | {p['post_ms']:.3f} | {p['post_share']:.1%} |"
        for name, p in ((n, parts[n]) for n in ("base", "pruned"))
    ]
    return [
        "",
        "## Where the latency goes",
        "",
        "The whole model (`model.onnx`: resize and normalisation, network, box decoding, NMS) and its network part "
        "(backbone, neck and heads alone) of base and pruned, timed in one interleaved call in the table's engine "
        "on random inputs; pre/post-processing is whole minus network, the part pruning cannot reach. It is not a "
        "fixed cost: NMS works on the boxes scoring above the detector's threshold, so it moves with the weights.",
        "",
        "| model | whole ms | network ms | pre/post-processing ms | share of whole |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def _markdown(r: dict) -> str:
    m = r["measured"]
    lines = [
        f"# trtprune report: {r['model']} on {r['backend']} ({r['precision']}, input {'x'.join(map(str, r['input_shape']))})",
        "",
        "| | base | pruned |",
        "| --- | --- | --- |",
        f"| measured latency (ms, same harness, same process) | {m['base']['median_ms']:.4f} | {m['pruned']['median_ms']:.4f} |"
        if m
        else "",
        f"| latency in table ms (budget {r['budget_ms']:.4f}) | {r['table_base_ms']:.4f} | {r['measured_in_table_ms']:.4f} |"
        if m
        else "",
        f"| predicted (ms) | {r['table_base_ms']:.4f} | {r['predicted_ms']:.4f} |",
        *_metric_rows(r),
        f"| parameters | {r['base_params']:,} | {r['params']:,} |",
        f"| MACs | {r['base_flops']:,} | {r['flops']:,} |",
        "",
        f"Speed-up {r['speedup']:.2f}x; budget {'met' if r['meets_budget'] else 'NOT met'}." if m else "",
        _remeasured(m),
        *_parts_lines(r),
        f"Preprocessing: mean {r['preprocessing']['mean']}, std {r['preprocessing']['std']}, input {r['preprocessing']['input_size']}.",
        "",
        "## Stages",
        "",
        f"| stage | target ms | predicted ms | measured ms (share x table base) | {_label(r)} after fine-tune | params |",
        "| --- | --- | --- | --- | --- | --- |",
        *[
            f"| {s['stage']} | {s['target_ms']:.4f} | {s['predicted_ms']:.4f} | {s['measured_ms']:.4f} | {s['top1']:.4f} | {s['params']:,} |"
            for s in r["stages"]
        ],
        "",
        "## Widths",
        "",
        "| group | base | pruned |",
        "| --- | --- | --- |",
        *[f"| {g} | {r['base_widths'][g]} | {w} |" for g, w in r["widths"].items()],
        "",
        "Plots: `widths.png` (kept channels per group), `stages.png` (latency and top-1 over the stages).",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def plot_title(r: dict) -> str:
    """What every plot of a run is about: the model, the engine (and precision) and the budget."""
    share = r["budget_ms"] / r["table_base_ms"] if r["table_base_ms"] else 0.0
    return (
        f"{r['model']} on {r['backend']} ({r['precision']}): budget {r['budget_ms']:.4g} ms "
        f"({share:.0%} of {r['table_base_ms']:.4g} ms)"
    )


def widths_figure(r: dict):
    """Kept channels per group over the base's, one bar per group."""
    import matplotlib.pyplot as plt

    names = list(r["widths"])
    fig, ax = plt.subplots(figsize=(max(7, 0.35 * len(names) + 1), 3.8), layout="constrained")
    ax.bar(range(len(names)), [r["base_widths"][n] for n in names], color="lightgray", label="base")
    ax.bar(range(len(names)), [r["widths"][n] for n in names], color="tab:blue", label="kept")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("channels")
    fig.suptitle(plot_title(r), fontsize=9)
    fig.legend(fontsize=7, loc="outside right upper")  # beside the axes, never over the bars
    return fig


def stages_figure(r: dict):
    """Measured and target latency (left axis) and top-1 (right axis) after each stage; stage 0 is the base."""
    import matplotlib.pyplot as plt

    stages = r["stages"]
    fig, ax1 = plt.subplots(figsize=(6, 3.6), layout="constrained")
    xs = [0] + [int(s["stage"]) for s in stages]
    ax1.plot(xs, [r["table_base_ms"]] + [s["measured_ms"] for s in stages], "o-", label="measured ms")
    ax1.plot(xs, [r["table_base_ms"]] + [s["target_ms"] for s in stages], "--", label="target ms")
    ax1.set_xticks(xs, ["base", *map(str, xs[1:])])  # whole stages only
    ax1.set_xlabel("stage")
    ax1.set_ylabel("latency (ms)")
    ax2 = ax1.twinx()
    ax2.plot(xs, [r["base_top1"]] + [s["top1"] for s in stages], "s-", color="tab:green", label="top-1")
    ax2.set_ylabel("top-1")
    fig.suptitle(plot_title(r), fontsize=9)
    fig.legend(fontsize=7, loc="outside right upper")  # both axes' lines, beside the axes
    return fig


def _plots(r: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, figure in (("widths.png", widths_figure), ("stages.png", stages_figure)):
        fig = figure(r)
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
