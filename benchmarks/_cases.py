"""Benchmark cases named ``model@size`` (e.g. ``resnet18@224``), shared by the table benchmarks."""

from __future__ import annotations

from trtprune.models import get_model_spec


def case_shape(case: str, cases: dict[str, str]) -> tuple[str, str]:
    """``model@size`` -> (model, input shape): ``cases`` names some shapes; any other case takes the
    model's own channel count at that size (or its default input without a size)."""
    model, _, size = case.partition("@")
    if case in cases:
        return model, cases[case]
    default = get_model_spec(model).default_input
    return model, f"1x{default[1]}x{size}x{size}" if size else "x".join(map(str, default))
