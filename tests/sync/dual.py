"""A real dual writer between two stores for the sync tests: the writer, its SQLite outbox and
its background applier, as production builds them (`shadowswap.dualwrite.writer.DualWriter`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shadowswap.clock import SystemClock
from shadowswap.dualwrite.breaker import Breaker
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.metrics import Metrics
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.stores.base import VectorStore


@contextmanager
def dual_writer(primary: VectorStore, target: VectorStore, outbox: Path) -> Iterator[DualWriter]:
    """Dual write on, ``primary`` serving reads (written synchronously), ``target`` written by
    the applier through the outbox at ``outbox``; closed (after a flush) when the block ends."""
    settings = StaticSettings(
        load_settings(
            environ={
                "RETRIEVAL_BACKEND": primary.kind,
                "RETRIEVAL_TARGET_BACKEND": target.kind,
                "FF_RETRIEVAL_DUAL_WRITE": "ON",
            }
        )
    )
    clock, sink = SystemClock(), Metrics.null()
    box = SqliteOutbox(outbox)
    writer = DualWriter(
        primary, target, settings, box, Breaker(clock, sink.breaker_state), sink, clock
    )
    try:
        yield writer
    finally:
        writer.flush(30.0)
        writer.close()
        box.close()
