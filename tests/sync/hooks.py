"""A store wrapper that runs a callback before an operation: the concurrent writer of the
race tests (a dual write landing between a copy's read and its write), and transient faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shadowswap.errors import StoreUnavailable
from shadowswap.stores.base import BaseStore
from shadowswap.values import Document, WriteReport


class Hooked:
    """Delegates everything to ``inner``; ``before[op]`` callbacks run first (once each
    unless they return True to stay armed). Not a BaseStore, so sync uses its scan."""

    def __init__(self, inner: BaseStore) -> None:
        self.inner = inner
        self.before: dict[str, list[Callable[..., bool | None]]] = {}
        self.calls: dict[str, int] = {}

    def on(self, op: str, fn: Callable[..., bool | None]) -> None:
        self.before.setdefault(op, []).append(fn)

    def _run(self, op: str, *args: Any) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        keep = []
        for fn in self.before.get(op, []):
            if fn(*args):
                keep.append(fn)
        self.before[op] = keep

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def dimension(self) -> int | None:
        return self.inner.dimension

    def upsert(self, tenant: str, documents: Sequence[Document]) -> WriteReport:
        self._run("upsert", tenant, documents)
        return self.inner.upsert(tenant, documents)

    def delete(self, tenant: str, doc_ids: Sequence[str]) -> int:
        self._run("delete", tenant, doc_ids)
        return self.inner.delete(tenant, doc_ids)

    def get(self, tenant: str, doc_ids: Sequence[str]) -> dict[str, Document]:
        self._run("get", tenant, doc_ids)
        return self.inner.get(tenant, doc_ids)

    def scan(
        self, tenant: str, *, batch_size: int = 500, after: str | None = None
    ) -> Iterator[list[Document]]:
        for page in self.inner.scan(tenant, batch_size=batch_size, after=after):
            self._run("scan", tenant, page)
            yield page

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.search(*args, **kwargs)

    def count(self, tenant: str) -> int:
        return self.inner.count(tenant)

    def tenants(self) -> list[str]:
        return self.inner.tenants()

    def health(self) -> Any:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


def fail_times(n: int, kind: str = "x") -> Callable[..., bool]:
    """A hook that raises StoreUnavailable on its first ``n`` calls, then lets calls through."""
    left = [n]

    def hook(*_args: Any) -> bool:
        if left[0] > 0:
            left[0] -= 1
            raise StoreUnavailable(kind, "op", "injected fault")
        return False

    return hook
