"""A store wrapper that runs a callback before an operation: the concurrent writer of the
race tests (a dual write landing between a copy's read and its write), and transient faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shadowswap.errors import StoreUnavailable
from shadowswap.stores.base import DEFAULT_SCAN_BATCH, VectorStore
from shadowswap.testing.faults import FaultyStore
from shadowswap.values import Document, WriteReport


class Hooked(FaultyStore):
    """`shadowswap.testing.faults.FaultyStore` whose ``before[op]`` callbacks get the operation's
    arguments (for a scan: each page, before it is yielded), once each unless they return
    True to stay armed. Not a BaseStore, so sync uses its scan."""

    def __init__(self, inner: VectorStore) -> None:
        super().__init__(inner, ops=())  # no fault of its own: only the hooks below
        self.before: dict[str, list[Callable[..., bool | None]]] = {}

    def on(self, op: str, fn: Callable[..., bool | None]) -> None:
        self.before.setdefault(op, []).append(fn)

    def _run(self, op: str, *args: Any) -> None:
        self.before[op] = [fn for fn in self.before.get(op, []) if fn(*args)]

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        self._run("upsert", tenant, documents)
        return super().upsert(tenant, documents)

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        self._run("delete", tenant, doc_ids)
        return super().delete(tenant, doc_ids)

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        self._run("get", tenant, doc_ids)
        return super().get(tenant, doc_ids)

    def scan(
        self, tenant: str, *, batch_size: int = DEFAULT_SCAN_BATCH, after: str | None = None
    ) -> Iterator[list[Document]]:
        for page in super().scan(tenant, batch_size=batch_size, after=after):
            self._run("scan", tenant, page)
            yield page


def fail_times(n: int, kind: str = "x") -> Callable[..., bool]:
    """A hook that raises StoreUnavailable on its first ``n`` calls, then lets calls through."""
    left = [n]

    def hook(*_args: Any) -> bool:
        if left[0] > 0:
            left[0] -= 1
            raise StoreUnavailable(kind, "op", "injected fault")
        return False

    return hook
