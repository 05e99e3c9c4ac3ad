"""Sessions of one model do not run alike: how far independent ONNX Runtime sessions of the same
network sit apart, whether a fresh session reads slower beside a long-lived one (as the matching
loop, ``lut verify`` and a table's rows time them: a reference prepared once, candidates fresh), and
what timing each model as the mean of several sessions (``BackendConfig.sessions``) leaves of both.

For every case (random weights; the model is exported once and every session loads that file):

- *offsets*: ``--sessions`` sessions made one after another, timed together in ``--calls``
  interleaved harness calls; each session's median as a share of the call's mean session, averaged
  over the calls (its lasting offset), and how much it moves from call to call;
- *age*: a session of the model prepared, timed, then left idle ``--idle`` seconds (a run fine-tunes
  between its measurements), then two fresh sessions of the same file timed beside it in two calls
  (paired shares; 1.0 is fair), ``--repeats`` times;
- *age, 3 sessions each*: the same with the long-lived and the fresh side each the mean of 3 sessions.

    python benchmarks/session_offsets.py [--cases mobilenet_v2@224,resnet18@64,resnet20@28]

Run it with nothing else on the machine (or ``--freeze-cgroup`` the other jobs). Writes
benchmarks/results/session_offsets.{md,json}.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from _cases import case_shape  # benchmarks/_cases.py, beside this script
from _quiet import freeze_while_timing
from _results import RESULTS, save

from trtprune.backends import BackendConfig, get_backend, open_runner
from trtprune.core.shapes import parse_shape
from trtprune.engine.export import export_onnx
from trtprune.engine.timing import measure_interleaved
from trtprune.models import build_model
from trtprune.report.markdown import markdown_table

log = logging.getLogger("session_offsets")

CASES = {"resnet20@28": "1x1x28x28"}


def offsets(path: Path, sessions: int, calls: int) -> dict:
    """Each of ``sessions`` sessions' lasting offset from their mean, and its call-to-call movement."""
    backend = get_backend("ort")
    with ExitStack() as stack:
        runners = {f"s{i}": stack.enter_context(backend.prepare(path, (), BackendConfig())) for i in range(sessions)}
        shares = {n: [] for n in runners}
        for _ in range(calls):
            t = measure_interleaved({n: r.timed for n, r in runners.items()})
            mean = statistics.fmean(v.median_ms for v in t.values())
            for n in runners:
                shares[n].append(t[n].median_ms / mean)
    lasting = [statistics.fmean(s) for s in shares.values()]
    return {
        "offsets": [round(x, 4) for x in lasting],
        "range_pct": round(100 * (max(lasting) - min(lasting)), 2),
        "sd_pct": round(100 * statistics.pstdev(lasting), 2),
        "within_sd_pct": round(100 * statistics.median(statistics.pstdev(s) for s in shares.values()), 2),
    }


def age(path: Path, sessions: int, idle_s: float, repeats: int) -> dict:
    """Two fresh runners (each ``sessions`` sessions) beside one prepared ``idle_s`` seconds earlier."""
    backend = get_backend("ort")
    config = BackendConfig(sessions=sessions)
    first, second = {"fresh0": [], "fresh1": []}, {"fresh0": [], "fresh1": []}
    with open_runner(backend, path, (), config) as old:
        measure_interleaved({"old": old.timed})
        for _ in range(repeats):
            time.sleep(idle_s)
            with ExitStack() as stack:
                fresh = {n: stack.enter_context(open_runner(backend, path, (), config)) for n in first}
                timed = {"old": old.timed, **{n: r.timed for n, r in fresh.items()}}
                for out in (first, second):
                    t = measure_interleaved(timed, reference="old")
                    for n in fresh:
                        out[n].append(t[n].ratio)
    row = {f"{call}_{n}": round(statistics.fmean(v), 4) for call, d in (("first", first), ("second", second))
           for n, v in d.items()}  # fmt: skip
    every = [x for d in (first, second) for v in d.values() for x in v]
    return {**row, "mean": round(statistics.fmean(every), 4), "min": round(min(every), 4), "max": round(max(every), 4)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="mobilenet_v2@224,resnet18@64,resnet20@28")
    parser.add_argument("--sessions", type=int, default=4, help="sessions in the offsets part")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds the long-lived session waits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--freeze-cgroup", default=None, help="cgroup-v1 freezer of other jobs, frozen while timing")
    parser.add_argument("--out", default="session_offsets", help="results name under benchmarks/results/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    freeze_while_timing(args.freeze_cgroup)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            model, shape = case_shape(case, CASES)
            dims = parse_shape(shape)
            path = export_onnx(build_model(model, dims, pretrained=False).eval(), dims, Path(tmp) / f"{model}.onnx")
            row = {"case": case, **offsets(path, args.sessions, args.calls)}
            row |= {f"age_{k}": v for k, v in age(path, 1, args.idle, args.repeats).items()}
            row |= {f"age3_{k}": v for k, v in age(path, 3, args.idle, args.repeats).items()}
            log.info("%s", row)
            rows.append(row)
    tunables = os.environ.get("GLIBC_TUNABLES")  # e.g. glibc.malloc.hugetlb=1: malloc asks for huge pages
    command = (
        (f"GLIBC_TUNABLES={tunables} " if tunables else "")
        + f"python benchmarks/session_offsets.py --cases {args.cases} --sessions {args.sessions} --calls {args.calls} "
        f"--idle {args.idle:g} --repeats {args.repeats}"
        + (f" --out {args.out}" if args.out != "session_offsets" else "")
    )
    text = "\n".join(
        [
            "# Sessions of one model: lasting offsets, and fresh against long-lived (ONNX Runtime CPU, 1 thread)",
            "",
            f"Command: `{command}`",
            "",
            f"`offsets`: each of {args.sessions} sessions' median as a share of the sessions' mean, averaged over "
            f"{args.calls} interleaved calls (`range_pct`, `sd_pct`: how far they sit apart; `within_sd_pct`: the "
            "median movement of one session from call to call). `age_*`: two fresh sessions (`fresh0` made first) "
            f"as paired shares of a session prepared {args.idle:g} s before, in the first and the second call, "
            f"mean over {args.repeats} repeats (1.0 is fair; `mean`, `min`, `max` over all). `age3_*`: the same "
            "with every side the mean of 3 sessions (`BackendConfig.sessions = 3`).",
            "",
            markdown_table(rows),
        ]
    )
    save(RESULTS / args.out, text + "\n", {"command": command, "rows": rows})


if __name__ == "__main__":
    main()
