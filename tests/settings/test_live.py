"""Settings that follow an edited env file: polling on an injected clock, SIGHUP, a watcher
thread, last good settings kept on a bad edit, secrets masked in the change log — and reads
moving between two real stores within 5 seconds, with no failed request."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowswap.clock import FakeClock, SystemClock
from shadowswap.read.router import Router
from shadowswap.settings.envfile import edit_text, read_env, write_env
from shadowswap.settings.live import EnvFileSettings
from shadowswap.settings.phase import classify
from shadowswap.stores.base import BaseStore
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.testing import clustered_corpus
from tests.metrics_helpers import RecordingMetrics

BASE = (
    "# service env\n"
    "export RETRIEVAL_BACKEND=faiss\n"
    "export RETRIEVAL_TARGET_BACKEND=chroma\n"
    "FF_RETRIEVAL_DUAL_WRITE=ON\n"
    "RETRIEVAL_CUTOVER_PERCENT=0\n"
    'RETRIEVAL_DUAL_WRITE_OUTBOX_URL="postgresql://svc:first-pw@db/outbox"\n'
)


def edit(path: Path, **changes: str) -> None:
    snapshot = read_env(path)
    write_env(snapshot, edit_text(snapshot.text, changes), backup=False)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(BASE)
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def phase_now(metrics: RecordingMetrics) -> str:
    """The phase ``retrieval_phase_info`` shows at a scrape."""
    [phase] = [
        s.labels["phase"]
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "retrieval_phase_info" and s.value == 1
    ]
    return phase


def test_an_edit_takes_effect_at_the_next_poll(env_file: Path, clock: FakeClock) -> None:
    source = EnvFileSettings(env_file, environ={}, clock=clock, poll_interval_s=1.0)
    before = source.current()
    edit(env_file, RETRIEVAL_CUTOVER_PERCENT="100")
    clock.advance(0.99)
    assert source.current() is before  # not looked yet: at most once per second
    clock.advance(0.01)
    after = source.current()
    assert after.cutover_percent == 100 and source.reloads == 1
    assert before.cutover_percent == 0  # a request that started earlier keeps its settings
    clock.advance(5)
    assert source.current() is after  # unchanged content: same object, nothing logged


def test_the_change_is_logged_with_phase_and_masked_secrets(
    env_file: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingMetrics()
    source = EnvFileSettings(env_file, environ={}, clock=clock)
    sink.read_phase_from(lambda: classify(source.current()).name)  # as the runtime does
    phases = [phase_now(sink)]
    caplog.set_level(logging.INFO, logger="shadowswap")
    edit(
        env_file,
        RETRIEVAL_CUTOVER_PERCENT="10",
        RETRIEVAL_DUAL_WRITE_OUTBOX_URL="postgresql://svc:second-pw@db/outbox",
    )
    clock.advance(1)
    source.current()
    phases.append(phase_now(sink))
    (record,) = records(caplog, "settings reloaded")
    assert record.__dict__["changed"] == {
        "RETRIEVAL_CUTOVER_PERCENT": ["0", "10"],
        "RETRIEVAL_DUAL_WRITE_OUTBOX_URL": [
            "postgresql://svc:***@db/outbox",
            "postgresql://svc:***@db/outbox",
        ],
    }
    assert (record.__dict__["previous_phase"], record.__dict__["phase"]) == (
        "dual_write",
        "cutover 10%",
    )
    assert "pw" not in caplog.text.replace("***", "")
    assert phases == ["dual_write", "cutover"]


def test_a_bad_edit_keeps_the_last_good_settings_and_is_logged_once(
    env_file: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = EnvFileSettings(env_file, environ={}, clock=clock)
    good = source.current()
    env_file.write_text(BASE + "RETRIEVAL_CUTOVER_PERCENT=lots\n")
    for _ in range(3):
        clock.advance(1)
        assert source.current() is good
    assert source.last_error is not None and "RETRIEVAL_CUTOVER_PERCENT" in source.last_error
    assert len(records(caplog, "env file invalid, keeping the last good settings")) == 1
    env_file.write_text(BASE.replace("PERCENT=0", "PERCENT=50"))
    clock.advance(1)
    assert source.current().cutover_percent == 50 and source.last_error is None


def test_a_vanished_file_keeps_the_last_good_settings(
    env_file: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = EnvFileSettings(env_file, environ={}, clock=clock)
    good = source.current()
    env_file.unlink()
    for _ in range(2):
        clock.advance(1)
        assert source.current() is good
    assert len(records(caplog, "env file unreadable, keeping the last good settings")) == 1


def test_sighup_makes_the_next_request_look_at_once(env_file: Path, clock: FakeClock) -> None:
    source = EnvFileSettings(env_file, environ={}, clock=clock, poll_interval_s=3600)
    previous = signal.getsignal(signal.SIGHUP)
    assert source.install_sighup()
    try:
        edit(env_file, FF_RETRIEVAL_SHADOW_READ="ON")
        assert source.current().shadow_read is False  # an hour before the next poll
        os.kill(os.getpid(), signal.SIGHUP)
        assert source.current().shadow_read is True
    finally:
        source.close()
    assert signal.getsignal(signal.SIGHUP) == previous


def test_sighup_cannot_be_installed_off_the_main_thread(env_file: Path) -> None:
    source = EnvFileSettings(env_file, environ={})
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(source.install_sighup()))
    thread.start()
    thread.join()
    assert results == [False]


def test_the_watcher_thread_follows_the_file_without_requests(env_file: Path) -> None:
    source = EnvFileSettings(env_file, environ={}, poll_interval_s=0.05).start()
    try:
        edit(env_file, RETRIEVAL_CUTOVER_PERCENT="50")
        deadline = time.monotonic() + 5
        while source.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert source.reloads == 1
    finally:
        source.close()


def test_variables_the_environment_overrides_are_warned_about(
    env_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = EnvFileSettings(env_file, environ={"FF_RETRIEVAL_DUAL_WRITE": "OFF"})
    assert source.current().dual_write is False
    (record,) = records(
        caplog,
        "variables set in the environment win over the env file; editing them there has no effect",
    )
    assert record.__dict__["variables"] == ["FF_RETRIEVAL_DUAL_WRITE"]


# -- reads move between two real stores --------------------------------------------------------
@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, BaseStore]]:
    corpus = clustered_corpus("t1", 200, 16, queries=0)
    faiss, chroma = FaissStore(tmp_path / "faiss"), ChromaStore(str(tmp_path / "chroma"))
    for store in (faiss, chroma):
        store.upsert("t1", corpus.documents)
    yield {"faiss": faiss, "chroma": chroma}
    faiss.close()
    chroma.close()


def test_reads_move_to_the_other_backend_within_5_seconds_with_no_failed_request(
    env_file: Path, stores: dict[str, BaseStore]
) -> None:
    """The read router, following the env file, against real FAISS and embedded Chroma: an
    edit that cuts the tenant over moves its reads within 5 seconds, no request fails."""
    source = EnvFileSettings(env_file, environ={}, poll_interval_s=1.0)
    query = clustered_corpus("t1", 1, 16, queries=1, seed=7).queries[0]
    reads: list[tuple[float, str, str, int]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    router = Router(
        primary=stores["faiss"],
        target=stores["chroma"],
        settings=source,
        metrics=RecordingMetrics(),
        clock=SystemClock(),
        rng=random.Random(0),
    )

    def reader() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = router.search("t1", query, 5)
            except Exception as exc:  # noqa: BLE001 - any failure fails the test
                failures.append(exc)
                continue
            reads.append((started, result.backend, result.backend, len(result.hits)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        while len(reads) < 20 and not failures:
            time.sleep(0.01)
        edit(env_file, RETRIEVAL_CUTOVER_PERCENT="100")
        edited = time.monotonic()
        deadline = edited + 5.0
        while time.monotonic() < deadline and not any(r[1] == "chroma" for r in reads):
            time.sleep(0.01)
        time.sleep(0.3)  # a few more reads after the switch
    finally:
        stop.set()
        thread.join(timeout=30)
        router.close()
    assert failures == []
    first_chroma = next(i for i, r in enumerate(reads) if r[1] == "chroma")
    assert reads[first_chroma][0] - edited <= 5.0
    assert {r[1] for r in reads[:first_chroma]} == {"faiss"}
    assert {r[1] for r in reads[first_chroma:]} == {"chroma"}  # no flapping back
    assert all(kind == backend and hits == 5 for _, kind, backend, hits in reads)
