"""Observability beyond the metrics themselves: baseline thresholds, the gate's inputs."""
