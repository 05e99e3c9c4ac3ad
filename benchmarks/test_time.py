"""Is the test suite slower than on an older commit? Compares two pytest JUnit reports test by test.

Tests move between files when packages are reorganised, so they are matched by module file name and
test name; the sum of the matched tests' times is the comparison (what new tests add is shown apart).
Run both suites back to back on a quiet machine:

    (cd OLD_CHECKOUT && python3 -m pytest -q -m "not slow" -p no:cacheprovider --junitxml=/tmp/old.xml)
    python3 -m pytest -q -m "not slow" -p no:cacheprovider --junitxml=/tmp/new.xml
    python3 benchmarks/test_time.py /tmp/old.xml /tmp/new.xml --old b5b8919

Writes benchmarks/results/test_time.{md,json}.
"""

from __future__ import annotations

import argparse
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from _results import RESULTS, save  # benchmarks/_results.py, beside this script


def durations(report: Path) -> dict[tuple[str, str], float]:
    """(module file name, test name) -> seconds, for every test that ran (skipped ones left out)."""
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("skipped") is None:
            out[(case.get("classname", "").split(".")[-1], case.get("name", ""))] = float(case.get("time", 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="JUnit XML of the older commit's suite")
    parser.add_argument("new", type=Path, help="JUnit XML of this commit's suite")
    parser.add_argument("--old", dest="old_commit", default="?", help="the older commit (for the record)")
    args = parser.parse_args()
    old, new = durations(args.old), durations(args.new)
    common = sorted(set(old) & set(new))
    old_s, new_s = sum(old[k] for k in common), sum(new[k] for k in common)
    added = sorted(set(new) - set(old))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    payload = {
        "old_commit": args.old_commit,
        "new_commit": commit,
        "old_tests": len(old),
        "new_tests": len(new),
        "matched": len(common),
        "matched_old_s": round(old_s, 1),
        "matched_new_s": round(new_s, 1),
        "ratio": round(new_s / old_s, 4),
        "old_total_s": round(sum(old.values()), 1),
        "new_total_s": round(sum(new.values()), 1),
        "added_tests": len(added),
        "added_s": round(sum(new[k] for k in added), 1),
        "old_unmatched": [f"{m}::{t}" for m, t in sorted(set(old) - set(new))],
    }
    text = "\n".join(
        [
            "# Test suite time: this commit against an older one, test by test",
            "",
            f"`make test`'s tests (`-m 'not slow'`) of {args.old_commit} and {commit}, run back to back on one quiet "
            "machine; tests matched by module file name and test name (packages moved tests between files).",
            "",
            "| | tests | seconds |",
            "|---|---|---|",
            f"| matched, on {args.old_commit} | {len(common)} | {old_s:.1f} |",
            f"| matched, on {commit} | {len(common)} | {new_s:.1f} ({100 * (new_s / old_s - 1):+.1f}%) |",
            f"| added since (new tests) | {len(added)} | {payload['added_s']:.1f} |",
            f"| whole suite, {args.old_commit} / {commit} | {len(old)} / {len(new)} | "
            f"{payload['old_total_s']:.1f} / {payload['new_total_s']:.1f} |",
            "",
            f"Old tests without a match: {', '.join(payload['old_unmatched']) or 'none'}.",
            "",
        ]
    )
    save(RESULTS / "test_time", text, payload)


if __name__ == "__main__":
    main()
