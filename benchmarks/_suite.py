"""Comparisons of methods at matched measured latency, run in parts that land: the machinery that
``compare_fmnist.py`` (classifiers on Fashion-MNIST) and ``detect_fmnist.py`` (SSDlite on the canvas
set) share. A :class:`Suite` says what differs: the data, the bases and how they are trained, the
grid of methods and budgets, the recipe. Everything else is here: the committed state that a wiped
machine resumes from (:class:`State`), training a base in parts, the table, one part of the grid,
the log of parts, the paired margins and the command-line loop (:func:`run_main`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from _quiet import benchmark_parser, start  # benchmarks/_quiet.py, beside this script
from _results import RESULTS, processor_slug, save

import trtprune
from trtprune.backends import BackendConfig
from trtprune.backends.ort import cpu_name
from trtprune.compare.config import CompareConfig, Stopped, run_dir_name
from trtprune.compare.run import run_compare
from trtprune.core.atomic import copy_file, copy_sqlite, copy_tree, write_json
from trtprune.decide.matching import MatchPolicy
from trtprune.lut.build import LutConfig, build_lut
from trtprune.lut.store import LutMismatch, LutStore
from trtprune.models.checkpoint import load_checkpoint
from trtprune.prune import PruneConfig
from trtprune.report.compare import markdown, pareto_plot
from trtprune.train.config import DistillConfig, TrainConfig

log = logging.getLogger("compare")
SEEDS = 3


@dataclass(frozen=True)
class Suite:
    """What one comparison is: its name (results ``<name>.{md,json}``, plots ``<name>-<model>.png``,
    state ``<name>-state/``), the data every run reads (PruneConfig's ``data`` fields) and the
    arguments that give it to ``trtprune train``, each base's epochs, the grid per model (budgets and
    methods; the methods of ``first`` run at every budget before the others), the recipe."""

    name: str
    title: str  # the data, as plots name it
    data: dict[str, str]
    data_args: tuple[str, ...]  # `trtprune train MODEL <data_args> --epochs N <train_args>`
    train_args: tuple[str, ...]
    bases: dict[str, dict]
    parts: dict[str, dict]
    recipe: TrainConfig
    stages: int
    first: tuple[str, ...] = ("sp-lamp", "halp")
    metric: str = "top-1"
    metric_short: str = "top-1"  # how the tables name it
    prepare: Callable[[Path], None] | None = field(default=None, compare=False)  # e.g. write the data set
    # another suite whose state holds the trained bases and tables this one starts from (another
    # recipe on the same bases): copied into --out where missing, and the bases not kept twice
    base_from: str | None = None
    distill: DistillConfig | None = None  # every run fine-tuned against the base's outputs (the same for all)
    # how every run lands on its measured targets; the comparisons begun before MatchPolicy format 2
    # measured each candidate and their runs in one harness call, and resume the same way
    match: MatchPolicy = MatchPolicy(calls=1)
    final: TrainConfig | None = None  # the fine-tune after physical pruning (None: ``recipe``, as before it)

    @property
    def state(self) -> Path:
        return RESULTS / f"{self.name}-state"

    def template(self, model: str, checkpoint: str, lut: str, distill: DistillConfig | None = None) -> PruneConfig:
        """Every run's shared settings: the model, its base, the table, the recipe and distillation
        (``distill``, else the suite's)."""
        return PruneConfig(
            lut=lut, model=model, checkpoint=checkpoint, stages=self.stages, finetune=self.recipe,
            final_finetune=self.final, distill=distill or self.distill, match=self.match,
            **self.data,
        )  # fmt: skip


def code_commit() -> str:
    """The commit of the trtprune package this process runs (``+dirty`` when its tree has changes)."""
    root = Path(trtprune.__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "trtprune"], capture_output=True, text=True
    )
    return head.stdout.strip()[:12] + ("+dirty" if dirty.stdout.strip() else "")


class State:
    """The committed copy of what resuming needs: ``<model>-base.pt`` (and its wall time), the
    tables under ``<model>/`` (copied with :func:`~trtprune.core.atomic.copy_sqlite`, so a table
    open for writing is copied whole), and per part ``compare-<model>/base.onnx`` and each finished
    run's ``report.json`` and ``model.onnx``. Every copy is whole or absent (trtprune's atomic copies)."""

    def __init__(self, root: Path | None, out: Path) -> None:
        self.root, self.out = root, out  # root None: keep nothing

    def restore(self) -> int:
        """Copy into --out what it lacks (each restored run gets its part's base.onnx); returns the
        number of files copied."""
        if self.root is None:
            return 0
        copied = 0
        files = sorted((p for p in self.root.rglob("*") if p.is_file()), key=lambda p: (p.name == "report.json", p))
        for src in files:  # a run's report.json last: a run directory with one is whole
            rel = src.relative_to(self.root)
            if rel.parts[0].startswith("compare-") and rel.name == "base.onnx":
                continue  # copied into every run directory below
            dst = self.out / rel
            copied += self._copy(src, dst)
        for base in self.root.glob("compare-*/base.onnx"):
            for run in (self.out / base.parent.name / "runs").glob("*/report.json"):
                self._copy(base, run.parent / "base.onnx")
        if copied:
            log.info("restored %d file(s) from %s into %s", copied, self.root, self.out)
        return copied

    def restore_base(self, model: str) -> None:
        """Copy into --out the trained base of ``model`` and its tables, where missing."""
        for name in (f"{model}-base.pt", f"{model}-base.wall_s"):
            self._copy(self.root / name, self.out / name)
        for db in (self.root / model).glob("*.db"):
            self._copy(db, self.out / model / db.name)

    def keep_base(self, model: str) -> None:
        """The trained base; while it trains, its last finished epoch (``OUT.partial/``, replaced)."""
        if self.root is None:
            return
        for name in (f"{model}-base.pt", f"{model}-base.wall_s"):
            self._copy(self.out / name, self.root / name)
        partial, spent = self.out / f"{model}-base.pt.partial", self.out / f"{model}-base.wall_s.partial"
        kept = self.root / partial.name
        trained = (self.root / f"{model}-base.pt").exists()
        if partial.is_dir() and not trained:
            copy_tree(partial, kept)  # replaced: the latest epoch only
        else:
            shutil.rmtree(kept, ignore_errors=True)
        (self.root / spent.name).unlink(missing_ok=True)
        if not trained:
            self._copy(spent, self.root / spent.name)

    def read(self, name: str) -> dict:
        """``name`` (a JSON file of the state), or {} when it does not exist yet."""
        path = (self.root or self.out) / name
        return json.loads(path.read_text()) if path.exists() else {}

    def record(self, name: str, update) -> dict:
        """Read ``name`` (a JSON file of the state), apply ``update`` to it, write it back whole."""
        data = self.read(name)
        update(data)
        write_json((self.root or self.out) / name, data)
        return data

    def note_commits(self, model: str, commit: str) -> dict[str, str]:
        """Give every finished run of ``model`` without a recorded commit this process's ``commit``
        (the runs kept before commits were recorded carry theirs in the committed file); returns the map."""
        part = f"compare-{model}"
        finished = sorted(p.parent.name for p in (self.out / part / "runs").glob("*/report.json"))

        def update(data: dict) -> None:
            runs = data.setdefault(part, {})
            for name in finished:
                runs.setdefault(name, commit)

        def machine(data: dict) -> None:  # the processor each run was decided and timed on
            runs = data.setdefault(part, {})
            for name in finished:
                runs.setdefault(name, cpu_name())

        self.record("machines.json", machine)
        return self.record("commits.json", update)[part]

    def set_aside_foreign(self, model: str, names: set[str]) -> dict[str, dict]:
        """Per processor, its own runs: move the finished runs among ``names`` that ``machines.json``
        says were decided on another processor than this one out of the grid, into that processor's
        shelf ``compare-<model>/other-processor/<processor>/`` (in --out and in the state), and forget
        their commit and processor, so they are made again here, unless this processor's shelf holds
        one from an earlier part here: that one comes back (:meth:`_unshelve`). Sessions that
        alternate between two processors so lose no run. The shelved runs are listed, with what they
        measured, in ``set_aside.json`` (keyed ``<processor>/<run>``); returns this call's entries."""
        part, here = f"compare-{model}", cpu_name()
        made_on = self.read("machines.json").get(part, {})
        commits = self.read("commits.json").get(part, {})
        foreign = sorted(n for n in names if made_on.get(n, here) != here)
        moved: dict[str, dict] = {}
        for name in foreign:
            report = self.out / part / "runs" / name / "report.json"
            if not report.exists():
                continue
            r = json.loads(report.read_text())
            moved[f"{processor_slug(made_on[name])}/{name}"] = {
                "run": name,
                "processor": made_on[name],
                "commit": commits.get(name),
                "measured_share": r.get("measured_share"),
                "top1": r.get("top1"),
                "set_aside_on": here,
            }
            self._move(part, Path("runs") / name, Path("other-processor") / processor_slug(made_on[name]) / name)
        if moved:
            self._forget(part, moved, here)
        self._unshelve(part, names, here)
        return moved

    def _forget(self, part: str, moved: dict[str, dict], here: str) -> None:
        """The shelved runs ``moved`` leave ``machines.json`` and ``commits.json`` for ``set_aside.json``."""

        def forget(data: dict) -> None:
            for entry in moved.values():
                data.get(part, {}).pop(entry["run"], None)

        def keep(data: dict) -> None:
            data.setdefault(part, {}).update(moved)

        self.record("machines.json", forget)
        self.record("commits.json", forget)
        self.record("set_aside.json", keep)
        log.info(
            "%s: %d run(s) made on another processor set aside, to be made again on %s: %s",
            part,
            len(moved),
            here,
            ", ".join(moved),
        )

    def _unshelve(self, part: str, names: set[str], here: str) -> list[str]:
        """Move back into the grid the runs of ``names`` on this processor's shelf whose place in the
        grid is empty, with their processor and commit; returns their names."""
        shelf = Path("other-processor") / processor_slug(here)
        back = sorted(
            n
            for n in names
            if (self.out / part / shelf / n / "report.json").exists()
            and not (self.out / part / "runs" / n / "report.json").exists()
        )
        if not back:
            return back
        entries = self.read("set_aside.json").get(part, {})
        keys = {name: f"{processor_slug(here)}/{name}" for name in back}
        for name in back:
            self._move(part, shelf / name, Path("runs") / name)

        def machines(data: dict) -> None:
            data.setdefault(part, {}).update(dict.fromkeys(back, here))

        def commits(data: dict) -> None:
            made = {n: entries.get(k, {}).get("commit") for n, k in keys.items()}
            data.setdefault(part, {}).update({n: c for n, c in made.items() if c})

        def set_aside(data: dict) -> None:
            for key in keys.values():
                data.get(part, {}).pop(key, None)

        self.record("machines.json", machines)
        self.record("commits.json", commits)
        self.record("set_aside.json", set_aside)
        log.info("%s: %d run(s) made here earlier brought back from %s: %s", part, len(back), shelf, ", ".join(back))
        return back

    def _move(self, part: str, src: Path, dst: Path) -> None:
        """Move ``part/src`` to ``part/dst`` in --out and in the state (replacing what was there)."""
        for root in (self.out, self.root):
            if root is not None and (root / part / src).exists():
                target = root / part / dst
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                (root / part / src).rename(target)

    def keep_tables(self, model: str) -> None:
        if self.root is None:
            return
        for db in (self.out / model).glob("*.db"):
            copy_sqlite(db, self.root / model / db.name)

    def keep_runs(self, model: str) -> None:
        if self.root is None:
            return
        part = f"compare-{model}"
        for report in sorted((self.out / part / "runs").glob("*/report.json")):
            run = report.parent
            for name in ("report.json", "model.onnx"):
                self._copy(run / name, self.root / part / "runs" / run.name / name)
            self._copy(run / "base.onnx", self.root / part / "base.onnx")

    @staticmethod
    def _copy(src: Path, dst: Path) -> bool:
        """Copy ``src`` onto a missing ``dst``, whole or not at all; True when it copied."""
        if not src.exists() or dst.exists():
            return False
        copy_file(src, dst)
        return True


class PartOver(Exception):
    """The part's minutes ran out before the base finished training (its last epoch is kept)."""


def base_checkpoint(suite: Suite, model: str, out: Path, minutes_left: float | None = None) -> dict:
    """Train the base once (reused when present; an interrupted training resumes after its last
    finished epoch); returns how it was made. With ``minutes_left`` the training is stopped then
    (:class:`PartOver`), its finished epochs kept; its wall time adds up over the parts."""
    ckpt = out / f"{model}-base.pt"
    epochs = suite.bases[model]["epochs"]
    args = ["train", model, *suite.data_args, "--epochs", str(epochs), *suite.train_args]
    wall = out / f"{model}-base.wall_s"
    if not ckpt.exists():
        spent = out / f"{model}-base.wall_s.partial"  # training time of the parts so far
        before = float(spent.read_text()) if spent.exists() else 0.0
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "trtprune.cli", *args, "--out", str(ckpt)]
        log.info("$ %s", " ".join(shlex.quote(a) for a in cmd))
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            proc.wait(timeout=None if minutes_left is None else max(60 * minutes_left, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the epochs finished so far are in OUT.partial/
            proc.wait()
        total = before + time.perf_counter() - t0
        if not ckpt.exists():
            if proc.returncode not in (0, -9):
                raise SystemExit(f"training the {model} base failed (exit {proc.returncode})")
            spent.write_text(f"{total:.1f}\n")
            raise PartOver(f"{model} base: {total / 60:.0f} min of training so far, not finished")
        wall.write_text(f"{total:.1f}\n")
        spent.unlink(missing_ok=True)
    return {
        "checkpoint": str(ckpt),
        "command": "trtprune " + " ".join(args) + f" --out {ckpt}",
        "top1": load_checkpoint(ckpt)["metrics"]["top1"],
        "wall_s": float(wall.read_text()) if wall.exists() else None,
    }


def table(model: str, ckpt: str, out: Path) -> dict:
    """The block-mode table `make lut` builds (step 8), built once and resumed if interrupted.

    A table restored from an earlier session whose machine fingerprint differs from this one's is
    used as it is: the runs so far were decided on it, and every run is re-timed on this machine."""
    path = out / model / "lut.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = LutConfig(
        model=model, checkpoint=ckpt, backend="ort", backend_config=BackendConfig(threads=1), mode="block"
    )
    try:
        result = build_lut(config, path)
        made = {"base_ms": result.base_ms, "engines_built": result.engines_built}
    except LutMismatch as exc:
        log.warning("%s: the stored table is used as it is", exc)
        with LutStore(path) as store:
            made = {"base_ms": store.base_ms(), "engines_built": 0, "reused_as_is": str(exc)}
    with LutStore(path) as store:
        processor = store.require_meta().environment.get("processor")
    return {"path": str(path), "processor": processor, **made}


def run_part(
    suite: Suite,
    model: str,
    out: Path,
    state: State,
    finished_only: bool = False,
    deadline: float | None = None,
    one_processor: bool = False,
) -> dict | None:
    """Train or reuse the base, build or resume the table, run or resume every run (the methods of
    ``suite.first`` at every budget before the others), measure them all together. ``finished_only``:
    measure what has finished (None when nothing has). ``deadline`` (``time.monotonic()``): start
    nothing after it (:class:`PartOver`, or the comparison's ``Stopped``). ``one_processor``: first
    set aside the runs decided on another processor (:meth:`State.set_aside_foreign`), so that every
    run is decided and matched on the processor that measures them together."""
    part = suite.parts[model]
    if one_processor and not finished_only:
        grid = {run_dir_name(m, b, s) for m in part["methods"] for b in part["budgets"] for s in range(SEEDS)}
        state.set_aside_foreign(model, grid)
    if finished_only and not any((out / f"compare-{model}" / "runs").glob("*/report.json")):
        return None
    t0 = time.perf_counter()

    def minutes_left() -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0) / 60

    if suite.base_from:
        State(RESULTS / f"{suite.base_from}-state", out).restore_base(model)
    try:
        base = base_checkpoint(suite, model, out, None if finished_only else minutes_left())
    finally:
        if not suite.base_from:
            state.keep_base(model)
    lut = table(model, base["checkpoint"], out)
    state.keep_tables(model)
    config = CompareConfig(
        prune=suite.template(model, base["checkpoint"], lut["path"]),
        methods=part["methods"],
        budgets=part["budgets"],
        seeds=SEEDS,
        out=str(out / f"compare-{model}"),
    )

    commit = code_commit()

    def kept(_event: object) -> None:  # after every run: the run, its commit, the tables it may have grown
        state.keep_runs(model)
        state.keep_tables(model)
        state.note_commits(model, commit)

    first = tuple(m for m in part["methods"] if m in suite.first)
    if not finished_only and first != part["methods"]:
        run_compare(replace(config, methods=first), progress=kept, max_minutes=minutes_left(), measure=False)
    missing = [
        m
        for m in part["methods"]
        for b in part["budgets"]
        for s in range(SEEDS)
        if not (Path(config.out) / "runs" / run_dir_name(m, b, s) / "report.json").exists()
    ]
    if missing and not finished_only and deadline is not None and time.monotonic() >= deadline:
        raise PartOver(f"{model}: the part's minutes are over with {len(missing)} run(s) to go")
    result_dir = run_compare(config, progress=kept, finished_only=finished_only, max_minutes=minutes_left())
    result = json.loads((result_dir / "compare.json").read_text())
    commits = state.note_commits(model, commit)
    for row in result["rows"]:
        row["commit"] = commits.get(Path(row["run"]).name)
    set_aside = state.read("set_aside.json").get(f"compare-{model}", {})
    result.update(base=base, table=lut, session_wall_s=time.perf_counter() - t0, set_aside=set_aside)
    return result


def result_lines(suite: Suite, model: str, r: dict) -> list[str]:
    """A model's tables after its header: the runs set aside, the note of a benchmark in progress, every
    run, the paired margins and the plot (the metric named as ``suite.metric_short``)."""

    def named(text: str) -> str:
        return text.replace("top-1", suite.metric_short)

    note = f"**Snapshot of a benchmark in progress: {len(r['missing'])} runs not finished yet (listed below).**"
    return [
        *set_aside_lines(r.get("set_aside") or {}),
        *([note, ""] if r.get("missing") else []),
        named(markdown(r).split("\n", 2)[2]),
        *[named(line) for line in paired_lines(r["rows"])],
        f"![pareto]({suite.name}-{model}.png)",
        "",
    ]


def unfinished_lines(unfinished: list[str], command: str) -> list[str]:
    """The models not finished yet, and the command."""
    lines = [f"## {m}\n\nNot finished yet: its runs are still being made, in later parts.\n" for m in unfinished]
    return [*lines, f"Command: `{command}`"]


def set_aside_lines(set_aside: dict[str, dict]) -> list[str]:
    """The runs made again because they had been decided on another processor, with what they measured."""
    if not set_aside:
        return []
    lines = [
        f"{len(set_aside)} runs had been decided and matched on another processor than the one that measures "
        "all runs together; they were set aside (kept in the state under `other-processor/<processor>/`) and made again "
        "here, so that every run below was matched on the processor that measured it. What they had measured "
        "when they were made:",
        "",
        "| run | made on | commit | share when made | top-1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in sorted(set_aside.items()):
        share = f"{r['measured_share']:.3f}" if r.get("measured_share") is not None else ""
        top1 = f"{r['top1']:.4f}" if r.get("top1") is not None else ""
        lines.append(f"| {r.get('run', name)} | {r['processor']} | {r.get('commit') or ''} | {share} | {top1} |")
    return [*lines, ""]


def paired(rows: list[dict], default: str = "sp-lamp") -> list[dict]:
    """Per budget: the best other method by mean top-1 among those with every run within 3% of the
    budget (a method over it bought its accuracy with latency it was not given), and the default
    minus it seed by seed (mean and sample std of the paired differences)."""
    out = []
    for budget in sorted({r["budget_ratio"] for r in rows}):
        at = [r for r in rows if r["budget_ratio"] == budget]
        by = {(r["method"], r["seed"]): r["top1"] for r in at}
        means = {m: statistics.fmean(r["top1"] for r in at if r["method"] == m) for m in {r["method"] for r in at}}
        over = {r["method"] for r in at if r["over_budget"]}  # the comparison's own >3% flag
        rivals = {m: v for m, v in means.items() if m != default and m not in over}
        if default not in means or not rivals:
            continue
        rival = max(rivals, key=rivals.get)
        seeds = sorted(s for (m, s) in by if m == default and (rival, s) in by)
        diffs = [by[(default, s)] - by[(rival, s)] for s in seeds]
        out.append(
            {
                "budget_ratio": budget,
                "rival": rival,
                "default_mean": means[default],
                "rival_mean": means[rival],
                "diffs": diffs,
                "mean": statistics.fmean(diffs),
                "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                "default_within": not any(r["over_budget"] for r in at if r["method"] == default),
                "left_out": sorted(m for m in over if m != default),
            }
        )
    return out


def paired_lines(rows: list[dict]) -> list[str]:
    pairs = paired(rows)
    if not pairs:
        return []
    lines = [
        "",
        "Default minus the best other method whose runs are all within 3% of the budget, paired by seed "
        "(points of top-1; `left out`: methods with a run more than 3% over it):",
        "",
        "| budget | best other | default mean | its mean | paired difference (mean ± std) | per seed "
        "| default within budget | left out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        lines.append(
            f"| {p['budget_ratio']:.1f} | {p['rival']} | {p['default_mean']:.4f} | {p['rival_mean']:.4f} | "
            f"{100 * p['mean']:+.2f} ± {100 * p['std']:.2f} | {', '.join(f'{100 * d:+.2f}' for d in p['diffs'])} "
            f"| {'yes' if p['default_within'] else 'NO'} | {', '.join(p['left_out'])} |"
        )
    return [*lines, ""]


def run_main(suite: Suite, description: str, markdown: Callable[[dict, str, list[str]], str]) -> None:
    """The command line of a comparison: run (a part of) ``suite``, then write its tables with
    ``markdown(parts, command, unfinished)`` followed by the log of parts."""
    parser = benchmark_parser(description)
    parser.add_argument("--models", default=",".join(suite.parts), help="comma list of parts to run")
    parser.add_argument(
        "--finished-only", action="store_true", help="run nothing: measure and tabulate the runs finished so far"
    )
    parser.add_argument("--state", default=str(suite.state), help="committed copy of what resuming needs ('' for none)")
    parser.add_argument("--results", default=str(RESULTS), help="where the tables and plots are written")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="start no run or training epoch after N minutes, then stop"
    )
    parser.add_argument(
        "--tabulate", action="store_true", help="run and time nothing: write the tables again from the saved results"
    )
    parser.add_argument(
        "--one-processor",
        action="store_true",
        help="set aside the runs decided on another processor than this one and make them again here",
    )
    args = parser.parse_args()
    out = start(args)
    if suite.prepare is not None and not args.tabulate:
        suite.prepare(out)
    results = Path(args.results)
    state = State(Path(args.state) if args.state else None, out)
    if not args.tabulate:
        state.restore()
    saved_path = results / f"{suite.name}.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    parts = saved.get("parts", {})
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    if args.tabulate:  # the tables say the command that made the runs
        command = saved.get("command", command)
    t0, commit = time.monotonic(), code_commit()
    deadline = None if args.max_minutes is None else t0 + 60 * args.max_minutes
    stopped, finished = None, []
    models = [] if args.tabulate else [m.strip() for m in args.models.split(",") if m.strip()]
    for model in models:
        if model not in suite.parts:
            raise SystemExit(f"unknown part {model!r}; choose from {', '.join(suite.parts)}")
        try:
            part = run_part(suite, model, out, state, args.finished_only, deadline, args.one_processor)
        except (Stopped, PartOver) as exc:
            stopped = f"{model}: {exc}"
            break
        if part is None:  # nothing of this part has finished: no stale figures either
            parts.pop(model, None)
            continue
        parts[model] = part
        finished.append(model)
        pareto_plot(parts[model]["rows"], results / f"{suite.name}-{model}.png", title=f"{model}, {suite.title}")
    if not args.finished_only and not args.tabulate:
        log_part(suite, state, command, commit, time.monotonic() - t0, stopped)
    if stopped:
        log.info("part over (%s); commit benchmarks/results/ and rerun the same command to resume", stopped)
    if not finished and not args.tabulate:  # the saved tables stay as they were: nothing new is complete
        return
    unfinished = [m for m in suite.parts if m not in parts]
    log_text = _parts_markdown(state)
    save(
        results / suite.name,
        markdown(parts, command, unfinished) + log_text,
        {
            "command": command,
            "recipe": suite.recipe.to_json(),
            "final_recipe": None if suite.final is None else suite.final.to_json(),
            "distill": None if suite.distill is None else suite.distill.to_json(),
            "stages": suite.stages,
            "parts": parts,
            "paired": {m: paired(r["rows"]) for m, r in parts.items()},
            "sessions": state.read("parts.json"),
        },
    )


def log_part(suite: Suite, state: State, command: str, commit: str, wall_s: float, stopped: str | None) -> None:
    """Append this invocation (a part) to ``parts.json``: its commit, wall time and runs finished."""
    finished = {m: len(list((state.out / f"compare-{m}" / "runs").glob("*/report.json"))) for m in suite.parts}

    def update(data: dict) -> None:
        data.setdefault("parts", []).append(
            {
                "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() - wall_s)),
                "commit": commit,
                "wall_s": round(wall_s, 1),
                "runs_finished": finished,
                "processor": cpu_name(),
                "stopped": stopped,
                "command": command,
            }
        )

    state.record("parts.json", update)


def _parts_markdown(state: State) -> str:
    parts = state.read("parts.json").get("parts", [])
    lines = [
        "",
        "## Parts",
        "",
        f"The benchmark ran in {len(parts)} parts, {sum(p['wall_s'] for p in parts) / 60:.0f} min in all "
        f"(the longest {max((p['wall_s'] for p in parts), default=0) / 60:.0f} min).",
        "",
        "| part | started (UTC) | commit | machine | wall min | runs finished after it | stopped |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(parts, 1):
        runs = ", ".join(f"{m} {n}" for m, n in p["runs_finished"].items())
        lines.append(
            f"| {i} | {p['started']} | {p['commit']} | {p.get('processor', '')} | {p['wall_s'] / 60:.1f} | {runs} "
            f"| {p['stopped'] or ''} |"
        )
    return "\n".join(lines) + "\n"
