#!/usr/bin/env python3
"""Runbook 002: roll the retrieval backend back to FAISS, journaled.

    python scripts/rollback_retrieval.py --env-file .env.staging --dry-run \\
        --operator alice --reason "drill"
    python scripts/rollback_retrieval.py --env-file .env.staging --apply \\
        --operator alice --reason "incident-123"

Steps: FF_RETRIEVAL_DUAL_WRITE=OFF, [--purge-delta], FF_RETRIEVAL_SHADOW_READ=OFF,
RETRIEVAL_BACKEND=faiss (or --backend), cutover cleared, [--smoke-url URL]. ``--apply`` copies
the env file to ``<file>.bak`` first; every run appends one line to
``artifacts/rollback_drill_log.ndjson``. Exit 0 on success, 1 when a step failed, 2 on bad
usage (a missing env file). A thin wrapper over ``shadowswap rollback``; ``--help`` lists
every option.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shadowswap.cli.app import app
from shadowswap.logs import configure_logging

if __name__ == "__main__":
    configure_logging()
    app(["rollback", *sys.argv[1:]], prog_name="rollback_retrieval.py")
