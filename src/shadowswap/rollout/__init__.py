"""Rollout control: per-request decisions, phases, env-file edits, rollback."""
