"""``trtprune prune``: the k-stage SP-LAMP pipeline against a latency budget (paper Sec. 3.3).

Each stage re-scores the channels, solves the group knapsack for its intermediate
budget (base - (base - budget) * s / k), checks the choice by building and timing
it in the table's engine (tightening the budget when the measurement says it is
over), applies it as soft masks and fine-tunes. Then the model is pruned
physically, fine-tuned once more, exported, built into the deployable engine and
measured beside the unpruned model in the same process. The run directory is
written whole or not at all.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtprune.errors import TrtpruneError, UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneConfig:
    lut: str
    budget_ms: float | None = None
    budget_ratio: float | None = None
    model: str | None = None
    checkpoint: str | None = None
    input_shape: str | None = None
    data: str = "fashion-mnist"
    data_root: str | None = None
    method: str = "sp-lamp"
    importance: str | None = None  # the channel scorer, for methods that take one (sp-lamp)
    method_options: dict[str, Any] = field(default_factory=dict)
    stages: int = 1
    finetune_epochs: int = 1
    lr: float = 0.01
    batch_size: int = 128
    round_to: int | None = None  # default: the table's grid step
    remeasure: bool = False
    out: str | None = None
    calib: str | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_eval: int | None = None  # stage-by-stage top-1 on the first N test samples (the report's is on all)
    force_table: bool = False
    repair_rounds: int = 6  # decide-and-measure rounds per stage to land just under the stage target
    match_tolerance: float = 0.03  # stop once a choice measures within this share under the target
    # aim this share under each stage target: the same model measured again later (the report's and
    # compare's measurements) moves by about its spread, 1-2.5% on the machines measured here
    match_margin: float = 0.02

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def make_method(self):
        from trtprune.methods import get_method

        options = dict(self.method_options)
        if self.importance is not None:
            options["importance"] = self.importance
        return get_method(self.method, options)


@dataclass
class StageRecord:
    stage: int
    target_ms: float
    predicted_ms: float
    measured_share: float  # measured latency / unpruned latency measured beside it
    measured_ms: float  # in table milliseconds (share x table base)
    top1: float | None
    params: int
    widths: dict[str, int] = field(default_factory=dict)


def _budget(config: PruneConfig, base_ms: float) -> float:
    if (config.budget_ms is None) == (config.budget_ratio is None):
        raise UsageError("give exactly one of --budget-ms or --budget-ratio")
    budget = config.budget_ms if config.budget_ms is not None else config.budget_ratio * base_ms
    if budget >= base_ms:
        raise UsageError(
            f"budget {budget:.4f} ms is not below the base latency {base_ms:.4f} ms: nothing to prune; lower the budget"
        )
    if budget <= 0:
        raise UsageError(f"budget must be positive, not {budget}")
    return budget


class _Engine:
    """Builds and times candidates in the table's backend, beside the unpruned model."""

    def __init__(self, meta, base_model, shape) -> None:
        from trtprune.candidates import prepare
        from trtprune.lut.settings import read_settings

        self.meta, self.shape = meta, shape
        self.config = read_settings(meta).backend_config
        self.base_runner = prepare(base_model, shape, meta.backend, self.config)

    def share(self, model) -> float:
        from trtprune.candidates import prepare
        from trtprune.timing import measure_interleaved

        with prepare(model, self.shape, self.meta.backend, self.config) as runner:
            t = measure_interleaved({"base": self.base_runner.timed, "cand": runner.timed}, reference="base")
        return t["cand"].ratio  # paired with the base round by round


def run_prune(config: PruneConfig, progress=None) -> Path:
    """Run the pipeline; returns the run directory."""
    from trtprune.atomic import atomic_dir
    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore

    start = time.perf_counter()
    with LutStore(config.lut) as store:
        latency = LatencyModel(store, interactions=False)  # what the separable knapsack optimises
    meta = latency.meta
    budget = _budget(config, latency.base_ms)
    name = config.model or meta.model
    if name != meta.model:
        raise TrtpruneError(
            f"table {config.lut} was built for {meta.model!r}, not {name!r}: build one with 'trtprune lut {name}'"
        )
    ckpt = config.checkpoint or meta.checkpoint
    run_dir = Path(config.out or Path("engines") / name / f"prune-{time.strftime('%Y%m%d-%H%M%S')}")
    job = _Job(config, latency, budget, name, ckpt, progress)
    job.check_inputs()
    with atomic_dir(run_dir) as tmp:
        job.workdir = tmp / "tables"
        job.workdir.mkdir()
        job.run(tmp)
        job.write(tmp, time.perf_counter() - start)
    return run_dir


class _Job:
    def __init__(self, config: PruneConfig, latency, budget: float, name: str, ckpt: str | None, progress) -> None:
        self.config, self.latency, self.budget, self.name, self.ckpt = config, latency, budget, name, ckpt
        self.progress = progress or (lambda e: None)
        self.stages: list[StageRecord] = []
        self.match_trace: list[list[tuple[float, float, float]]] = []
        self.plan = None  # the latest stage's decision

    def check_inputs(self) -> None:
        """Everything that can fail fast, before any run directory exists."""
        from trtprune.data import get_dataset, get_spec
        from trtprune.loading import load_model
        from trtprune.shapes import parse_shape

        meta = self.latency.meta
        shape = parse_shape(self.config.input_shape or tuple(meta.input_shape))
        if list(shape) != list(meta.input_shape):
            raise TrtpruneError(f"table {self.config.lut} was measured at input {meta.input_shape}, not {list(shape)}")
        self.method = self.config.make_method()
        self.spec = get_spec(self.config.data)
        self.train_set = get_dataset(self.config.data, "train", self.config.data_root, augment=True)
        self.test_set = get_dataset(self.config.data, "test", self.config.data_root)
        self.loaded = load_model(self.name, shape, self.ckpt, num_classes=self.spec.num_classes)
        if self.loaded.plan is not None:
            raise TrtpruneError(
                "the checkpoint is already pruned: start from the base checkpoint the table was built for"
            )
        from trtprune.groups import find_groups

        groups = find_groups(self.loaded.model, self.loaded.input_shape)
        self.base_groups = groups  # names and indices only: valid for every copy of the unpruned model
        widths = {g.name: g.channels for g in groups.groups}
        if widths != meta.widths:
            raise TrtpruneError(f"table {self.config.lut} was built for other widths of {self.name}; rebuild it")
        self._check_feasible(groups)

    def _check_feasible(self, groups) -> None:
        from trtprune.decision import infeasible, smallest_ms

        smallest = smallest_ms(groups, self.latency, self.config.round_to or self.latency.meta.step)
        if self.budget < smallest:
            raise infeasible(self.budget, smallest, self.latency, self.name)

    # the pipeline -------------------------------------------------------------
    def run(self, out: Path) -> None:
        from trtprune.groups import find_groups
        from trtprune.methods import StageState
        from trtprune.surgery import apply_masks
        from trtprune.train import train

        model = self.loaded.model
        shape = tuple(self.loaded.input_shape)
        self.base_model = copy.deepcopy(model)
        self.engine = _Engine(self.latency.meta, self.base_model, shape)
        self.table_s = 0.0
        round_to = self.config.round_to or self.latency.meta.step
        k = max(1, self.config.stages)
        base = self.latency.base_ms
        method = self.method
        t0 = time.perf_counter()
        method.setup(self)
        self.method_s = time.perf_counter() - t0
        current = None
        mask = None
        for s, target in enumerate(method.schedule(base, self.budget, k), start=1):
            groups = find_groups(model, shape)
            view = (
                self._remeasured(current, shape, s) if self.config.remeasure and current else _View(self.latency, 1.0)
            )
            state = StageState(
                model=model,
                groups=groups,
                latency=view.latency,
                current=current or {g.name: g.channels for g in groups.groups},
                round_to=round_to,
                model_name=self.name,
                stage=s,
                stages=k,
                seed=self.config.seed,
                job=self,
                plan=self.plan,
            )
            t0 = time.perf_counter()
            state.scores = _removed_last(method.score(state), self.plan)
            decision, share = self._solve(method, state, target, view)
            self.method_s += time.perf_counter() - t0
            if mask is not None:
                mask.remove()
            mask = apply_masks(groups, decision.plan, self.name)
            tcfg = self._finetune_config(s - 1)  # every stage fine-tunes on other samples
            result = train(model, self.train_set, self.test_set, tcfg, mask_hook=lambda _m, m=mask: m.apply())
            current = decision.widths
            self.plan = decision.plan
            self.stages.append(
                StageRecord(
                    s,
                    target,
                    decision.predicted_ms * view.scale,
                    share,
                    share * base,
                    result.top1,
                    _params_after(groups, decision.plan),
                    dict(decision.widths),
                )
            )
            self.progress({"stage": s, "stages": k, "target_ms": target, "top1": result.top1})
            log.info(
                "%s stage %d/%d: target %.4f ms, predicted %.4f, measured share %.3f, top-1 %.4f",
                method.name,
                s,
                k,
                target,
                decision.predicted_ms * view.scale,
                share,
                result.top1,
            )
        mask.remove()
        self._finish(model, shape, out)

    def batches(self, n: int):
        """``n`` shuffled training batches (fixed order for a given seed), for scores that need gradients."""
        return _batches(self.train_set, n, self.config.batch_size, self.config.seed)

    def _finetune_config(self, seed_offset: int):
        from trtprune.train import TrainConfig

        c = self.config
        return TrainConfig(
            epochs=c.finetune_epochs,
            lr=c.lr,
            batch_size=c.batch_size,
            seed=c.seed + seed_offset,
            limit_train=c.limit_train,
            limit_test=c.limit_eval,
        )

    def _remeasured(self, current: dict[str, int], shape: tuple[int, ...], stage: int) -> _View:
        """A fresh table around the current widths (``--remeasure``), in the original table's milliseconds."""
        from dataclasses import replace

        from trtprune.groups import find_groups
        from trtprune.loading import LoadedModel
        from trtprune.lut.build import _Builder, table_meta
        from trtprune.lut.predict import LatencyModel
        from trtprune.lut.store import LutStore
        from trtprune.surgery import prune_copy

        t0 = time.perf_counter()
        model = prune_copy(self.base_model, self.base_groups, current)
        groups = find_groups(model, shape)
        loaded = LoadedModel(model, self.name, shape, self.loaded.num_classes, None, None)
        cfg = replace(self.latency.settings.build, model=self.name, input_shape=shape)
        path = self.workdir / f"stage{stage}.db"
        with LutStore(path, create=True) as store:
            store.init_meta(table_meta(loaded, groups, cfg))
            _Builder(cfg, loaded, groups, store, None).run()
            latency = LatencyModel(store, interactions=False)  # what the separable knapsack optimises
        self.table_s += time.perf_counter() - t0
        current_ms = self.stages[-1].measured_ms  # the current model, in the original table's milliseconds
        return _View(latency, current_ms / latency.base_ms)

    def _solve(self, method, state, target: float, view: _View):
        """Decide, build and time the choice; adjust the goal until it measures just under target."""
        from trtprune.errors import InfeasibleBudget
        from trtprune.matching import match_target
        from trtprune.surgery import prune_copy

        shares: dict[tuple, float] = {}

        def measure(decision) -> float:
            share = self.engine.share(prune_copy(self.base_model, self.base_groups, decision.widths))
            shares[_key(decision)] = share
            return share * self.latency.base_ms

        def decide(goal: float):
            try:
                return method.decide(state, goal / view.scale)
            except InfeasibleBudget as exc:  # the smallest it can do, in the original table's ms
                if exc.smallest_ms is not None:
                    exc.smallest_ms *= view.scale
                raise

        match = match_target(
            decide,
            lambda d: d.predicted_ms * view.scale,
            measure,
            target * (1 - self.config.match_margin),
            self.latency.base_ms,
            rounds=self.config.repair_rounds,
            tolerance=self.config.match_tolerance,
            key=_key,
        )
        if not match.met:
            log.warning(
                "stage target %.4f ms (less the %.0f%% margin) not met: the fastest choice measured %.4f ms",
                target,
                100 * self.config.match_margin,
                match.measured,
            )
        self.match_trace.append(match.trace)
        return match.choice, shares[_key(match.choice)]

    def _finish(self, model, shape, out: Path) -> None:
        from trtprune.checkpoint import save_checkpoint
        from trtprune.evaluation import evaluate_onnx
        from trtprune.export import export_onnx
        from trtprune.groups import find_groups
        from trtprune.surgery import apply_plan
        from trtprune.train import train

        apply_plan(find_groups(model, shape), self.plan, self.name)
        tcfg = self._finetune_config(len(self.stages))
        self.final = train(model, self.train_set, self.test_set, tcfg)
        self.plan.save(out / "plan.json")
        pre = self.spec.preprocessing.to_json()
        save_checkpoint(
            out / "model.pt",
            model,
            model_name=self.name,
            input_shape=shape,
            num_classes=self.loaded.num_classes,
            preprocessing=pre,
            plan=self.plan.to_json(),
            metrics={"top1_torch": self.final.top1},
        )
        meta = {"trtprune.model": self.name, "trtprune.preprocessing": __import__("json").dumps(pre)}
        export_onnx(model, shape, out / "model.onnx", metadata=meta)
        export_onnx(self.base_model, shape, out / "base.onnx", metadata=meta)
        self.engine_files = _build_engine(self.latency.meta, out, self.config.calib, model, shape)
        self.top1 = evaluate_onnx(out / "model.onnx", self.test_set)
        self.base_top1_onnx = evaluate_onnx(out / "base.onnx", self.test_set)
        self.measured = _measure_final(self.latency.meta, out / "base.onnx", out / "model.onnx")
        self.params = sum(p.numel() for p in model.parameters())
        self.base_params = sum(p.numel() for p in self.base_model.parameters())
        self.model = model

    def write(self, out: Path, wall_s: float) -> None:
        from trtprune.report import write_prune_report

        write_prune_report(self, out, wall_s)


@dataclass(frozen=True)
class _View:
    """A table and the factor from its milliseconds to the original table's."""

    latency: Any
    scale: float


def _key(decision) -> tuple:
    return tuple(sorted(decision.widths.items()))


def _removed_last(scores: dict[str, Any], plan) -> dict[str, Any]:
    """Channels an earlier stage removed stay removed: they score below every kept channel
    (soft masks zero only the producer side, so some scores still see their consumer slices)."""
    import numpy as np

    if plan is None:
        return scores
    out = dict(scores)
    for name, kept in plan.groups.items():
        s = np.asarray(out[name], dtype=np.float64)
        alive = np.zeros(len(s), dtype=bool)
        alive[np.asarray(kept)] = True
        out[name] = np.where(alive, s, s.min() - 1.0 - np.abs(s).max())
    return out


def _params_after(groups, plan) -> int:
    from trtprune.surgery import expected_param_count

    return expected_param_count(groups, plan)


def _batches(dataset, n: int, batch_size: int, seed: int = 0):
    import torch
    import torch.utils.data

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    for i, batch in enumerate(loader):
        if i >= n:
            break
        yield batch


def _build_engine(meta, out: Path, calib: str | None, model, shape) -> dict[str, str]:
    """The deployable engine of the table's backend, at the table's precision."""
    from trtprune.lut.settings import read_settings
    from trtprune.precision import export_with_precision

    cfg = read_settings(meta).backend_config
    files = {}
    onnx_path = out / "model.onnx"
    if cfg.precision != "fp32":
        calibration = None
        if cfg.precision == "int8" and calib:
            from trtprune.calib import load_calibration_set

            calibration = load_calibration_set(calib)
        onnx_path = export_with_precision(model, shape, out / f"model.{cfg.precision}.onnx", cfg.precision, calibration)
        files[cfg.precision] = onnx_path.name
    if meta.backend == "trt":
        from trtprune.backends.trt import build_engine_bytes, save_plan

        save_plan(build_engine_bytes(onnx_path, cfg), out / "model.plan")
        files["engine"] = "model.plan"
    elif meta.backend == "ort":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(out / "model.ort.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        files["engine"] = "model.ort.onnx"
    return files


def _measure_final(meta, base_onnx: Path, pruned_onnx: Path) -> dict[str, Any]:
    from trtprune.bench import measure_onnx_side_by_side

    measured = measure_onnx_side_by_side(meta, {"base": base_onnx, "pruned": pruned_onnx})
    if measured is None:
        return {}
    t, environment = measured
    return {"base": t["base"].to_json(), "pruned": t["pruned"].to_json(), "environment": environment}
