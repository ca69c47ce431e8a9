"""Fault-injecting stores: a real store wrapped so that chosen operations hang, fail, slow
down or flap. For tests, benchmarks and drills of the paths that only run when a backend
misbehaves (shadow deadlines, read fallback, the dual-write breaker).

They are not fakes of a working store: every call that is let through goes to the wrapped,
real store. Which operations are affected is chosen with ``ops`` (default: every operation
that talks to the engine). Each wrapper counts the calls it intercepted (``calls``) and
exposes ``entered``, an event set when an affected call starts, so a test can wait for the
moment a worker is inside the store instead of sleeping.

>>> from shadowswap.stores.memory import MemoryStore
>>> store = FailingStore(MemoryStore())
>>> store.count("acme")
Traceback (most recent call last):
...
shadowswap.errors.StoreUnavailable: memory count for tenant 'acme' failed: injected fault
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from shadowswap.clock import Clock, SystemClock
from shadowswap.errors import StoreError, StoreUnavailable
from shadowswap.similarity import Metric
from shadowswap.stores.base import DEFAULT_SCAN_BATCH, Health, VectorStore
from shadowswap.values import Document, Filter, SearchResult, VectorLike, WriteReport

#: Operations that reach the engine; the default set a fault applies to.
ENGINE_OPS = frozenset({"upsert", "delete", "search", "get", "scan", "count", "tenants"})


class FaultyStore:
    """Base of the wrappers: delegates everything to ``inner`` after `_before` has run for the
    affected operations. Subclasses override `_before` (and may raise or block in it)."""

    def __init__(self, inner: VectorStore, ops: Sequence[str] | None = None) -> None:
        unknown = set(ops or ()) - ENGINE_OPS
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)}; use {sorted(ENGINE_OPS)}")
        self.inner = inner
        self.ops = frozenset(ops) if ops is not None else ENGINE_OPS
        self.calls = 0
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def _before(self, op: str, tenant: str | None) -> None:
        """Called before an affected operation reaches the wrapped store."""

    def _enter(self, op: str, tenant: str | None) -> None:
        if op not in self.ops:
            return
        with self._lock:
            self.calls += 1
        self.entered.set()
        self._before(op, tenant)

    # -- the VectorStore boundary ---------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def metric(self) -> Metric:
        return self.inner.metric

    @property
    def dimension(self) -> int | None:
        return self.inner.dimension

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        self._enter("upsert", tenant)
        return self.inner.upsert(tenant, documents)

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        self._enter("delete", tenant)
        return self.inner.delete(tenant, doc_ids)

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult:
        self._enter("search", tenant)
        return self.inner.search(tenant, vector, k, filter)

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        self._enter("get", tenant)
        return self.inner.get(tenant, doc_ids)

    def hashes(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, str]:
        """The wrapped store's content hashes (counted as a ``get``)."""
        self._enter("get", tenant)
        inner = self.inner
        if hasattr(inner, "hashes"):
            found: dict[str, str] = inner.hashes(tenant, doc_ids)
            return found
        return {d: doc.content_hash for d, doc in inner.get(tenant, doc_ids).items()}

    def scan(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[Document]]:
        self._enter("scan", tenant)
        return self.inner.scan(tenant, batch_size=batch_size, after=after)

    def count(self, tenant: str) -> int:
        self._enter("count", tenant)
        return self.inner.count(tenant)

    def tenants(self) -> list[str]:
        self._enter("tenants", None)
        return self.inner.tenants()

    def health(self) -> Health:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


class HangingStore(FaultyStore):
    """Affected calls block until `release` is called (forever otherwise), then go through
    to the wrapped store: the late answer a deadline must discard."""

    def __init__(self, inner: VectorStore, ops: Sequence[str] | None = None) -> None:
        super().__init__(inner, ops)
        self._released = threading.Event()
        self._waiting = 0
        self._cond = threading.Condition()

    @property
    def waiting(self) -> int:
        """Calls blocked right now."""
        with self._cond:
            return self._waiting

    def wait_for_waiting(self, n: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``n`` calls are blocked inside the store."""
        with self._cond:
            return self._cond.wait_for(lambda: self._waiting >= n, timeout_s)

    def release(self) -> None:
        """Let every blocked call (and every later one) through."""
        self._released.set()

    def hang(self) -> None:
        """Block affected calls again (after `release`), as a store that fails anew."""
        self._released.clear()

    def _before(self, op: str, tenant: str | None) -> None:
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
        try:
            self._released.wait()
        finally:
            with self._cond:
                self._waiting -= 1
                self._cond.notify_all()


class FailingStore(FaultyStore):
    """Affected calls raise ``error`` (default: `StoreUnavailable` "injected fault")."""

    def __init__(
        self,
        inner: VectorStore,
        ops: Sequence[str] | None = None,
        error: Callable[[str, str | None], StoreError] | None = None,
    ) -> None:
        super().__init__(inner, ops)
        self._error = error or (
            lambda op, tenant: StoreUnavailable(inner.kind, op, "injected fault", tenant)
        )

    def _before(self, op: str, tenant: str | None) -> None:
        raise self._error(op, tenant)


class SlowStore(FaultyStore):
    """Affected calls take ``delay_s`` longer, spent in ``clock.sleep``: with a
    `shadowswap.clock.FakeClock` the delay moves fake time and costs no real time."""

    def __init__(
        self,
        inner: VectorStore,
        delay_s: float,
        ops: Sequence[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(inner, ops)
        self.delay_s = delay_s
        self._clock = clock or SystemClock()

    def _before(self, op: str, tenant: str | None) -> None:
        self._clock.sleep(self.delay_s)


class FlappingStore(FaultyStore):
    """Affected calls fail while the store is down. Down is decided per call by ``down``
    (given the 1-based number of the affected call), or set by hand with `go_down`/`come_up`.

    >>> from shadowswap.stores.memory import MemoryStore
    >>> flapping = FlappingStore(MemoryStore(), down=lambda n: n % 2 == 0)  # every 2nd call
    """

    def __init__(
        self,
        inner: VectorStore,
        ops: Sequence[str] | None = None,
        down: Callable[[int], bool] | None = None,
    ) -> None:
        super().__init__(inner, ops)
        self._down_rule = down
        self._forced: bool | None = None
        self.failures = 0

    def go_down(self) -> None:
        self._forced = True

    def come_up(self) -> None:
        self._forced = False

    def _before(self, op: str, tenant: str | None) -> None:
        with self._lock:
            n = self.calls
        if self._forced is not None:
            is_down = self._forced
        else:
            is_down = self._down_rule(n) if self._down_rule is not None else False
        if is_down:
            with self._lock:
                self.failures += 1
            raise StoreUnavailable(self.inner.kind, op, "injected fault (store down)", tenant)


class LeakingStore(FaultyStore):
    """Searches that also return another tenant's documents: the isolation bug a target must
    never have. On the calls ``leak`` picks (given the 1-based number of the search), the
    answer merges the tenant's hits with ``other(tenant)``'s, best score first, cut to ``k``.

    >>> from shadowswap.stores.memory import MemoryStore
    >>> leaky = LeakingStore(MemoryStore(), other=lambda t: "globex", leak=lambda n: n % 5 == 0)
    """

    def __init__(
        self,
        inner: VectorStore,
        other: Callable[[str], str],
        leak: Callable[[int], bool] | None = None,
    ) -> None:
        super().__init__(inner, ["search"])
        self._other = other
        self._leak = leak or (lambda n: True)
        self.leaked = 0

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult:
        self._enter("search", tenant)
        with self._lock:
            n = self.calls
        own = self.inner.search(tenant, vector, k, filter)
        if not self._leak(n):
            return own
        foreign = self.inner.search(self._other(tenant), vector, k, filter)
        merged = sorted((*own.hits, *foreign.hits), key=lambda h: -h.score)[:k]
        with self._lock:
            self.leaked += 1
        return SearchResult(own.backend, tuple(merged))


class TailLeakStore(FaultyStore):
    """Searches whose last hit is, on the calls ``leak`` picks, another tenant's document at
    its own score: the ``depth``-th best of the other tenant's for the query, so usually below
    the tenant's own hits (the isolation bug the old score rule mistook for an approximate
    miss). ``leak(tenant, n)`` gets the 1-based number of that tenant's search.

    >>> from shadowswap.stores.memory import MemoryStore
    >>> leaky = TailLeakStore(MemoryStore(), other=lambda t: "globex",
    ...                       leak=lambda t, n: t == "acme" and n % 100 == 0)
    """

    def __init__(
        self,
        inner: VectorStore,
        other: Callable[[str], str],
        leak: Callable[[str, int], bool],
        depth: int = 50,
    ) -> None:
        super().__init__(inner, ["search"])
        self._other = other
        self._leak = leak
        self._depth = depth
        self._per_tenant: dict[str, int] = {}
        self.leaked = 0

    def search(
        self, tenant: str, vector: VectorLike, k: int, filter: Filter | None = None
    ) -> SearchResult:
        self._enter("search", tenant)
        with self._lock:
            n = self._per_tenant[tenant] = self._per_tenant.get(tenant, 0) + 1
        own = self.inner.search(tenant, vector, k, filter)
        if not self._leak(tenant, n) or not own.hits:
            return own
        theirs = self.inner.search(self._other(tenant), vector, self._depth, filter).hits
        if not theirs:
            return own
        with self._lock:
            self.leaked += 1
        return SearchResult(own.backend, (*own.hits[: k - 1], theirs[-1]))


class DroppingStore(FaultyStore):
    """Upserts that are acknowledged but not kept: the call answers as if every document was
    written, and nothing reaches the wrapped store (a write lost behind an engine's back).
    Everything else goes through. ``dropped`` counts the documents lost."""

    def __init__(self, inner: VectorStore) -> None:
        super().__init__(inner, ["upsert"])
        self.dropped = 0

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        self._enter("upsert", tenant)
        with self._lock:
            self.dropped += len(documents)
        return WriteReport(written=len(documents), unchanged=0)


class AlteringStore(FaultyStore):
    """Reads (``get``, ``scan``) that return documents changed by ``alter`` while the content
    hash the wrapped store keeps for idempotent upserts (``hashes``) still names what was
    written: an engine that stores a value other than the one it was given (as Chroma turned
    ``-0.0`` into ``0.0``). Only the documents ``alter`` changes are affected.

    >>> from shadowswap.stores.memory import MemoryStore
    >>> from shadowswap.values import Document
    >>> store = AlteringStore(MemoryStore(), lambda d: Document(
    ...     d.tenant, d.doc_id, d.vector, {**d.metadata, "rev": 0}, d.text))
    """

    def __init__(self, inner: VectorStore, alter: Callable[[Document], Document]) -> None:
        super().__init__(inner, ["get", "scan"])
        self._alter = alter

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        self._enter("get", tenant)
        return {i: self._alter(d) for i, d in self.inner.get(tenant, doc_ids).items()}

    def scan(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[Document]]:
        self._enter("scan", tenant)
        pages = self.inner.scan(tenant, batch_size=batch_size, after=after)
        return ([self._alter(d) for d in page] for page in pages)
