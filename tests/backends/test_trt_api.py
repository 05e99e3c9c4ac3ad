"""The trt backend uses only TensorRT API that PyPI's real bindings declare (checked without importing them).

PyPI's ``tensorrt-cu12-bindings`` / ``-cu13-bindings`` 11.x wheels hold the real pybind11
module (``tensorrt_bindings/tensorrt.so``; only the ``-libs`` packages are stubs). pybind11
registers every class, method, property and enum value by its name, stored as a string in
the module's read-only data (the linker may tail-merge a name into a longer one: ``Logger``
into ``ILogger``). The test reads those strings from the wheel (fetched with ``pip download``,
skipped where it cannot be) and finds every name of ``TENSORRT_API`` among them, and none of
the calls TensorRT 10 removed.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from trtprune.backends.trt import TENSORRT_API

SOURCE = Path(__file__).parents[2] / "trtprune" / "backends" / "trt.py"
REMOVED_IN_10 = ("build_engine", "execute_async_v2", "get_binding_index", "get_binding_shape", "execute_v2_async")
# names the code binds TensorRT objects to (module, builder objects, engine and context attributes)
TRT_VALUES = {"trt", "builder", "network", "parser", "builder_config", "profile", "cache", "tensor", "runtime"}
TRT_SELF = {"engine", "context", "runtime"}


def _trt_attributes() -> set[str]:
    """Every attribute the backend reads off a TensorRT value, by name."""
    names = set()
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "trt":
            names.add(node.attr)  # trt.Logger.WARNING, trt.MemoryPoolType.WORKSPACE
        elif isinstance(base, ast.Name) and base.id in TRT_VALUES:
            names.add(node.attr)
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self":
            if base.attr in TRT_SELF:
                names.add(node.attr)
        elif isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute) and base.func.attr == "get_error":
            names.add(node.attr)  # parser.get_error(i).desc()
    return names - {"__version__"}


def test_the_manifest_lists_everything_the_backend_touches():
    listed = {part for entry in TENSORRT_API for part in entry.split(".")}
    used = _trt_attributes()
    assert used <= listed, f"used but not in TENSORRT_API: {sorted(used - listed)}"
    assert not listed & set(REMOVED_IN_10)


@pytest.fixture(scope="module", params=["tensorrt-cu12-bindings", "tensorrt-cu13-bindings"])
def binding_names(request, tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(out)]
    res = subprocess.run([*cmd, f"{request.param}>=11,<12"], capture_output=True, text=True, timeout=600)
    wheels = list(out.glob("*.whl"))
    if res.returncode != 0 or not wheels:
        pytest.skip(f"cannot fetch {request.param} from PyPI here: {res.stderr.strip().splitlines()[-1:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        so = next(n for n in wheel.namelist() if n.endswith("tensorrt.so"))
        data = wheel.read(so)
    return {m.group(0).decode() for m in re.finditer(rb"[\x20-\x7e]{2,}(?=\x00)", data)}


def _declared(name: str, strings: set[str]) -> bool:
    """``name`` is stored, on its own or as the tail of a longer string the linker merged it into."""
    return name in strings or any(s.endswith(name) for s in strings)


def test_every_name_is_declared_in_the_real_bindings(binding_names):
    missing = sorted(
        {part for entry in TENSORRT_API for part in entry.split(".") if not _declared(part, binding_names)}
    )
    assert not missing, f"not declared in the TensorRT 11 bindings: {missing}"
    assert not [name for name in REMOVED_IN_10 if name in binding_names]  # the check can tell a removed call
