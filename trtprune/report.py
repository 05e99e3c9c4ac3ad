"""Side-by-side measurements of exported models: top-1 in ORT and latency with the shared harness."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.errors import TrtpruneError

if TYPE_CHECKING:
    from trtprune.prune import PruneResult


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of dict rows (columns from the first row)."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def compare_onnx(
    paths: list[Path], data: str, data_root: str | os.PathLike[str] | None, threads: int = 1, limit: int | None = None
) -> list[dict[str, Any]]:
    """Evaluate and time every ONNX model; latencies are measured interleaved in one process."""

    from trtprune.backends import BackendConfig, get_backend
    from trtprune.data import get_dataset, get_spec
    from trtprune.evaluation import evaluate_onnx
    from trtprune.export import load_proto, read_metadata
    from trtprune.timing import measure_interleaved

    spec = get_spec(data)
    for p in paths:
        pre = read_metadata(p).get("trtprune.preprocessing")
        if pre and json.loads(pre).get("mean") != list(spec.preprocessing.mean):
            raise TrtpruneError(f"{p} was trained with other preprocessing than {data}'s; evaluate it on its own data")
    sizes = {tuple(_input_size(p)) for p in paths}
    if len(sizes) > 1:
        raise TrtpruneError(
            f"the models take different inputs ({', '.join(map(str, sorted(sizes)))}): compare like with like"
        )
    test_set = get_dataset(data, "test", data_root, limit=limit, input_size=sizes.pop() if sizes else None)
    backend, config = get_backend("ort"), BackendConfig(threads=threads)
    runners = {str(p): backend.prepare(p, (), config) for p in paths}
    timings = measure_interleaved({k: r.timed for k, r in runners.items()})
    rows = []
    for p in paths:
        proto = load_proto(p)
        params = sum(int(_numel(t)) for t in proto.graph.initializer if len(t.dims) > 0)
        t = timings[str(p)]
        rows.append(
            {
                "onnx": str(p),
                "params": params,
                "top1": evaluate_onnx(p, test_set, threads),
                "median_ms": t.median_ms,
                "p90_ms": t.p90_ms,
                "spread": t.spread,
                "noisy": t.noisy,
                "environment": backend.environment(config),
            }
        )
    return rows


def _input_size(path: Path) -> tuple[int, ...]:
    """(C, H, W) of an ONNX model's first input."""
    from trtprune.export import load_proto

    dims = load_proto(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


def _numel(tensor: Any) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


def write_prune_report(result: PruneResult, out: Path) -> None:
    """report.json (the result), report.md and the plots of a prune run."""
    from trtprune.atomic import write_json, write_text

    report = result.to_json()
    write_json(out / "report.json", report)
    write_text(out / "report.md", _markdown(report))
    _plots(report, out)


def _remeasured(m: dict) -> str:
    if not m or "shares" not in m:
        return ""
    shares = ", ".join(f"{x:.3f}" for x in m["shares"])
    return f"The first measurement was over the budget; measured three times (shares {shares}), the median kept."


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
        f"| top-1 (ONNX Runtime, test split) | {r['base_top1']:.4f} | {r['top1']:.4f} |",
        f"| parameters | {r['base_params']:,} | {r['params']:,} |",
        f"| MACs | {r['base_flops']:,} | {r['flops']:,} |",
        "",
        f"Speed-up {r['speedup']:.2f}x; budget {'met' if r['meets_budget'] else 'NOT met'}." if m else "",
        _remeasured(m),
        f"Preprocessing: mean {r['preprocessing']['mean']}, std {r['preprocessing']['std']}, input {r['preprocessing']['input_size']}.",
        "",
        "## Stages",
        "",
        "| stage | target ms | predicted ms | measured ms (share x table base) | top-1 after fine-tune | params |",
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


def _plots(r: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trtprune.atomic import atomic_path

    names = list(r["widths"])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 3.5))
    ax.bar(range(len(names)), [r["base_widths"][n] for n in names], color="lightgray", label="base")
    ax.bar(range(len(names)), [r["widths"][n] for n in names], color="tab:blue", label="kept")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("channels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "widths.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    stages = r["stages"]
    fig, ax1 = plt.subplots(figsize=(5, 3.2))
    xs = [0] + [s["stage"] for s in stages]
    ax1.plot(xs, [r["table_base_ms"]] + [s["measured_ms"] for s in stages], "o-", label="measured ms")
    ax1.plot(xs, [r["table_base_ms"]] + [s["target_ms"] for s in stages], "--", label="target ms")
    ax1.set_xlabel("stage")
    ax1.set_ylabel("latency (ms)")
    ax2 = ax1.twinx()
    ax2.plot(xs, [r["base_top1"]] + [s["top1"] for s in stages], "s-", color="tab:green", label="top-1")
    ax2.set_ylabel("top-1")
    fig.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_path(out / "stages.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
