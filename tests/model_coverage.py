"""Does a model prune and export? One random plan, checked end to end.

For one architecture: trace its channel groups, draw a random plan, cut the model, export it,
and compare three networks on one input: the pruned model in torch, its ONNX in ONNX Runtime,
and the unpruned model with every removed channel zeroed (the *oracle*: equal to the pruned
model exactly when the groups are right, for networks without norms over channels). The
parameter count must be the one the plan implies, and no layer may be left without channels.
Used by the generality tests and ``benchmarks/coverage.py``.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.errors import UnsupportedModelError
from trtprune.engine.export import export_onnx, ort_session
from trtprune.graph.groups import find_groups
from trtprune.models import build_model
from trtprune.surgery.apply import apply_plan, expected_param_count, zero_removed
from trtprune.surgery.plan import Plan, _expand_local

if TYPE_CHECKING:
    from trtprune.graph.groups import ModelGroups
    from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)

# timm CNNs of many families, checked by tests/models/test_generality.py and benchmarks/coverage.py
TIMM_SWEEP: dict[str, str] = {
    "resnet26d": "ResNet-D",
    "seresnext26d_32x4d": "SE-ResNeXt-D (grouped)",
    "ecaresnet26t": "ECA-ResNet",
    "resnetv2_50": "ResNetV2 (pre-activation)",
    "resnest14d": "ResNeSt (split attention)",
    "skresnet18": "SKNet (selective kernel)",
    "regnetx_002": "RegNetX",
    "regnety_002": "RegNetY",
    "regnetz_b16": "RegNetZ",
    "timm_efficientnet_b0": "EfficientNet",
    "tf_efficientnetv2_b0": "EfficientNetV2",
    "mobilenetv3_large_100": "MobileNetV3",
    "mobilenetv4_conv_small": "MobileNetV4",
    "mixnet_s": "MixNet (mixed kernels)",
    "fbnetc_100": "FBNet",
    "mnasnet_100": "MnasNet",
    "lcnet_050": "PP-LCNet",
    "hardcorenas_a": "HardCoRe-NAS",
    "ghostnet_100": "GhostNet",
    "ghostnetv2_100": "GhostNetV2",
    "repghostnet_050": "RepGhost",
    "repvgg_a0": "RepVGG",
    "mobileone_s0": "MobileOne",
    "gernet_s": "GENet (byobnet)",
    "cspresnet50": "CSPResNet",
    "cspdarknet53": "CSPDarkNet",
    "cs3darknet_s": "CSP3-DarkNet",
    "darknet53": "DarkNet",
    "res2net50_26w_4s": "Res2Net",
    "dla34": "DLA",
    "dla60_res2net": "DLA-Res2Net",
    "hrnet_w18_small": "HRNet",
    "rexnet_100": "ReXNet",
    "convnext_atto": "ConvNeXt",
    "dpn68": "DPN (dual path)",
    "selecsls42b": "SelecSLS",
    "ese_vovnet19b_dw": "VoVNet (ESE)",
    "hgnetv2_b0": "HGNetV2",
    "timm_densenet121": "DenseNet",
    "xception41": "Xception",
    "timm_inception_v3": "Inception-V3",
    "tresnet_m": "TResNet",
    "nf_resnet26": "NF-ResNet (weight standardisation)",
}
# inputs some architectures need (their stem or head cannot run smaller)
SWEEP_INPUT: dict[str, tuple[int, int, int, int]] = {
    "inception_v3": (1, 3, 96, 96),
    "timm_inception_v3": (1, 3, 96, 96),
    "alexnet": (1, 3, 224, 224),
}
_CHANNEL_NORMS = ("LayerNorm", "GroupNorm")
ORACLE_MAX_PARAMS = (
    60_000_000  # the zeroed copy of a larger model costs more than it adds: its family is checked smaller
)


@dataclass
class Coverage:
    """The outcome for one model: ``ok``, or ``refused`` with the one-line reason."""

    model: str
    input_shape: tuple[int, ...]
    status: str
    groups: int = 0
    pinned: int = 0
    reason: str = ""
    params: int = 0
    params_pruned: int = 0
    params_expected: int = 0
    ort_error: float | None = None
    oracle_error: float | None = None
    empty_layers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sweep_input(name: str) -> tuple[int, int, int, int]:
    """The small input a model is checked at (VGG's 7x7 head pool needs 224 to export)."""
    if name in SWEEP_INPUT:
        return SWEEP_INPUT[name]
    return (1, 3, 224, 224) if name.startswith("vgg") else (1, 3, 64, 64)


def _randomize_norms(model: Any, seed: int) -> None:
    """Non-trivial batch-norm statistics, so that a wrongly removed channel shows in the outputs."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-6))


def empty_layers(model: Any) -> list[str]:
    """Layers left with a zero-sized weight or zero channels."""
    out = []
    for name, m in model.named_modules():
        weight = getattr(m, "weight", None)
        dims = [getattr(m, a, 1) for a in ("in_channels", "out_channels", "in_features", "out_features")]
        if (weight is not None and hasattr(weight, "numel") and weight.numel() == 0) or 0 in dims:
            out.append(name)
    return out


def sweep_plan(groups: ModelGroups, model: str, rng: np.random.Generator) -> Plan:
    """A random plan keeping 10-60% of every group (random positions, whole blocks for grouped convs):
    every group is cut, and the exported model stays small."""

    plan = Plan(model=model, input_shape=tuple(groups.example_input.shape))
    for g in groups.groups:
        size = g.channels // g.partitions
        if size > 1:
            n = int(rng.integers(max(1, round(0.1 * size)), max(1, round(0.6 * size)) + 1))
            plan.groups[g.name] = _expand_local(g, rng.choice(size, n, replace=False))
    return plan


def check_model(name: str, input_shape: tuple[int, ...] | None = None, seed: int = 0, oracle: bool = True) -> Coverage:
    """Prune ``name`` at a random plan, export it and compare torch, ONNX Runtime and the oracle."""
    import torch

    shape = tuple(input_shape or sweep_input(name))
    row = Coverage(name, shape, "refused")
    try:
        model = build_model(name, shape, num_classes=10, pretrained=False)
        _randomize_norms(model, seed)
        row.params = sum(p.numel() for p in model.parameters())
        groups = find_groups(model, shape)
        row.groups, row.pinned = len(groups.groups), len(groups.pinned)
        if not groups.groups:
            why = f"{groups.pinned[0].name}: {groups.pinned[0].reason}" if groups.pinned else "no prunable layer"
            raise UnsupportedModelError(f"no channel group can be pruned ({why})")
        plan = sweep_plan(groups, name, np.random.default_rng(seed))
        row.params_expected = expected_param_count(groups, plan)
        reference = None
        cut = [m for g in plan.groups for m in groups.by_name[g].members]
        if oracle and row.params <= ORACLE_MAX_PARAMS and not any(m.kind.startswith(_CHANNEL_NORMS) for m in cut):
            reference = copy.deepcopy(model)
            zero_removed(groups, plan, reference)
        apply_plan(groups, plan, name)
        row.params_pruned = sum(p.numel() for p in model.parameters())
        row.empty_layers = tuple(empty_layers(model))
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            y = model(x).numpy()
            if reference is not None:
                row.oracle_error = _rel(y, reference(x).numpy())
        del reference
        with tempfile.TemporaryDirectory() as tmp:
            session = ort_session(export_onnx(model, shape, Path(tmp) / f"{name}.onnx"))
            row.ort_error = _rel(session.run(None, {"input": x.numpy()})[0], y)
    except UnsupportedModelError as exc:
        row.reason = str(exc)
        return row
    row.status = "ok"
    if row.pinned:
        row.reason = f"{groups.pinned[0].name}: {groups.pinned[0].reason}"
    return row
