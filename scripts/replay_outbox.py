#!/usr/bin/env python3
"""Runbook 000: replay the dual-write outbox into the backend that missed the changes.

    python scripts/replay_outbox.py [--dry-run] [--max-items N] [--sleep-ms M] [--json]
        [--env-file F]

Exit 0 when every due item was applied (or nothing was due), 1 when some failed (they stay in
the outbox for the next run), 2 on bad usage. Safe to run from cron every 10 minutes, even
when runs overlap. A thin wrapper over ``shadowswap replay-outbox``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shadowswap.cli.app import app
from shadowswap.logs import configure_logging

if __name__ == "__main__":
    configure_logging()
    app(["replay-outbox", *sys.argv[1:]], prog_name="replay_outbox.py")
