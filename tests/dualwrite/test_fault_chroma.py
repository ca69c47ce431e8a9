"""Must-show fault test on real engines: FAISS primary, Chroma server target killed with
SIGKILL part-way through 2,000 writes and restarted later. Every write succeeds, the breaker
opens within its threshold, and after replay every tenant's content in the target equals the
primary's, document by document (scan + content hash)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shadowswap.clock import Clock, FakeClock, SystemClock
from shadowswap.dualwrite.breaker import Breaker, BreakerConfig, State, Ticket
from shadowswap.dualwrite.replay import Replayer
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.values import Document
from tests.dualwrite.conftest import settings, static
from tests.metrics_helpers import RecordingMetrics
from tests.servers import ChromaServer

TENANTS = ("acme", "globex", "initech", "umbrella")
WRITES, KILL_AT, RESTART_AT = 2000, 600, 1400
THRESHOLD = 3
ENV = {
    "RETRIEVAL_BACKEND": "faiss",
    "RETRIEVAL_TARGET_BACKEND": "chroma",
    "FF_RETRIEVAL_DUAL_WRITE": "ON",
    "RETRIEVAL_DUAL_WRITE_CB_THRESHOLD": str(THRESHOLD),
    "RETRIEVAL_DUAL_WRITE_CB_WINDOW_S": "0.5",
    "RETRIEVAL_DUAL_WRITE_OUTBOX_MAX": "20000",
    # generous: a loaded machine must not turn slow answers into failures here
    "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": "5000",
}


def _document(rng: random.Random, tenant: str, doc_id: str) -> Document:
    vector = np.array([rng.gauss(0, 1) for _ in range(32)], dtype=np.float32)
    return Document(
        tenant,
        doc_id,
        vector,
        {"rev": rng.randrange(1_000_000), "lang": rng.choice(["en", "fr", "ja"])},
        text=f"text {rng.random():.6f}" if rng.random() < 0.8 else None,
    )


class CountingBreaker(Breaker):
    """The real breaker, remembering every attempt's outcome and the state after it."""

    def __init__(self, clock: Clock, listener: Callable[[str], None]) -> None:
        super().__init__(clock, listener)
        self.attempts: list[tuple[bool, State]] = []

    def record(self, ticket: Ticket, *, ok: bool, config: BreakerConfig) -> None:
        super().record(ticket, ok=ok, config=config)
        self.attempts.append((ok, self.state))


def hashes(store: VectorStore, tenant: str) -> dict[str, str]:
    return {d.doc_id: d.content_hash for page in store.scan(tenant) for d in page}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_target_killed_and_restarted_during_2000_writes(
    tmp_path: Path, own_chroma_server: ChromaServer
) -> None:
    clock, sink = SystemClock(), RecordingMetrics()
    primary = FaissStore(tmp_path / "faiss", Metric.COSINE)
    target = ChromaStore(own_chroma_server.url, Metric.COSINE)
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    breaker = CountingBreaker(clock, sink.breaker_state)
    writer = DualWriter(primary, target, static(**ENV), outbox, breaker, sink, clock)
    rng = random.Random(20240611)
    live: dict[str, list[str]] = {t: [] for t in TENANTS}
    next_id = 0
    outcomes: list[str] = []
    kill_mark = restart_mark = 0
    for i in range(WRITES):
        if i == KILL_AT:
            writer.flush(60)  # (so that the count below starts at the kill)
            own_chroma_server.kill()  # SIGKILL, as a crash would
            kill_mark = len(breaker.attempts)
        if i == RESTART_AT:
            restart_mark = len(breaker.attempts)
            own_chroma_server.start()
        tenant = rng.choice(TENANTS)
        roll = rng.random()
        if roll < 0.15 and len(live[tenant]) > 5:
            gone = rng.sample(live[tenant], rng.randint(1, 2))
            live[tenant] = [d for d in live[tenant] if d not in gone]
            result = writer.delete(tenant, gone, trace_id=f"w{i}")
        else:
            ids = []
            for _ in range(rng.randint(1, 3)):
                if roll < 0.45 and live[tenant]:
                    ids.append(rng.choice(live[tenant]))  # an update of a live document
                else:
                    next_id += 1
                    ids.append(f"doc-{next_id:05d}")
                    live[tenant].append(ids[-1])
            docs = [_document(rng, tenant, d) for d in dict.fromkeys(ids)]
            result = writer.upsert(tenant, docs, trace_id=f"w{i}")
        outcomes.append(result.outcome)  # returning at all is the caller's success
    writer.close()

    assert len(outcomes) == WRITES
    assert "dropped" not in outcomes and "unrecorded" not in outcomes
    # healthy target: every background attempt succeeded (writes beyond what the applier
    # keeps up with are left to the replay: "queued")
    assert outcomes[:KILL_AT].count("deferred") > KILL_AT / 2
    assert all(ok for ok, _ in breaker.attempts[:kill_mark])
    # the breaker opened within the threshold: THRESHOLD failed attempts after the kill
    after_kill = breaker.attempts[kill_mark:]
    opened = next(n for n, (_, state) in enumerate(after_kill, 1) if state is State.OPEN)
    assert opened == THRESHOLD and not any(ok for ok, _ in after_kill[:opened])
    # then the writes went to the outbox, but for the trials made every window
    assert outcomes[KILL_AT:RESTART_AT].count("queued") > 0.9 * (RESTART_AT - KILL_AT)
    trials = breaker.attempts[kill_mark + THRESHOLD : restart_mark]
    assert trials == [(False, State.OPEN)] * len(trials)  # every trial while down failed
    assert breaker.attempts[-1] == (True, State.CLOSED)  # after the restart it closed again
    assert outbox.stats().size > 0

    cron = FakeClock(start=clock.now() + 120)  # cron runs later than the in-flight grace
    stores = {"faiss": primary, "chroma": target}
    report = Replayer(outbox, stores.__getitem__, settings(**ENV), sink, cron).run()
    assert report.ok and report.replayed > 300 and report.remaining == 0, report

    for tenant in TENANTS:
        expected = hashes(primary, tenant)
        assert expected.keys() == set(live[tenant])
        assert hashes(target, tenant) == expected, tenant
    outbox.close()
    target.close()
    primary.close()
