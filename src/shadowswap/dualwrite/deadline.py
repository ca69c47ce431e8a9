"""Calls with a deadline on a bounded set of worker threads.

Why: a store adapter's own timeout is the wrong bound for the deferred write. Chroma's HTTP
client waits forever by default and the adapter sets 10 s; a killed server refuses at once,
but a *hung* one (accepts, never answers) would hold the caller's write for 10 s, three
times, before the breaker opens. Lowering the adapter's timeout would also cut the replay and
backfill, which may wait longer. So the dual writer runs the deferred write here and waits at
most ``RETRIEVAL_DUAL_WRITE_TIMEOUT_MS``; a call that overruns is abandoned (Python cannot
cancel a thread) and finishes, or fails, in its worker, bounded by the adapter's timeout. At
most ``workers`` calls are in flight: when every worker is held by a hung backend, a new call
is refused at once instead of queueing behind them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from shadowswap.errors import StoreTimeout, StoreUnavailable

T = TypeVar("T")


class BoundedCalls:
    """Run ``fn`` on one of ``workers`` threads and wait at most ``timeout_s`` for it.

    >>> calls = BoundedCalls(workers=2, name="demo")
    >>> calls.run(lambda: 42, timeout_s=1.0, store="memory", op="upsert")
    42
    >>> calls.close()
    """

    def __init__(self, workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(workers)

    def run(
        self,
        fn: Callable[[], T],
        *,
        timeout_s: float,
        store: str,
        op: str,
        tenant: str | None = None,
    ) -> T:
        """``fn()``'s result or exception; `StoreTimeout` past the deadline, `StoreUnavailable`
        when every worker is busy with an earlier call."""
        if not self._slots.acquire(blocking=False):
            raise StoreUnavailable(
                store, op, "every deferred-write worker is held by an earlier call", tenant
            )
        try:
            future: Future[T] = self._pool.submit(fn)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            raise StoreTimeout(
                store, op, f"no answer within {timeout_s * 1000:g} ms", tenant
            ) from None

    def close(self) -> None:
        """Stop accepting calls; abandoned calls finish in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)
