"""Plots of a table: one curve per group (the paper's Fig. 2) and an overview."""

from __future__ import annotations

import os
from pathlib import Path

from trtprune.core.atomic import atomic_path
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore


def plot_lut(lut_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One PNG per group (the prediction at every width, by the table's rule between measured
    widths, and the measured widths themselves, in the base network's milliseconds) and an overview."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with LutStore(lut_path) as store:
        model = LatencyModel(store)
    meta, base = model.meta, model.base_ms
    rule = model.settings.build.between
    predicted = {g: sorted(model.cost_table(g).items()) for g in meta.widths}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in meta.widths:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ws, ls = zip(*predicted[name], strict=True)
        ax.plot(ws, [base + v for v in ls], color="tab:blue", lw=1, label=f"prediction ({rule} between rows)")
        measured = sorted(model.curves[name].items())
        ax.plot([w for w, _ in measured], [base + v for _, v in measured], "o", ms=3, color="tab:orange",
                label="measured")  # fmt: skip
        ax.set_xlabel("kept channels")
        ax.set_ylabel("network latency (ms)")
        ax.set_title(f"{meta.model} {name} ({meta.backend}, {meta.precision}, {meta.mode})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{name.replace('/', '_')}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written.append(path)
    cols = 4
    rows = (len(meta.widths) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, meta.widths, strict=False):
        ws, ls = zip(*predicted[name], strict=True)
        ax.plot(ws, [100 * (base + v) / base for v in ls], lw=1)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(meta.widths) :]:
        ax.axis("off")
    fig.suptitle(f"{meta.model}: network latency (% of base {base:.3f} ms) against kept channels", fontsize=10)
    fig.tight_layout()
    path = out_dir / "overview.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    written.append(path)
    return written
