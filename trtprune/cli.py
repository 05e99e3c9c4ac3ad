"""The thin command-line interface: parse options, make one library call, print the result."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

import trtprune as tp
from trtprune.backends.base import BACKENDS
from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.progress import Event
from trtprune.decide.matching import MatchPolicy
from trtprune.train.config import FINETUNE, DistillConfig, TrainConfig

DISTILL, MATCH, TRAIN = DistillConfig(), MatchPolicy(), TrainConfig()  # the defaults the options show

app = typer.Typer(
    name="trtprune",
    help="Deployment-aware structured pruning: prune CNNs to a latency budget measured in the real engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("trtprune")

InputOpt = Annotated[str | None, typer.Option("--input", help="input shape NxCxHxW, e.g. 1x3x224x224")]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", help="trtprune checkpoint (.pt)")]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights", help="torchvision's weights by name (IMAGENET1K_V2, COCO_V1, DEFAULT), from the torch hub cache"
    ),
]
DataRootOpt = Annotated[Path | None, typer.Option("--data-root", help="dataset folder (overrides the default)")]
FinalEpochsOpt = Annotated[
    int | None, typer.Option("--final-epochs", help="the fine-tune after physical pruning (default: --finetune-epochs)")
]
FinalLrOpt = Annotated[float | None, typer.Option("--final-lr", help="its initial lr, cosine to zero (default: --lr)")]


def _console():
    """Rich output on stdout; into a pipe or file, wide enough that no name is cut (``| grep`` finds it)."""
    from rich.console import Console

    console = Console(stderr=False)
    return console if console.is_terminal else Console(stderr=False, width=100_000, no_color=True)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    family: Annotated[str | None, typer.Option("--family", help="only this family, e.g. torchvision, timm")] = None,
) -> None:
    """List the models trtprune can build."""

    specs = tp.list_models()
    if family is not None:
        families = sorted({s.family for s in specs})
        specs = [s for s in specs if s.family == family]
        if not specs:
            raise UsageError(f"unknown model family {family!r}; choose one of: {', '.join(families)}")
    if as_json:
        rows = [{"name": s.name, "family": s.family, "input": list(s.default_input)} for s in specs]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("model", "family", "default input", "classes", "weights")
    for s in specs:
        weights = "real (bundled)" if s.pretrained_classes else "random / --checkpoint"
        table.add_row(s.name, s.family, tp.format_shape(s.default_input), str(s.default_num_classes), weights)
    _console().print(table)


@app.command()
def groups(
    model: Annotated[str | None, typer.Argument(help="model name (see 'trtprune models')")] = None,
    input: InputOpt = None,
    checkpoint: CheckpointOpt = None,
    weights: WeightsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """List the coupled channel groups of a model."""

    loaded = tp.load_model(model, input, checkpoint, weights=weights)
    found = tp.find_groups(loaded.model, loaded.input_shape)
    if as_json:
        typer.echo(json.dumps([g.to_json() for g in found.groups], indent=2))
        return
    from rich.table import Table

    table = Table("group", "channels", "blocks", "layers", title=f"{loaded.name}: {len(found.groups)} groups")
    for g in found.groups:
        table.add_row(g.name, str(g.channels), str(g.partitions), ", ".join(g.layers))
    _console().print(table)
    for p in found.pinned:
        typer.echo(f"left whole: {p.name}: {p.reason}")


@app.command()
def train(
    model: Annotated[str | None, typer.Argument(help="model name")] = None,
    data: Annotated[str, typer.Option("--data", help="fashion-mnist, cifar10 or imagefolder")] = "fashion-mnist",
    data_root: DataRootOpt = None,
    out: Annotated[Path, typer.Option("--out", help="checkpoint to write")] = Path("engines/model.pt"),
    input: InputOpt = None,
    checkpoint: CheckpointOpt = None,
    weights: WeightsOpt = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="prune by this plan before training")] = None,
    keep_ratio: Annotated[float | None, typer.Option("--keep-ratio", help="prune every group to this ratio")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = TRAIN.epochs,
    lr: Annotated[float, typer.Option("--lr")] = TRAIN.lr,
    batch_size: Annotated[int, typer.Option("--batch-size")] = TRAIN.batch_size,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = TRAIN.weight_decay,
    momentum: Annotated[float, typer.Option("--momentum")] = TRAIN.momentum,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA where present), cpu, cuda or cuda:N")] = "auto",
    workers: Annotated[int, typer.Option("--workers")] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", help="train on N training samples drawn at random (seeded by --seed)")
    ] = None,
    distill: Annotated[
        bool, typer.Option("--distill", help="distil from --teacher's logits (e.g. fine-tune a plan later)")
    ] = False,
    teacher: Annotated[Path | None, typer.Option("--teacher", help="the unpruned model's checkpoint")] = None,
    distill_temperature: Annotated[float, typer.Option("--distill-temperature")] = DISTILL.temperature,
    distill_weight: Annotated[float, typer.Option("--distill-weight")] = DISTILL.weight,
    restart: Annotated[
        bool, typer.Option("--restart", help="discard OUT.partial (an interrupted run's epochs) and start over")
    ] = False,
) -> None:
    """Train (or fine-tune a pruned) model; works under torchrun for data parallel. An interrupted run
    resumes after its last finished epoch when rerun (OUT.partial holds them)."""

    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        workers=workers,
        seed=seed,
        device=device,
        limit_train=limit,
    )
    job = tp.TrainJob(
        model=model,
        data=data,
        data_root=data_root,
        out=out,
        input_shape=input,
        checkpoint=checkpoint,
        weights=weights,
        plan=plan,
        keep_ratio=keep_ratio,
        config=config,
        teacher=teacher if distill else None,
        distill=DistillConfig(distill_temperature, distill_weight),
    )
    if distill and teacher is None:
        raise UsageError("--distill fine-tunes against a teacher's logits: pass --teacher CKPT (the unpruned model)")
    with _progress_bar("training") as progress:
        result = tp.run_train_job(job, progress, restart=restart)
    if result is not None:
        label = tp.get_task(tp.get_spec(data).task).metric_label  # the model's task: checked against the data's
        typer.echo(f"{label} {result.top1:.4f} after {result.epochs} epoch(s); wrote {out}")


@app.command()
def export(
    model: Annotated[str | None, typer.Argument(help="model name")] = None,
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write")] = Path("engines/model.onnx"),
    checkpoint: CheckpointOpt = None,
    plan: Annotated[Path | None, typer.Option("--plan", help="pruning plan (JSON)")] = None,
    keep_ratio: Annotated[float | None, typer.Option("--keep-ratio", help="keep this ratio of every group")] = None,
    input: InputOpt = None,
    opset: Annotated[int, typer.Option("--opset")] = 17,
    weights: WeightsOpt = None,
) -> None:
    """Export a (pruned) model to ONNX, checked and written atomically."""

    if opset < 17:
        raise UsageError(f"opset {opset} is too old: use --opset 17 or newer")
    loaded = tp.prune_loaded(tp.load_model(model, input, checkpoint, weights=weights), plan, keep_ratio)
    params = sum(p.numel() for p in loaded.model.parameters())
    meta = tp.onnx_metadata(loaded.name, loaded.input_shape, loaded.preprocessing, loaded.plan)
    tp.export_onnx(loaded.model, loaded.input_shape, out, opset, metadata=meta)
    typer.echo(f"wrote {out} ({loaded.name}, {params:,} parameters)")


@app.command("eval")
def eval_(
    onnx_files: Annotated[list[Path], typer.Argument(help="ONNX models to compare")],
    data: Annotated[str, typer.Option("--data")] = "fashion-mnist",
    data_root: DataRootOpt = None,
    threads: Annotated[int, typer.Option("--threads", help="ONNX Runtime intra-op threads")] = 1,
    limit: Annotated[int | None, typer.Option("--limit", help="evaluate the first N test samples")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Top-1 (a detector's COCO mAP on --data coco) on the test split and latency in ONNX Runtime (CPU), side by side."""

    rows = tp.compare_onnx(onnx_files, data, data_root, threads, limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    task = tp.get_task(tp.get_spec(data).task)
    table = Table(
        "model", "params", task.metric_label, "median ms", "p90 ms", "speed-up", title=f"{data} test split, ORT CPU"
    )
    base = rows[0]["median_ms"]
    for r in rows:
        table.add_row(
            r["onnx"],
            f"{r['params']:,}",
            f"{r[task.metric]:.4f}",
            f"{r['median_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            f"{base / r['median_ms']:.2f}x",
        )
    _console().print(table)


BackendOpt = Annotated[str, typer.Option("--backend", help=f"the engine: {', '.join(BACKENDS.names())}")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="CPU threads (recorded with every number)")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32, fp16 or int8 (carried by the ONNX)")]


class _LutGroup(typer.core.TyperGroup):
    """``trtprune lut MODEL ...`` builds; ``trtprune lut predict|verify|plot ...`` use a table."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


lut_app = typer.Typer(cls=_LutGroup, no_args_is_help=True, help="Latency lookup tables measured in the real engine.")
app.add_typer(lut_app, name="lut")


@lut_app.command("build")
def lut_build(
    model: Annotated[str | None, typer.Argument(help="model name (or taken from --checkpoint)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="table file (default engines/<model>/lut.db)")] = None,
    input: InputOpt = None,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "ort",
    batch: Annotated[int | None, typer.Option("--batch", help="batch size (overrides --input's N)")] = None,
    precision: PrecisionOpt = "fp32",
    step: Annotated[int, typer.Option("--step", help="grid step in channels")] = 8,
    mode: Annotated[str, typer.Option("--mode", help="network or block")] = "network",
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    no_refine: Annotated[bool, typer.Option("--no-refine", help="measure the grid only")] = False,
    pairs: Annotated[
        bool, typer.Option("--pairs", help="also measure joined pairs of groups cut together (interaction terms)")
    ] = False,
    no_closing: Annotated[
        bool, typer.Option("--no-closing", help="do not time the base and its references again after the rows")
    ] = False,
    max_frame_shift: Annotated[
        float,
        typer.Option(
            "--max-frame-shift",
            help="measure the table again when the network moved more than this many percent between its frames",
        ),
    ] = 5.0,
    remeasures: Annotated[
        int, typer.Option("--remeasures", help="measure a moved table again at most this many times (0: never)")
    ] = 0,
    force: Annotated[bool, typer.Option("--force", help="overwrite a table made for something else")] = False,
    export_json: Annotated[Path | None, typer.Option("--export-json", help="also write the table as JSON")] = None,
    small: Annotated[int, typer.Option("--small", help="groups up to this width are measured at every count")] = 16,
    points: Annotated[
        int,
        typer.Option(
            "--points", help="widths per group on the first grid, read linearly between (0: every step, a staircase)"
        ),
    ] = 6,
    rounds: Annotated[int, typer.Option("--rounds", help="at most this many timed rounds per candidate")] = 100,
    sessions: Annotated[
        int,
        typer.Option(
            "--sessions",
            help="time every engine as the mean of this many sessions of it (a session keeps its own speed); "
            "prune's measurements on the table do the same",
        ),
    ] = 1,
    row_error: Annotated[
        float,
        typer.Option(
            "--row-error", help="time each row until its standard error is this share of the base network's latency"
        ),
    ] = 0.002,
) -> None:
    """Measure (or resume measuring) a latency table: every group at a grid of widths."""

    config = tp.LutConfig(
        model=model,
        input_shape=input,
        checkpoint=str(checkpoint) if checkpoint else None,
        backend=backend,
        backend_config=tp.BackendConfig(threads=threads, device=device, precision=precision, sessions=sessions),
        batch=batch,
        mode=mode,
        step=step,
        small=small,
        points=points or None,
        refine=not no_refine,
        closing=not no_closing,
        pairs=pairs,
        row_error=row_error,
        timing=tp.TimingConfig(rounds=rounds, min_rounds=min(8, rounds)),
    )
    out = out or Path("engines") / (model or Path(str(checkpoint)).stem) / "lut.db"
    with _progress_bar("measuring") as progress:
        result = tp.build_lut(config, out, progress, force, tp.Remeasure(max_frame_shift, remeasures))
    typer.echo(
        f"{result.path}: base {result.base_ms:.3f} ms; {result.measured} rows measured, {result.skipped} already stored, "
        f"{result.engines_built} engines built in {result.wall_s:.0f} s"
        + (f"; {len(result.noisy)} noisy" if result.noisy else "")
    )
    for moved in result.discarded:
        typer.echo(f"measured again: {moved.describe()}")
    if result.frame_shift:
        typer.echo(f"closing frame: {result.frame_shift.describe()}")
    if export_json:
        _write_lut_json(out, export_json)


def _write_lut_json(lut: Path, dest: Path) -> None:

    with tp.LutStore(lut) as store:
        tp.write_json(dest, store.export_json())
    typer.echo(f"wrote {dest}")


@lut_app.command("export-json")
def lut_export_json(lut: Annotated[Path, typer.Argument()], out: Annotated[Path, typer.Option("--out")]) -> None:
    """Write a table as JSON, with its environment."""
    _write_lut_json(lut, out)


@lut_app.command("predict")
def lut_predict(
    lut: Annotated[Path, typer.Argument(help="table (lut.db)")],
    plan: Annotated[Path, typer.Option("--plan", help="plan JSON")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="every term of the prediction, per group")] = False,
) -> None:
    """Predicted latency of a plan (``--explain``: the table's terms that add up to it)."""

    with tp.LutStore(lut) as store:
        model = tp.LatencyModel(store)
    loaded = tp.Plan.load(plan)
    predicted = model.predict(loaded)
    terms = model.terms({g: len(kept) for g, kept in loaded.groups.items()})
    if as_json:
        out = {"predicted_ms": predicted, "base_ms": model.base_ms, "model": model.meta.model}
        out |= {"terms_ms": dict(terms), "stage_scales": model.stage_scales, "join_weight": model.join_weight}
        typer.echo(json.dumps(out))
        return
    if explain:
        from rich.table import Table

        table = Table("term", "stage", "scale", "ms", title=f"{lut}: base {model.base_ms:.4f} ms")
        for name, ms in terms:
            grouped = name in model.meta.widths
            stage = model.stage_of.get(name, "") if grouped else ""
            table.add_row(name, stage, f"{model.scale(name):.3f}" if grouped else "", f"{ms:+.4f}")
        _console().print(table)
    typer.echo(f"predicted {predicted:.4f} ms ({100 * predicted / model.base_ms:.1f}% of base {model.base_ms:.4f} ms)")


@lut_app.command("verify")
def lut_verify(
    lut: Annotated[Path, typer.Argument(help="table (lut.db)")],
    samples: Annotated[int, typer.Option("--samples")] = 20,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    once: Annotated[
        bool, typer.Option("--once", help="measure the plans once (no floor: how far two measurements differ)")
    ] = False,
) -> None:
    """Measure random plans (30-100% of base latency), twice, and compare with the table's predictions."""

    with _progress_bar("verifying") as progress:
        result = tp.verify(str(lut), samples=samples, seed=seed, progress=progress, again=not once)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    from rich.table import Table

    table = Table("#", "predicted ms", "measured ms", "error %", title=f"{lut}: base {result.base_ms:.3f} ms")
    for i, r in enumerate(result.rows):
        table.add_row(str(i), f"{r.predicted_ms:.4f}", f"{r.measured_ms:.4f}", f"{r.error_pct:.2f}")
    _console().print(table)
    figures = result.to_json()
    typer.echo(
        f"median error {result.median_error_pct:.2f}%, p90 {result.p90_error_pct:.2f}% (as shares of the base "
        f"timed beside each plan); in raw ms: median {figures['absolute_median_error_pct']:.2f}%, "
        f"p90 {figures['absolute_p90_error_pct']:.2f}%"
    )
    if result.again:
        floor = result.floor_pct
        typer.echo(
            f"measured again: median error {figures['again_median_error_pct']:.2f}%, p90 "
            f"{figures['again_p90_error_pct']:.2f}%; floor (the two measurements apart) median {floor[0]:.2f}%, "
            f"p90 {floor[1]:.2f}%"
        )
    typer.echo(
        f"bias {result.bias_pct:+.2f}% (median signed error; > 0: predicted slower than measured); the base "
        f"measured {result.regime_shift_pct:+.1f}% from the table's (the machine's regime since the build)"
    )
    if result.regime_moved():
        typer.echo(
            "the machine's regime moved since the build: shares may move with it (a slower machine slows a "
            "network more than its cuts on small inputs); verify again on a quiet machine, or build the table "
            "where and when you deploy"
        )
    cost = result.cost
    if cost.get("builds"):
        typer.echo(
            f"the table cost {cost['engines']} engines ({cost['rows']} rows measured, {cost['copied']} copied) "
            f"in {cost['wall_s']:.0f} s over {cost['builds']} build(s)"
        )
    for moved in result.discarded:
        typer.echo(f"measured again: {moved.describe()}")
    if result.frame_shift:
        typer.echo(f"closing frame: {result.frame_shift.describe()}")


@lut_app.command("plot")
def lut_plot(lut: Annotated[Path, typer.Argument()], out: Annotated[Path, typer.Option("--out")]) -> None:
    """One PNG per group (latency against kept channels) and an overview."""

    paths = tp.plot_lut(lut, out)
    typer.echo(f"wrote {len(paths)} plots to {out}")


@app.command()
def bench(
    path: Annotated[
        Path,
        typer.Argument(
            help="model.onnx (ort, openvino, trt), engine.plan (trt), model.xml (openvino) or checkpoint.pt (torch)"
        ),
    ],
    backend: BackendOpt = "ort",
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure any model with the shared timing harness."""

    result = tp.bench_path(path, backend, threads=threads, device=device, precision=precision)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        t = result["timing"]
        flag = " (NOISY)" if t["noisy"] else ""
        typer.echo(
            f"{path}: median {t['median_ms']:.4f} ms, p90 {t['p90_ms']:.4f} ms, spread {100 * t['spread']:.1f}%{flag} [{backend}]"
        )


@app.command()
def prune(
    budget_ms: Annotated[float | None, typer.Option("--budget-ms", help="latency budget in ms")] = None,
    budget_ratio: Annotated[
        float | None, typer.Option("--budget-ratio", help="budget as a share of base latency")
    ] = None,
    lut: Annotated[Path | None, typer.Option("--lut", help="latency table (default: engines/<model>/lut.db)")] = None,
    model: Annotated[str | None, typer.Argument(help="model (default: the table's)")] = None,
    checkpoint: CheckpointOpt = None,
    input: InputOpt = None,
    data: Annotated[str, typer.Option("--data")] = "fashion-mnist",
    data_root: DataRootOpt = None,
    method: Annotated[
        str,
        typer.Option("--method", help="sp-lamp (default), halp, lap, uniform, global-l1, sp-lamp-macs, torch-pruning"),
    ] = "sp-lamp",
    importance: Annotated[
        str | None,
        typer.Option(
            "--importance",
            help="sp-lamp's scorer: sp-lamp, sp-lamp-taylor, sp-lamp-group, lamp, l1, l2, taylor-bn, random",
        ),
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="a method option KEY=VALUE (repeatable), e.g. batches=20")
    ] = None,
    stages: Annotated[int, typer.Option("--stages")] = 1,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs")] = FINETUNE.epochs,
    lr: Annotated[float, typer.Option("--lr")] = FINETUNE.lr,
    final_epochs: FinalEpochsOpt = None,
    final_lr: FinalLrOpt = None,
    round_to: Annotated[
        int | None, typer.Option("--round-to", help="keep widths on multiples of N (default: table step)")
    ] = None,
    remeasure: Annotated[
        bool, typer.Option("--remeasure", help="re-measure the table around the current widths each stage")
    ] = False,
    calib: Annotated[Path | None, typer.Option("--calib", help="INT8 calibration .npy (see calib/README.md)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run directory (default under engines/)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", help="each fine-tune uses N training samples drawn at random (seeded)")
    ] = None,
    limit_eval: Annotated[
        int | None, typer.Option("--limit-eval", help="per-stage top-1 on the first N test samples")
    ] = None,
    match_rounds: Annotated[
        int, typer.Option("--match-rounds", help="decide-build-time rounds per stage to land under its target")
    ] = MATCH.rounds,
    match_calls: Annotated[
        int,
        typer.Option(
            "--match-calls",
            help="harness calls beside the base per measurement of a candidate and of the final model (their mean share)",
        ),
    ] = MATCH.calls,
    device: Annotated[
        str, typer.Option("--device", help="fine-tuning: auto (CUDA where present), cpu, cuda or cuda:N")
    ] = "auto",
    workers: Annotated[int, typer.Option("--workers", help="data-loading processes per rank")] = 0,
    distill: Annotated[
        bool, typer.Option("--distill", help="fine-tune against the unpruned model's logits (needs its checkpoint)")
    ] = False,
    distill_temperature: Annotated[float, typer.Option("--distill-temperature")] = DISTILL.temperature,
    distill_weight: Annotated[
        float, typer.Option("--distill-weight", help="the KL term's share of the loss, in [0, 1]")
    ] = DISTILL.weight,
    restart: Annotated[
        bool, typer.Option("--restart", help="discard an unfinished run in --out instead of resuming it")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the run's result (report.json) as JSON")] = False,
) -> None:
    """Prune to a latency budget (SP-LAMP + group knapsack by default) over k stages, fine-tune, export, engine, report."""

    if lut is None:
        lut = tp.default_table(model)
    method, options = tp.parse_method_spec(":".join([method, *(option or [])]))
    recipe = replace(
        FINETUNE,
        epochs=finetune_epochs,
        lr=lr,
        device=device,
        workers=workers,
        limit_train=limit,
        limit_test=limit_eval,
    )
    config = tp.PruneConfig(
        lut=str(lut),
        budget_ms=budget_ms,
        budget_ratio=budget_ratio,
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        input_shape=input,
        data=data,
        data_root=str(data_root) if data_root else None,
        method=method,
        method_options=options,
        importance=importance,
        stages=stages,
        remeasure=remeasure,
        round_to=round_to,
        calib=str(calib) if calib else None,
        out=str(out) if out else None,
        seed=seed,
        finetune=recipe,
        final_finetune=_final_recipe(recipe, final_epochs, final_lr),
        distill=DistillConfig(distill_temperature, distill_weight) if distill else None,
        match=replace(MATCH, rounds=match_rounds, calls=match_calls),
    )
    with _progress_bar("pruning") as progress:
        r = tp.run_prune(config, progress=progress, restart=restart)
    if r is None:  # a torchrun rank other than 0: rank 0 reports
        return
    if as_json:
        typer.echo(json.dumps(r.to_json(), indent=2))
        return
    typer.echo(
        f"{r.run_dir}: {r.model} {r.base_ms:.4f} -> {r.pruned_ms:.4f} ms ({r.speedup:.2f}x, budget "
        f"{'met' if r.meets_budget else 'NOT met'}), {r.task_metrics.label if r.task_metrics else 'top-1'} "
        f"{r.base_top1:.4f} -> {r.top1:.4f}"
    )


@app.command()
def compare(
    model: Annotated[str | None, typer.Argument(help="model (default: the table's)")] = None,
    methods: Annotated[
        str,
        typer.Option(
            "--methods",
            help="comma list of methods, each NAME or NAME:KEY=VALUE (e.g. sp-lamp:importance=sp-lamp-group)",
        ),
    ] = "sp-lamp,halp,lap,uniform,global-l1",
    budgets: Annotated[str, typer.Option("--budgets", help="comma list of budget ratios")] = "0.3,0.5,0.7",
    seeds: Annotated[int, typer.Option("--seeds", help="runs per method and budget (seeds 0..N-1)")] = 1,
    lut: Annotated[Path | None, typer.Option("--lut", help="latency table (default: engines/<model>/lut.db)")] = None,
    checkpoint: CheckpointOpt = None,
    data: Annotated[str, typer.Option("--data")] = "fashion-mnist",
    data_root: DataRootOpt = None,
    stages: Annotated[int, typer.Option("--stages")] = 1,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs")] = FINETUNE.epochs,
    lr: Annotated[float, typer.Option("--lr")] = FINETUNE.lr,
    final_epochs: FinalEpochsOpt = None,
    final_lr: FinalLrOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="each fine-tune uses N training samples drawn at random (seeded)")
    ] = None,
    limit_eval: Annotated[
        int | None, typer.Option("--limit-eval", help="per-stage top-1 on the first N test samples")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="comparison directory (resumes the runs it holds)")] = Path(
        "engines/compare"
    ),
    finished_only: Annotated[
        bool, typer.Option("--finished-only", help="run nothing: measure and tabulate the runs finished so far")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print compare.json instead of the table")] = False,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            "--max-minutes",
            help="start no run after N minutes (the one in progress finishes); exit 3, rerun to resume",
        ),
    ] = None,
) -> None:
    """Every method at every budget through the same pipeline; one table and a Pareto plot."""

    if lut is None:
        lut = tp.default_table(model)
    try:
        budget_list = tuple(float(b) for b in budgets.split(",") if b.strip())
    except ValueError:
        raise UsageError(f"--budgets {budgets!r}: give comma-separated ratios such as 0.3,0.5,0.7") from None
    recipe = replace(FINETUNE, epochs=finetune_epochs, lr=lr, limit_train=limit, limit_test=limit_eval)
    shared = tp.PruneConfig(
        lut=str(lut),
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        data=data,
        data_root=str(data_root) if data_root else None,
        stages=stages,
        finetune=recipe,
        final_finetune=_final_recipe(recipe, final_epochs, final_lr),
    )
    config = tp.CompareConfig(
        prune=shared,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        budgets=budget_list,
        seeds=seeds,
        out=str(out),
    )
    with _progress_bar("comparing") as progress:
        run_dir = tp.run_compare(config, progress=progress, finished_only=finished_only, max_minutes=max_minutes)
    if as_json:
        typer.echo((run_dir / "compare.json").read_text())
        return
    typer.echo((run_dir / "compare.md").read_text())


def _final_recipe(recipe: TrainConfig, epochs: int | None, lr: float | None) -> TrainConfig | None:
    """The final fine-tune's recipe: the stages' with ``--final-epochs``/``--final-lr`` where given
    (None where neither is: the stages' recipe itself)."""
    if epochs is None and lr is None:
        return None
    return replace(recipe, epochs=recipe.epochs if epochs is None else epochs, lr=recipe.lr if lr is None else lr)


class _progress_bar:
    """A rich progress bar fed by the library's per-step callback."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress = None
        self._task = None

    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        self._progress.__enter__()
        self._task = self._progress.add_task(self.label, total=None, info="")
        return self

    def __call__(self, event: Event) -> None:
        """Any step's typed event (:mod:`trtprune.core.progress`), shown the same way."""
        bar = event.bar()
        what = f"{self.label} {bar.what}" if bar.what else self.label
        self._progress.update(self._task, description=what, total=bar.total, completed=bar.completed, info=bar.note)

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    try:  # typer >= 0.25 vendors click as typer._click; older ones use click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="trtprune", standalone_mode=False)
    except TrtpruneError as exc:
        typer.echo(f"trtprune: error: {exc}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except click_exc.ClickException as exc:
        typer.echo(f"trtprune: error: {exc.format_message()}", err=True)
        return 2
    except typer.Abort:
        typer.echo("trtprune: aborted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
