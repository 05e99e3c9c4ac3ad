"""Where benchmarks save their output: benchmarks/results/<name>.{md,json}, printed and written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def save(stem: Path, text: str, payload: Any) -> None:
    """Print ``text`` and write it to ``stem``.md and ``payload`` to ``stem``.json (whole or not at all)."""
    from trtprune.core.atomic import write_text

    print(text)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_text(stem.with_suffix(".md"), text)
    write_text(stem.with_suffix(".json"), json.dumps(payload, indent=2, default=float) + "\n")


def processor_slug(processor: str) -> str:
    """A processor's name as a file or directory name ("Intel(R) Xeon(R) Processor" -> "intel-r-xeon-r-processor")."""
    return "-".join("".join(c if c.isalnum() else " " for c in processor.lower()).split()) or "unknown"
