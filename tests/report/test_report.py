"""The prune report's plots: titled with model, engine and budget, whole stages, legends beside the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from trtprune.report.prune import _plots, stages_figure, widths_figure


@pytest.fixture
def report() -> dict:
    """The fields of report.json the plots read, for a two-stage resnet20 run on ONNX Runtime."""
    base = {"layer1.0": 16, "layer2.0": 32, "layer3.0": 64}
    return {
        "model": "resnet20",
        "backend": "ort",
        "precision": "fp32",
        "budget_ms": 0.3,
        "table_base_ms": 0.6,
        "base_top1": 0.92,
        "base_widths": base,
        "widths": {g: w // 2 for g, w in base.items()},
        "stages": [
            {"stage": 1, "target_ms": 0.42, "measured_ms": 0.41, "top1": 0.91},
            {"stage": 2, "target_ms": 0.30, "measured_ms": 0.29, "top1": 0.90},
        ],
    }


@pytest.mark.parametrize("figure", [widths_figure, stages_figure])
def test_plot_titles_name_model_engine_and_budget(report, figure):
    fig = figure(report)
    title = fig.get_suptitle()
    plt.close(fig)
    assert "resnet20" in title and "ort" in title and "0.3 ms" in title and "50%" in title


def test_stage_ticks_are_whole_stages(report):
    fig = stages_figure(report)
    ticks = list(fig.axes[0].get_xticks())
    plt.close(fig)
    assert ticks == [0, 1, 2]


@pytest.mark.parametrize("figure", [widths_figure, stages_figure])
def test_legends_stay_off_the_axes(report, figure):
    fig = figure(report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    overlaps = [ax for ax in fig.axes if ax.get_window_extent(renderer).overlaps(legend)]
    plt.close(fig)
    assert not overlaps


def test_plots_are_written(report, tmp_path):
    _plots(report, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"widths.png", "stages.png"}
