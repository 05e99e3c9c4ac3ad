"""Plots of a table: one staircase per group (the paper's Fig. 2) and an overview."""

from __future__ import annotations

import os
from pathlib import Path

from trtprune.core.atomic import atomic_path
from trtprune.lut.store import BASE, LutStore


def plot_lut(lut_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with LutStore(lut_path) as store:
        meta = store.require_meta()
        base = store.base_ms()
        curves: dict[str, list[tuple[int, float]]] = {}
        for row in store.rows():
            if row.group != BASE:
                curves.setdefault(row.group, []).append((row.width, base + row.delta_ms))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in meta.widths:
        points = sorted(curves.get(name, [])) + [(meta.widths[name], base)]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ws, ls = zip(*points, strict=True)
        ax.step(ws, ls, where="pre", color="tab:blue", label="staircase (prediction)")
        ax.plot(ws, ls, "o", ms=3, color="tab:orange", label="measured")
        ax.set_xlabel("kept channels")
        ax.set_ylabel(f"{'network' if meta.mode == 'network' else 'base + block change'} latency (ms)")
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
        points = sorted(curves.get(name, [])) + [(meta.widths[name], base)]
        ws, ls = zip(*points, strict=True)
        ax.step(ws, [100 * v / base for v in ls], where="pre")
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
