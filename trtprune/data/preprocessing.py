"""The preprocessing that belongs to a dataset."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation and the network input size (C, H, W)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Preprocessing:
        return cls(
            mean=tuple(float(x) for x in obj["mean"]),
            std=tuple(float(x) for x in obj["std"]),
            input_size=tuple(int(x) for x in obj["input_size"]),  # type: ignore[arg-type]
            format=int(obj.get("format", FORMAT)),
        )
