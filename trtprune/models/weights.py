"""torchvision's named weights (``--weights IMAGENET1K_V2``, ``COCO_V1``, ``DEFAULT``), as users hold
them: from the torch hub cache, or downloaded where the machine allows it; where neither works, one
line names the file torchvision expects and where to put it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from trtprune.core.errors import UsageError

if TYPE_CHECKING:
    from torch import nn


def load_named_weights(model: nn.Module, name: str, weights: str) -> None:
    """Load torchvision's weights ``weights`` of model ``name`` into ``model`` (its class count must match)."""
    import torch
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name.removeprefix("timm_"))
    except (ValueError, KeyError):
        raise UsageError(
            f"{name} has no torchvision weights: --weights names torchvision's; use --checkpoint"
        ) from None
    names = [w.name for w in enum]
    if weights != "DEFAULT" and weights not in names:
        raise UsageError(f"{name} has no weights {weights!r}: use one of {', '.join(names)} or DEFAULT")
    chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(chosen.url).path).name
    try:
        state = chosen.get_state_dict(progress=False)
    except Exception:  # no network here, or a broken cache file: the user can put the file in place
        raise UsageError(
            f"{name} weights {chosen.name} are not in {file} and cannot be downloaded: put {file.name} there "
            "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it)"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise UsageError(
            f"{name} weights {chosen.name} do not fit this model ({first}): build it with their class count "
            f"({len(chosen.meta.get('categories') or [])}) or fine-tune from a --checkpoint"
        ) from None
