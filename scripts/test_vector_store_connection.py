#!/usr/bin/env python3
"""Runbook 003: check that the vector store(s) can be reached.

    python scripts/test_vector_store_connection.py [--backend KIND|primary|target] [--json]
        [--env-file F]

Exit 0 when every checked backend is reachable, 1 when one is not, 2 on bad configuration.
A thin wrapper over ``shadowswap check``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shadowswap.cli.app import app
from shadowswap.logs import configure_logging

if __name__ == "__main__":
    configure_logging()
    # A bare positional backend is accepted too: test_vector_store_connection.py chroma
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):
        args = ["--backend", args[0], *args[1:]]
    app(["check", *args], prog_name="test_vector_store_connection.py")
