"""Read ahead: produce the next pages of a scan in a thread while the caller writes.

A backfill alternates between reading the source and writing the destination; done in turn,
the reading time adds to the writing time. The destination's write is the slow part, and
the engines release the GIL while they work (SQLite, Chroma's Rust core), so reading the
next page meanwhile hides most of the source's cost. The queue holds at most ``depth``
pages: memory stays bounded. Errors in the reader are raised in the caller, and leaving the
``with`` block (break, exception) stops the reader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


@contextmanager
def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate ``items`` through a reader thread that keeps up to ``depth`` items ready."""
    if depth < 1:
        yield iter(items)
        return
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    closed = threading.Event()

    def put(item: object) -> bool:
        while not closed.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(exc))

    reader = threading.Thread(target=read, name="shadowswap-prefetch", daemon=True)
    reader.start()

    def consume() -> Iterator[T]:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]

    try:
        yield consume()
    finally:
        closed.set()
        reader.join(timeout=30)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
