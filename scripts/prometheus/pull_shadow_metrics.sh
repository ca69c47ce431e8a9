#!/usr/bin/env bash
# Runbook 004: weekly pull of the shadow baselines from Prometheus, saved as JSON.
#   PROM_URL=http://prometheus:9090 RANGE=14d ENV=prod scripts/prometheus/pull_shadow_metrics.sh [OUT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${PROM_URL:?set PROM_URL to the Prometheus base URL}"
out="${1:-observability/baselines/$(date -u +%Y%m%d)/shadow_pull.json}"
python="${PYTHON:-python3}"
exec "$python" "$here/compute_shadow_thresholds.py" --prometheus "$PROM_URL" \
  --range "${RANGE:-14d}" --step "${STEP:-5m}" --env "${ENV:-prod}" --save "$out"
