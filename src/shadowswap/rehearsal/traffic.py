"""The read traffic: queries sent through the read router, as the application sends them, and
what came back — which backend served each read, fallbacks, errors, latencies, and how each
answer compares with the legacy primary's own answer to the same query.

The shadow executor is not allowed to fall behind: before each read, the traffic waits while
the shadow queue holds a quarter of its default capacity (a real service's reads are spread
out in time; a tight loop here would only measure the queue's overflow).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowswap.clock import Clock
from shadowswap.errors import StoreError
from shadowswap.read.router import Router
from shadowswap.rehearsal.data import RehearsalQuery
from shadowswap.shadow.ranking import agreement_at_k
from shadowswap.stores.base import VectorStore

K = 10
_WAIT_S = 0.002
_MAX_QUEUED = 16  # a quarter of the shadow executor's default queue (64)


@dataclass
class ReadBatch:
    """What a batch of reads showed."""

    reads: int = 0
    served_by: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0  # served by another backend than the settings say
    fallbacks: int = 0
    errors: int = 0
    identical: int = 0  # top-k equal, in order, to the legacy primary's answer
    compared: int = 0
    agreement_sum: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def agreement_at_5(self) -> float | None:
        return self.agreement_sum / self.compared if self.compared else None

    def as_dict(self) -> dict[str, Any]:
        agreement = self.agreement_at_5
        return {
            "reads": self.reads,
            "served_by": dict(self.served_by),
            "unexpected_backend": self.unexpected,
            "fallbacks": self.fallbacks,
            "errors": self.errors,
            "identical_to_legacy": self.identical,
            "agreement_at_5_vs_legacy": None if agreement is None else round(agreement, 4),
        }


def send_reads(
    router: Router,
    queries: Sequence[RehearsalQuery],
    *,
    clock: Clock,
    expect: Callable[[str], str] | None = None,
    reference: VectorStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReadBatch:
    """Send every query through ``router``. ``expect(tenant)`` names the backend kind that
    should serve it; ``reference`` is the legacy store whose direct answer each read is
    compared with."""
    batch = ReadBatch()
    for i, query in enumerate(queries):
        while router.executor.stats().queued >= _MAX_QUEUED:
            clock.sleep(_WAIT_S)
        batch.reads += 1
        try:
            result = router.search(query.tenant, query.vector, K)
        except StoreError:
            batch.errors += 1
            continue
        batch.served_by[result.backend] += 1
        batch.latencies.setdefault(result.backend, []).append(result.latency_s)
        if result.fallback:
            batch.fallbacks += 1
        if expect is not None and result.backend != expect(query.tenant):
            batch.unexpected += 1
        if reference is not None:
            legacy = reference.search(query.tenant, query.vector, K).doc_ids
            served = result.doc_ids
            batch.compared += 1
            batch.identical += served == legacy
            batch.agreement_sum += agreement_at_k(legacy, served, 5)
        if progress is not None:
            progress(i + 1, len(queries))
    return batch


def wait_for_shadows(router: Router, clock: Clock, timeout_s: float = 30.0) -> bool:
    """Wait until the shadow executor has nothing queued or running; False on timeout."""
    deadline = clock.monotonic() + timeout_s
    while clock.monotonic() < deadline:
        stats = router.executor.stats()
        if stats.queued == 0 and stats.running == 0:
            return True
        clock.sleep(0.01)
    return False
