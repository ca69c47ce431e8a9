#!/usr/bin/env python3
"""Score a finished `mutmut run` per module (run in the directory holding ``mutants/``).

    python scripts/mutation_report.py --mutmut BIN/mutmut --equivalents FILE [--min 95]

A mutant is detected when the tests failed on it (mutmut's "killed") or ran out of time
("timeout"). Survivors listed in the equivalents file (TOML: ``[[equivalent]]`` entries with
the ``function``, the ``before`` and ``after`` source lines and ``why``) change no observable
behaviour and leave the denominator; they are matched by their change, not by mutmut's
numbering, which moves whenever a function is edited. The score of a module is detected /
(total − equivalent). Every other survivor is printed with its change (it wants a test, or a
line in the equivalents file); exit 1 when a module scores below ``--min`` percent.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

# mutmut's exit codes (mutmut.stats.status_by_exit_code): tests failed, or ran out of time
DETECTED = {1, 3, -24, 24, 36, 152, 255}
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}
NAME = re.compile(r"^(?P<module>.+)\.x_(?P<function>\w+?)__mutmut_\d+$")


def change(mutmut: str, name: str) -> tuple[str, str]:
    """The source lines a mutant removes and adds (each stripped, joined by newlines)."""
    diff = subprocess.run(
        [mutmut, "show", name], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    removed = [x[1:].strip() for x in diff if x.startswith("-") and not x.startswith("---")]
    added = [x[1:].strip() for x in diff if x.startswith("+") and not x.startswith("+++")]
    return "\n".join(removed), "\n".join(added)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default="mutmut")
    parser.add_argument("--equivalents", type=Path, required=True)
    parser.add_argument("--min", type=float, default=95.0)
    args = parser.parse_args()

    listed = tomllib.loads(args.equivalents.read_text(encoding="utf-8"))["equivalent"]
    known = {(e["function"], e["before"].strip(), e["after"].strip()): e for e in listed}
    used: set[tuple[str, str, str]] = set()
    failed = False
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        counts: Counter[str] = Counter()
        unexplained: list[tuple[str, str, str]] = []
        for name, code in sorted(codes.items()):
            if code in DETECTED:
                counts["detected"] += 1
                continue
            match = NAME.match(name)
            function = match["function"] if match else name
            before, after = change(args.mutmut, name)
            key = (function, before, after)
            if key in known:
                counts["equivalent"] += 1
                used.add(key)
            else:
                counts[SURVIVED.get(code, "suspicious")] += 1
                unexplained.append((name, before, after))
        total = len(codes)
        judged = total - counts["equivalent"]
        score = 100.0 * counts["detected"] / judged if judged else 100.0
        module = str(meta.relative_to("mutants")).removesuffix(".meta")
        print(
            f"{module}: {score:.1f} % — {counts['detected']} detected of {judged}"
            f" ({total} mutants, {counts['equivalent']} equivalent,"
            f" {total - counts['detected'] - counts['equivalent']} not detected)"
        )
        for name, before, after in unexplained:
            print(f"  not detected: {name}\n    - {before}\n    + {after}")
        failed |= score < args.min
    for key in known.keys() - used:
        print(f"stale equivalent (killed now, or gone): {key[0]}: {key[1]!r} -> {key[2]!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
