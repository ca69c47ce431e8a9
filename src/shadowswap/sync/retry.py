"""Retrying store calls that failed for a passing reason, with backoff on the injected clock.

Every call retried here is idempotent (get, scan from a cursor, upsert, delete), so trying
again is always safe. Errors that will not pass by waiting (a store built with another metric,
an unreadable file, bad input) are raised at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from shadowswap.clock import Clock
from shadowswap.errors import CorruptStore, IncompatibleStore, StoreError
from shadowswap.stores.base import VectorStore
from shadowswap.values import Document

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """How often and how patiently a failing store call is retried (exponential backoff)."""

    attempts: int = 4
    first_delay_s: float = 0.5
    factor: float = 2.0

    def call(self, fn: Callable[[], T], clock: Clock) -> T:
        """``fn()``, retried on a passing `StoreError`; the last error is raised."""
        delay = self.first_delay_s
        attempt = 1
        while True:
            try:
                return fn()
            except StoreError as exc:
                if not transient(exc) or attempt >= self.attempts:
                    raise
            clock.sleep(delay)
            delay *= self.factor
            attempt += 1


NO_RETRY = Retry(attempts=1)
DEFAULT_RETRY = Retry()


def transient(exc: StoreError) -> bool:
    """Worth trying again: anything but a store built differently or a corrupt file."""
    return not isinstance(exc, IncompatibleStore | CorruptStore)


def resilient_scan(
    store: VectorStore,
    tenant: str,
    *,
    batch_size: int,
    after: str | None,
    retry: Retry,
    clock: Clock,
) -> Iterator[list[Document]]:
    """`scan` that resumes from the last page it delivered when a page fails to arrive."""
    cursor = after
    failures = 0
    delay = retry.first_delay_s
    while True:
        try:
            for page in store.scan(tenant, batch_size=batch_size, after=cursor):
                if not page:
                    continue
                yield page
                cursor = page[-1].doc_id
                failures, delay = 0, retry.first_delay_s
            return
        except StoreError as exc:
            failures += 1
            if not transient(exc) or failures >= retry.attempts:
                raise
            clock.sleep(delay)
            delay *= retry.factor
