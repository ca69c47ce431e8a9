"""Evidence builders the gate tests share."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from shadowswap.gate import Evidence


def healthy(n: int = 3000, seed: int = 1, miss: float = 0.02, **changes: Any) -> Evidence:
    """Evidence of a faithful target with a healthy migration, ``n`` comparisons."""
    rng = random.Random(seed)
    agreement = tuple(0.8 if rng.random() < miss else 1.0 for _ in range(n))
    ev = Evidence(
        agreement_at_5=agreement,
        ndcg_at_10=tuple(0.9 if a < 1 else 1.0 for a in agreement),
        score_delta=tuple(rng.uniform(0, 0.002) for _ in range(n)),
        latency_delta_s=tuple(rng.uniform(-0.002, 0.01) for _ in range(n)),
        shadow_latency_s=tuple(rng.uniform(0.002, 0.02) for _ in range(n)),
        compared=n,
        mismatches=sum(a < 1 for a in agreement),
        foreign_hits=0,
        stale_hits=0,
        shadow_errors=0,
        drops={"timeout": 0, "queue_full": 0},
        reads=4 * n,
        read_errors=0,
        dual_write_errors=0,
        dual_write_skipped=0,
        breaker_open=False,
        outbox_size=0,
        outbox_dropped=0,
        reconcile_drift=0,
        reconcile_age_s=600.0,
    )
    return replace(ev, **changes)
