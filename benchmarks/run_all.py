"""Run every ``benchmarks/bench_*.py`` and print one ``name: value`` line per figure.

Each benchmark module has ``run(quick: bool) -> dict[str, float | str]``; ratios are measured
against a baseline taken in the same run. ``--quick`` uses smaller sizes (for a smoke test).
The first lines describe the machine (CPU model, cores, memory, OS, Python, NumPy, and the
load average when the run started: figures taken on a loaded machine are provisional); the
last lines give the load average at the end and the run's total duration.

    python benchmarks/run_all.py [--quick] [NAME ...]      (make bench: every benchmark, full)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# `benchmarks.decision_quality` (the gate's harness, shared with tests/gate) imports from the
# repository root, as the tests do.
sys.path.insert(0, str(HERE.parent))


def machine() -> dict[str, str]:
    import numpy as np

    return {
        "machine.cpu": _cpu_model() or platform.processor() or platform.machine(),
        "machine.cores": str(os.cpu_count()),
        "machine.memory_gb": _memory_gb(),
        "machine.os": platform.platform(terse=True),
        "machine.python": platform.python_version(),
        "machine.numpy": np.__version__,
        "machine.load_average_start": _load(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _memory_gb() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{pages * size / 2**30:.1f}"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("only", nargs="*", help="names of benchmarks to run (default: all)")
    args = parser.parse_args()
    for key, value in machine().items():
        print(f"{key}: {value}")
    sys.stdout.flush()
    run_started = time.perf_counter()
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        started = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            figures = module.run(quick=args.quick)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benchmarks
            print(f"{name}.error: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        for key, value in figures.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{name}.{key}: {shown}")
        print(f"{name}.duration_s: {time.perf_counter() - started:.1f}")
        sys.stdout.flush()
    print(f"machine.load_average_end: {_load()}")
    print(f"total.duration_s: {time.perf_counter() - run_started:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
