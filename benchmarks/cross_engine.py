"""Does a latency table transfer between engines? ONNX Runtime and OpenVINO (CPU), plans decided on
each engine's table and measured in both.

For every case (ResNet-18 and MobileNet-V2 @1x3x224x224, ResNet-20 @1x1x28x28; random weights, no
data, no fine-tuning): a block table is built in each engine (resumable, under ``--out``), and at
every budget (shares of the base latency, 0.5 and 0.7) the default method's decision is taken from
each table: SP-LAMP scores of the unpruned model (``sp-lamp`` importance: weights only, so every
plan ranks the same channels) and the joined group knapsack against the table (what ``trtprune
prune`` decides at stage 1, before its matching loop). A third column is the MAC-cost plan (the
``sp-lamp-macs`` ablation: the same scores and knapsack, latency taken as proportional to MACs).

Then every plan is measured in *both* engines, beside that engine's own unpruned model in one
interleaved harness call (paired shares, drift cancels). The report gives

- the matrix of measured shares (plan decided on A's table, measured in B), and whether each plan
  meets the budget in each engine (within 3%);
- at matched measured latency: in each engine, every table's decision is moved by prune's own
  matching loop (decide, build, time in that engine, adjust the goal) until it measures just under
  the budget; the SP-LAMP value (sum of kept scores) and the parameters each engine's own plan keeps
  against the foreign table's (and the MAC plan's);
- where the tables disagree: per group and width, each table's latency change as a share of its
  base, largest differences first.

Resumes from ``--out``/cross_engine-state.json (tables resume where they stopped; finished steps are
kept); ``--restart`` drops the state (not the tables). Run it with nothing else on the machine, or
``--freeze-cgroup`` the other jobs. Writes benchmarks/results/cross_engine.{md,json}.

    python benchmarks/cross_engine.py --freeze-cgroup /sys/fs/cgroup/freezer/devwork
    python benchmarks/cross_engine.py --cases resnet20@12 --budgets 0.7 --step 16 --rounds 5   # a smoke run
"""

from __future__ import annotations

import json
import logging
import platform
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _cases import case_shape  # benchmarks/_cases.py, beside this script
from _quiet import benchmark_parser, start  # benchmarks/_quiet.py, beside this script
from _results import RESULTS, save

from trtprune.backends import BackendConfig
from trtprune.core.atomic import write_text
from trtprune.core.errors import InfeasibleBudget
from trtprune.report.markdown import markdown_table

log = logging.getLogger("cross_engine")

CASES = {"resnet18@224": "1x3x224x224", "mobilenet_v2@224": "1x3x224x224", "resnet20@28": "1x1x28x28"}
ENGINES = ("ort", "openvino")
BUDGETS = (0.5, 0.7)
TOLERANCE = 0.03  # a plan meets the budget in an engine when its measured share is at most budget x 1.03
IMPORTANCE = "sp-lamp"  # weights only: no data at 224 here, and every plan ranks the same channels
MACS = "macs"  # the MAC-cost plan's column
TOP_DISAGREEMENTS = 15


class Case:
    """One model@size: its unpruned model (random weights, fixed once in ``base.pt``), groups, one
    table per engine, and the SP-LAMP scores every decision ranks channels by."""

    def __init__(self, case: str, args, out: Path) -> None:
        import torch

        from trtprune.graph.groups import find_groups
        from trtprune.models.checkpoint import save_checkpoint
        from trtprune.models.loading import load_model

        self.case, self.args = case, args
        self.name, self.shape_text = case_shape(case, CASES)
        self.dir = out / case.replace("@", "-")
        self.dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.dir / "base.pt"
        if not ckpt.exists():  # the weights every score reads, the same on every resume
            torch.manual_seed(0)
            loaded = load_model(self.name, self.shape_text, pretrained=False)
            save_checkpoint(
                ckpt,
                loaded.model,
                model_name=loaded.name,
                input_shape=loaded.input_shape,
                num_classes=loaded.num_classes,
                preprocessing=loaded.preprocessing,
            )
        self.loaded = load_model(None, checkpoint=ckpt)
        self.model = self.loaded.model.eval()
        self.shape = tuple(self.loaded.input_shape)
        self.groups = find_groups(self.model, self.shape)
        self.tables = {e: self.dir / f"lut-{e}.db" for e in args.engines}

    def build_tables(self) -> dict[str, dict]:
        """Build (or finish) every engine's block table; what each cost."""
        from trtprune.engine.timing import TimingConfig
        from trtprune.lut.build import LutConfig, build_lut

        built = {}
        for engine, path in self.tables.items():
            config = LutConfig(
                model=self.name,
                input_shape=self.shape_text,
                backend=engine,
                backend_config=BackendConfig(threads=self.args.threads),
                mode="block",
                step=self.args.step,
                small=self.args.small,
                timing=TimingConfig(rounds=self.args.rounds, min_rounds=min(8, self.args.rounds)),
            )
            r = build_lut(config, path)  # resumes an interrupted build; a finished one measures nothing
            built[engine] = {"base_ms": r.base_ms, "rows": r.measured, "engines_built": r.engines_built}
            log.info("%s %s table: base %.4f ms", self.case, engine, r.base_ms)
        return built

    def latency(self, engine: str):
        from trtprune.lut.predict import LatencyModel
        from trtprune.lut.store import LutStore

        with LutStore(self.tables[engine]) as store:
            return LatencyModel(store, interactions=False)  # as prune loads it; the joined solver corrects

    def state(self, latency):
        from trtprune.methods import StageState

        return StageState(
            model=self.model,
            groups=self.groups,
            latency=latency,
            current={g.name: g.channels for g in self.groups.groups},
            round_to=self.args.step,  # prune's default: the table's step
            model_name=self.name,
            stage=1,
            stages=1,
            seed=0,
        )

    def sources(self) -> dict[str, tuple[Any, Any]]:
        """Plan source -> (method, stage state): each engine's table with the default method, and the
        MAC-cost ablation (anchored at the first engine's table; MAC shares do not depend on it)."""
        from trtprune.methods import get_method

        out = {}
        for engine in self.args.engines:
            out[engine] = (get_method("sp-lamp", {"importance": IMPORTANCE}), self.state(self.latency(engine)))
        first = out[self.args.engines[0]][1]
        out[MACS] = (get_method("sp-lamp-macs", {"importance": IMPORTANCE}), self.state(first.latency))
        scores = out[self.args.engines[0]][0].score(first)  # weights only: the same for every source
        for _, state in out.values():
            state.scores = scores
        return out

    def params(self, widths: dict[str, int]) -> int:
        from trtprune.surgery.apply import prune_copy

        return sum(p.numel() for p in prune_copy(self.model, self.groups, widths).parameters())


def decide_all(case: Case, sources: dict, budget: float) -> dict[str, dict]:
    """Every source's decision at ``budget`` (a share of its own base): widths, predicted share,
    SP-LAMP value, parameters; an infeasible budget is recorded with the smallest share it reaches."""
    out = {}
    for source, (method, state) in sources.items():
        base = state.latency.base_ms
        try:
            d = method.decide(state, budget * base)
        except InfeasibleBudget as exc:
            smallest = exc.smallest_ms / base if exc.smallest_ms is not None else None
            out[source] = {"infeasible": True, "smallest_share": smallest}
            continue
        out[source] = {
            "widths": dict(d.widths),
            "predicted_share": d.predicted_ms / base,
            "value": float(d.value),
            "params": case.params(d.widths),
        }
    return out


def measure_plans(case: Case, engine: str, plans: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Every plan (source -> widths) built in ``engine`` and timed in one interleaved call beside the
    unpruned model; identical plans are timed once. Source -> {share, median_ms, noisy}."""
    from trtprune.engine.candidates import prepare
    from trtprune.engine.timing import TimingConfig, measure_interleaved
    from trtprune.surgery.apply import prune_copy

    config = BackendConfig(threads=case.args.threads)
    distinct: dict[tuple, str] = {}
    for source, widths in plans.items():
        distinct.setdefault(tuple(sorted(widths.items())), source)
    with ExitStack() as stack:
        timed = {"base": stack.enter_context(prepare(case.model, case.shape, engine, config)).timed}
        for key, source in distinct.items():
            model = prune_copy(case.model, case.groups, dict(key))
            timed[source] = stack.enter_context(prepare(model, case.shape, engine, config)).timed
        t = measure_interleaved(timed, TimingConfig(rounds=case.args.measure_rounds), reference="base")
    out = {}
    for source, widths in plans.items():
        timing = t[distinct[tuple(sorted(widths.items()))]]
        out[source] = {"share": timing.ratio, "median_ms": timing.median_ms, "noisy": timing.noisy}
    out["base"] = {"median_ms": t["base"].median_ms}
    return out


def matched(case: Case, engine: str, sources: dict, budget: float) -> dict[str, dict]:
    """In ``engine``, every source's decision moved by prune's matching loop until it measures just
    under ``budget`` (prune's margin and tolerance): its measured share, value and parameters."""
    from trtprune.decide.matching import MatchPolicy, match_decisions
    from trtprune.prune.timer import CandidateTimer
    from trtprune.surgery.apply import prune_copy

    policy = MatchPolicy()  # the prune run's matching defaults
    timer = CandidateTimer(sources[engine][1].latency.meta, case.model, case.shape)  # that engine's settings
    out = {}
    try:
        for source, (method, state) in sources.items():
            base = state.latency.base_ms  # the loop works in shares: the source table's ms / its base

            def measure(d) -> float:
                return timer.share(prune_copy(case.model, case.groups, d.widths))

            try:
                m = match_decisions(
                    lambda goal, method=method, state=state: method.decide(state, goal),
                    measure,
                    budget,
                    1.0,
                    policy,
                    scale=1 / base,
                )
            except InfeasibleBudget:
                out[source] = {"infeasible": True}
                continue
            out[source] = {
                "share": m.measured,
                "met": m.met,
                "rounds": m.rounds,
                "widths": dict(m.choice.widths),
                "value": float(m.choice.value),
                "params": case.params(m.choice.widths),
            }
            log.info("%s %s b=%.2f %s: matched share %.4f", case.case, engine, budget, source, m.measured)
    finally:
        timer.close()
    return out


def disagreements(case: Case) -> list[dict]:
    """Per group and grid width, each table's change as a share of its base; largest gap first."""
    from trtprune.lut.grid import allowed_widths

    engines = case.args.engines
    models = {e: case.latency(e) for e in engines}
    rows = []
    for g in case.groups.groups:
        for k in allowed_widths(g, g.channels, case.args.step):
            k = int(k)
            if k == g.channels:
                continue
            deltas = {e: models[e].delta_ms(g.name, k) / models[e].base_ms for e in engines}
            row = {"group": g.name, "width": k, "of": g.channels}
            row |= {f"{e}_delta": round(v, 4) for e, v in deltas.items()}
            row["gap"] = round(max(deltas.values()) - min(deltas.values()), 4)
            rows.append(row)
    return sorted(rows, key=lambda r: -r["gap"])


def report(state: dict, args) -> tuple[str, dict]:
    engines = args.engines
    sources = [*engines, MACS]
    matrix, matched_rows, env_lines = [], [], []
    for case in args.cases:
        c = state["cases"].get(case, {})
        for budget in args.budgets:
            b = str(budget)
            decisions = c.get("decisions", {}).get(b, {})
            measured = c.get("measured", {}).get(b, {})
            for source in sources:
                d = decisions.get(source)
                if d is None:
                    continue
                row = {"case": case, "budget": budget, "plan from": source if source != MACS else "MACs"}
                if d.get("infeasible"):
                    matrix.append({**row, "predicted": "infeasible"})
                    continue
                row["predicted"] = f"{d['predicted_share']:.3f}"
                for e in engines:
                    share = measured.get(e, {}).get(source, {}).get("share")
                    row[f"in {e}"] = f"{share:.3f}" if share is not None else "-"
                    row[f"meets in {e}"] = (
                        ("yes" if share <= budget * (1 + TOLERANCE) else "NO") if share is not None else "-"
                    )
                row["value"] = f"{d['value']:.2f}"
                row["params"] = f"{d['params']:,}"
                matrix.append(row)
            for e in engines:
                m = c.get("matched", {}).get(b, {}).get(e)
                if not m or e not in m or m[e].get("infeasible"):
                    continue
                own = m[e]
                for source in sources:
                    r = m.get(source)
                    if r is None or r.get("infeasible"):
                        continue
                    matched_rows.append(
                        {
                            "case": case,
                            "budget": budget,
                            "measured in": e,
                            "plan from": source if source != MACS else "MACs",
                            "share": f"{r['share']:.3f}",
                            "under target": "yes" if r["met"] else "NO",
                            "value": f"{r['value']:.2f}",
                            "value vs own": f"{100 * (r['value'] / own['value'] - 1):+.1f}%",
                            "params": f"{r['params']:,}",
                            "params vs own": f"{100 * (r['params'] / own['params'] - 1):+.1f}%",
                        }
                    )
        for e, env in c.get("environments", {}).items():
            env_lines.append(f"- {case} {e}: {env.get('engine')} {env.get('version')}, {env.get('threads')} thread(s)")
    lines = [
        f"# Cross-engine transfer of latency tables ({', '.join(engines)}; CPU {platform.machine()})",
        "",
        f"Command: `python benchmarks/cross_engine.py --cases {','.join(args.cases)} --budgets "
        f"{','.join(map(str, args.budgets))} --step {args.step} --rounds {args.rounds} --threads {args.threads}`",
        "",
        f"Block tables (step {args.step}), random weights, `{IMPORTANCE}` scores, the default joined knapsack "
        "(stage 1 of `trtprune prune`, no fine-tuning). Shares are paired ratios to the unpruned model timed "
        f"beside each plan in that engine; a plan meets the budget in an engine at a share <= budget x "
        f"{1 + TOLERANCE:.2f}.",
        "",
        *env_lines,
        "",
        "## Plans decided on each table, measured in every engine",
        "",
        markdown_table(matrix) if matrix else "(nothing measured yet)",
        "",
        "## At matched measured latency",
        "",
        "In each engine, every table's decision moved by prune's matching loop until it measures just under "
        "the budget (its target: the budget less prune's 2% margin; `under target` says whether it got there); the "
        "SP-LAMP value (sum of kept scores) and parameters against that engine's own table's plan.",
        "",
        markdown_table(matched_rows) if matched_rows else "(nothing matched yet)",
        "",
        "## Where the tables disagree",
        "",
        f"Per group and width, each table's latency change as a share of its base (largest {TOP_DISAGREEMENTS} gaps "
        "per case; all in the JSON).",
        "",
    ]
    for case in args.cases:
        rows = state["cases"].get(case, {}).get("disagreements", [])
        if rows:
            lines += [f"### {case}", "", markdown_table(rows[:TOP_DISAGREEMENTS]), ""]
    return "\n".join(lines) + "\n", {"settings": state["settings"], "cases": state["cases"]}


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.set_defaults(out="engines/bench-cross-engine")
    parser.add_argument("--cases", default=",".join(CASES), help="model@size, comma-separated")
    parser.add_argument("--engines", default=",".join(ENGINES), help="the backends compared, comma-separated")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="shares of the base latency")
    parser.add_argument("--step", type=int, default=8, help="the tables' grid step (and the plans' round-to)")
    parser.add_argument("--small", type=int, default=16, help="groups up to this width are measured at every count")
    parser.add_argument("--rounds", type=int, default=100, help="the tables' timed rounds per candidate (at most)")
    parser.add_argument("--measure-rounds", type=int, default=20, help="timed rounds of each plan measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-match", action="store_true", help="skip the matched-latency comparison")
    parser.add_argument("--restart", action="store_true", help="drop the state (tables are kept and resumed)")
    parser.add_argument("--results", default=None, help="results path stem (default benchmarks/results/cross_engine)")
    args = parser.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    args.engines = [e for e in args.engines.split(",") if e]
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    out = start(args)
    state_path = out / "cross_engine-state.json"
    settings = {k: getattr(args, k) for k in ("engines", "step", "small", "rounds", "measure_rounds", "threads")}
    state = json.loads(state_path.read_text()) if state_path.exists() and not args.restart else {}
    if state and state.get("settings") != settings:
        raise SystemExit(f"{state_path} was measured with {state['settings']}, not {settings}: pass --restart")
    state = {"settings": settings, "cases": state.get("cases", {})}

    def checkpoint() -> None:
        write_text(state_path, json.dumps(state, indent=1, default=float))

    from trtprune.backends import get_backend

    for case_name in args.cases:
        case = Case(case_name, args, out)
        c = state["cases"].setdefault(case_name, {})
        if "tables" not in c:
            c["tables"] = case.build_tables()
            config = BackendConfig(threads=args.threads)
            c["environments"] = {e: get_backend(e).environment(config) for e in args.engines}
            c["disagreements"] = disagreements(case)
            checkpoint()
        sources = case.sources()
        for budget in args.budgets:
            b = str(budget)
            if b not in c.setdefault("decisions", {}):
                c["decisions"][b] = decide_all(case, sources, budget)
            decisions = c["decisions"][b]
            plans = {s: d["widths"] for s, d in decisions.items() if not d.get("infeasible")}
            measured = c.setdefault("measured", {}).setdefault(b, {})
            for engine in args.engines:
                if engine not in measured and plans:
                    measured[engine] = measure_plans(case, engine, plans)
                    checkpoint()
                    log.info("%s b=%s in %s: %s", case_name, b, engine, measured[engine])
            if args.no_match:
                continue
            match = c.setdefault("matched", {}).setdefault(b, {})
            for engine in args.engines:
                if engine not in match:
                    match[engine] = matched(case, engine, sources, budget)
                    checkpoint()
        checkpoint()
    text, payload = report(state, args)
    save(Path(args.results or RESULTS / "cross_engine"), text, payload)


if __name__ == "__main__":
    main()
