#!/usr/bin/env python3
"""Runbook 004: alert thresholds from a baseline, median ± 1.5 × IQR.

    python scripts/prometheus/compute_shadow_thresholds.py --prometheus $PROM_URL --range 14d \
        [--env prod] [--save pull.json] [--write-rules deploy/prometheus/shadowswap-rules.yml]
    python scripts/prometheus/compute_shadow_thresholds.py --input pull.json [--json]

A thin wrapper over ``shadowswap thresholds``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from shadowswap.cli.app import app
from shadowswap.logs import configure_logging

if __name__ == "__main__":
    configure_logging()
    app(["thresholds", *sys.argv[1:]], prog_name="compute_shadow_thresholds.py")
