"""Contracts over the registries: every method, every backend, every command's --help."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trtprune.backends import BACKENDS, BackendConfig, get_backend
from trtprune.core.errors import TrtpruneError
from trtprune.methods import method_names

FIXTURES = Path(__file__).parent / "fixtures"
# every table format this trtprune reads: settings format 1 (3ba278b, network mode), build settings
# format 2 (e643a1d, block mode: the full step grid read as a staircase), format 3 (8c39b1b: a sparse
# grid and designed probes, no closing frame), format 4 (4805867: the closing frame, narrower bounds
# on the fitted scales and weight) and today's (built here)
TABLES = ("format1", "format2-block", "format3-block", "format4-block", "current")


@pytest.fixture(scope="module")
def current_table(tmp_path_factory) -> Path:
    """A table of today's format: a sparse grid read linearly, with designed probes."""
    from trtprune.engine.timing import TimingConfig
    from trtprune.lut.build import LutConfig, build_lut

    path = tmp_path_factory.mktemp("current") / "lut.db"
    timing = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)
    config = LutConfig(model="resnet20", input_shape=(1, 1, 28, 28), mode="block", step=16, small=4, points=2,
                       refine=False, probes=(0.5,), designs=2, timing=timing)  # fmt: skip
    build_lut(config, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("name", method_names())
def test_every_method_decides_on_a_table_of_each_format(name, table, tmp_path, request):
    """Setup, score and decide of every registered method on a table of each format it reads."""
    import shutil

    from trtprune.methods import StageState
    from trtprune.prune import PruneConfig
    from trtprune.prune.inputs import load_inputs

    source = request.getfixturevalue("current_table") if table == "current" else FIXTURES / f"table-{table}.db"
    lut = Path(shutil.copy(source, tmp_path / "lut.db"))  # opening a table migrates its schema in place
    options = {"table": str(tmp_path / "convs.db")} if name == "halp" else {}  # not beside the fixture
    if name == "lap":
        options = {"episodes": 12, "warmup": 4, "holdout": 100}
    run = load_inputs(PruneConfig(lut=str(lut), budget_ratio=0.7, method=name, method_options=options))
    model = copy.deepcopy(run.loaded.model)
    run.method.setup(run.method_context(copy.deepcopy(model)))
    state = StageState(
        model=model,
        groups=run.groups,
        latency=run.latency,
        current={g.name: g.channels for g in run.groups.groups},
        round_to=run.round_to,
        model_name=run.model_name,
        stage=1,
        stages=1,
        seed=0,
        batches=run.batches,
    )
    state.scores = run.method.score(state)
    assert set(state.scores) == {g.name for g in run.groups.groups}
    goal = 0.7 * run.latency.base_ms
    decision = run.method.decide(state, goal)
    assert decision.predicted_ms <= goal + 1e-9
    assert all(1 <= decision.widths[g.name] <= g.channels for g in run.groups.groups)
    decision.plan.validate(run.groups, "resnet20")


class _Tiny:
    @staticmethod
    def build():
        import torch
        from torch import nn

        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(8, 4),
        ).eval()  # fmt: skip


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_runs_times_describes_and_deploys(name, tmp_path):
    import torch

    from trtprune.engine.export import export_onnx

    backend = get_backend(name)
    config = BackendConfig(device="cuda" if name == "trt" else "cpu")
    try:
        backend.check_available(config)
    except TrtpruneError as exc:
        pytest.skip(f"{name}: {exc}")
    model, shape = _Tiny.build(), (1, 1, 8, 8)
    onnx_path = export_onnx(model, shape, tmp_path / "tiny.onnx")
    source = model if backend.consumes == "module" else onnx_path
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with backend.prepare(source, shape, config) as runner:
        np.testing.assert_allclose(runner.infer(x), expected, atol=1e-4, rtol=1e-4)
        assert runner.timed(5) > 0
        with pytest.raises(TrtpruneError, match="does not match"):
            runner.infer(np.zeros((2, 1, 8, 8), np.float32))
    env = backend.environment(config)
    assert {"engine", "version", "device"} <= set(env)
    files = backend.deploy(onnx_path, tmp_path, config)
    assert all((tmp_path / f).is_file() for f in files.values())
    assert bool(files) == (backend.consumes == "onnx")


_HELP_EVERYWHERE = r"""
import contextlib, io, json, sys
sys.modules["tensorrt"] = None  # import tensorrt fails as it does where TensorRT is absent
import typer
from trtprune.cli import app, main

def paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, prefix + (name,))

results = {}
for path in paths(typer.main.get_command(app)):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*path, "--help"])
    results[" ".join(path)] = (code, "Usage" in out.getvalue())
print(json.dumps({"results": results, "torch_cuda": "torch.cuda" in sys.modules and __import__("torch").cuda.is_available()}))
"""


def test_every_command_and_subcommand_has_help_without_tensorrt_or_cuda():
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-c", _HELP_EVERYWHERE], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    commands = out["results"]
    expected = {"", "models", "groups", "train", "export", "eval", "lut", "lut build", "lut predict", "lut verify"}
    assert expected | {"lut plot", "lut export-json", "bench", "prune", "compare"} <= set(commands)
    assert all(code == 0 and usage for code, usage in commands.values()), commands
    assert not out["torch_cuda"]
