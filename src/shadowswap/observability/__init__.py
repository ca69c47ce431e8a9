"""Observability beyond the metrics themselves: baseline thresholds, the gate's inputs.

Owns `thresholds` (baselines from Prometheus, alert rules). May import settings and the
foundation; the metrics themselves are `shadowswap.metrics`, a foundation module.
"""
