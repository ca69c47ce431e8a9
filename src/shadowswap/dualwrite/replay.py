"""Replay: apply what the outbox holds to the backends that missed it, idempotently.

Rules (``tests/dualwrite/test_replay.py`` has a test per rule)
    newest wins     a replay claims every item of a document at once and applies only the
                    newest (highest ``seq``); the older ones are *superseded*. So delete then
                    upsert ends upserted, upsert then delete ends deleted.
    source check    the newest item is applied only while the *source* — the other
                    configured backend, which received that write synchronously — still holds
                    that change (same content hash, or no document for a delete); the
                    destination gets the source's copy (the outbox holds no content). When the
                    source holds something else, a newer write reached it (inline, or from
                    another replica): the item is superseded and the destination is set to the
                    source's current state instead. So a stale upsert never overwrites a newer
                    one, whichever path the newer one took.
    idempotent      an item whose change the destination already holds is *skipped*
                    (idempotency key ``(tenant, doc_id, content_hash)``).
    in flight       an item whose change the source does not hold *yet* may belong to a write
                    still in progress (the writer appends before it writes the synchronous
                    backend): while it is younger than ``grace_s`` (60 s, more than any store
                    deadline) it is left for a later run, untouched. The dual writer's own
                    applier uses no grace: it only takes items whose synchronous write is done.
    re-check        after writing, the source is read again; if it changed meanwhile, a
                    concurrent write may have been overwritten, so the document is set to the
                    source's new state (up to 3 rounds, then the item fails and stays), unless
                    a newer change of it is known to be applied after this one (``later``: the
                    dual writer's own queue, which it applies in order).
    concurrency     claims are leases on whole documents (`shadowswap.dualwrite.outbox`):
                    two replays (cron overlap) never apply the same item, and an item is
                    acked only by the replay holding it, so none is lost.
    failures        a failed item stays with ``attempts`` + 1 and its last error; a backend
                    that cannot be reached stops the run (the rest stays for the next one).
    bounds          a run handles the items present when it started (``--max-items`` at
                    most); ``--sleep-ms M`` handles one document at a time with M ms pauses.

Counts (CONTRACT §6): ``replayed`` items applied; ``skipped_superseded`` items skipped because
the destination held them plus items superseded; ``failed``; ``remaining`` items stored after
the run. A run succeeds (exit 0) when ``failed`` is 0.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shadowswap.clock import Clock
from shadowswap.dualwrite.outbox import DEFAULT_LEASE_S, Item, Outbox, OutboxStats, Pending
from shadowswap.errors import (
    ConfigError,
    MissingDependency,
    ShadowswapError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.metrics import Metrics
from shadowswap.settings.config import Settings, SettingsSource, StaticSettings
from shadowswap.stores import open_store
from shadowswap.stores.base import VectorStore
from shadowswap.values import Document

log = logging.getLogger("shadowswap.dualwrite.replay")

Verdict = Literal["replayed", "skipped", "superseded", "in_flight", "failed"]
StoreOpener = Callable[[str], VectorStore]
DEFAULT_GRACE_S = 60.0
DEFAULT_BATCH = 100
_ROUNDS = 3


@dataclass(frozen=True)
class ReplayReport:
    """What one run did, counted in outbox items."""

    replayed: int = 0
    skipped_unchanged: int = 0
    superseded: int = 0
    failed: int = 0
    in_flight: int = 0
    expired: int = 0
    remaining: int = 0
    duration_s: float = 0.0
    stopped: str | None = None

    @property
    def skipped_superseded(self) -> int:
        return self.skipped_unchanged + self.superseded

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "failed": self.failed,
            "skipped_superseded": self.skipped_superseded,
            "remaining": self.remaining,
            "skipped_unchanged": self.skipped_unchanged,
            "superseded": self.superseded,
            "in_flight": self.in_flight,
            "expired": self.expired,
            "duration_s": round(self.duration_s, 3),
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class DryRun:
    """What a replay would handle: counts per tenant and operation, never content."""

    outbox: str
    lines: tuple[Pending, ...]
    stats: OutboxStats
    now: float
    dropped_documents: int

    @property
    def items(self) -> int:
        return sum(line.items for line in self.lines)

    @property
    def oldest_age_s(self) -> float | None:
        oldest = min((line.oldest_created_at for line in self.lines), default=None)
        return None if oldest is None else max(0.0, self.now - oldest)

    def as_dict(self) -> dict[str, Any]:
        tenants: dict[str, dict[str, dict[str, int]]] = {}
        for line in self.lines:
            tenants.setdefault(line.tenant, {})[line.op] = {
                "items": line.items,
                "documents": line.documents,
                "failing": line.failing,
            }
        age = self.oldest_age_s
        return {
            "dry_run": True,
            "outbox": self.outbox,
            "replayed": 0,
            "failed": 0,
            "skipped_superseded": 0,
            "remaining": self.stats.size,
            "would_replay": self.items,
            "oldest_age_s": None if age is None else round(age, 3),
            "tenants": tenants,
            "failing": sum(line.failing for line in self.lines),
            "dropped": {
                "full": self.stats.dropped_full,
                "ttl": self.stats.dropped_ttl,
                "documents_to_reconcile": self.dropped_documents,
            },
        }


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None

    def add(self, verdict: str, n: int) -> None:
        self.counts[verdict] = self.counts.get(verdict, 0) + n


class Replayer:
    """Drains the outbox into the backends; see the module docstring.

    ``stores`` opens a backend by kind (the destination and its source, the other configured
    kind); ``settings`` gives the configured kinds and the TTL: fixed `Settings` for one run
    (the CLI), or a `SettingsSource` read at the start of each run or `apply` (the dual
    writer's long-lived applier, whose settings may change while it runs).
    """

    def __init__(
        self,
        outbox: Outbox,
        stores: StoreOpener,
        settings: Settings | SettingsSource,
        sink: Metrics,
        clock: Clock,
        *,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        grace_s: float = DEFAULT_GRACE_S,
        batch: int = DEFAULT_BATCH,
        later: Callable[[tuple[str, str], int], bool] | None = None,
    ) -> None:
        self._outbox = outbox
        self._stores = stores
        self._settings: SettingsSource = (
            StaticSettings(settings) if isinstance(settings, Settings) else settings
        )
        self._sink = sink
        self._clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease_s = lease_s
        self._grace_s = grace_s
        self._batch = batch
        self._later = later

    # -- dry run --------------------------------------------------------------------------
    def dry_run(self, *, max_items: int | None = None) -> DryRun:
        lines = self._outbox.pending(limit=max_items)
        stats = self._outbox.stats()
        dropped = len(self._outbox.dropped(limit=1_000_000))
        self._report(stats)
        return DryRun(self._outbox.location, tuple(lines), stats, self._clock.now(), dropped)

    # -- the run --------------------------------------------------------------------------
    def run(
        self,
        *,
        max_items: int | None = None,
        sleep_ms: int = 0,
        progress: Callable[[ReplayReport], None] | None = None,
    ) -> ReplayReport:
        started = time.perf_counter()
        settings = self._settings.current()
        expired = self._outbox.expire(now=self._clock.now(), ttl_s=settings.outbox_ttl_s)
        if expired:
            log.warning(
                "outbox items older than RETRIEVAL_DUAL_WRITE_OUTBOX_TTL_S dropped and recorded "
                "for reconcile",
                extra={"reason": "ttl", "documents": len(expired)},
            )
        tally = _Tally()
        upto = self._outbox.last_seq()
        cursor = 0
        budget = max_items if max_items is not None else upto + 1
        while budget > 0 and tally.stopped is None:
            limit = 1 if sleep_ms > 0 else min(self._batch, budget)
            claim = self._outbox.claim(
                self.owner,
                limit=limit,
                after=cursor,
                upto=upto,
                now=self._clock.now(),
                lease_s=self._lease_s,
            )
            cursor = claim.cursor
            if not claim.items:
                break
            self._process(claim.items, tally, settings)
            budget -= len(claim.items)
            if progress is not None:
                progress(self._report_of(tally, len(expired), None, started))
            if sleep_ms > 0:
                self._clock.sleep(sleep_ms / 1000.0)
        stats = self._outbox.stats()
        self._report(stats)
        report = self._report_of(tally, len(expired), stats, started)
        log.info("outbox replay finished", extra=report.as_dict())
        return report

    def apply(self, items: Sequence[Item]) -> ReplayReport:
        """Apply items already leased to this owner, by the same rules as a run, without
        claiming: the dual writer's background applier hands its own fresh items here."""
        started = time.perf_counter()
        tally = _Tally()
        self._process(items, tally, self._settings.current())
        return self._report_of(tally, 0, None, started)

    def _report_of(
        self, tally: _Tally, expired: int, stats: OutboxStats | None, started: float
    ) -> ReplayReport:
        c = tally.counts
        return ReplayReport(
            replayed=c.get("replayed", 0),
            skipped_unchanged=c.get("skipped", 0),
            superseded=c.get("superseded", 0),
            failed=c.get("failed", 0),
            in_flight=c.get("in_flight", 0),
            expired=expired,
            remaining=stats.size if stats is not None else 0,
            duration_s=time.perf_counter() - started,
            stopped=tally.stopped,
        )

    def _report(self, stats: OutboxStats) -> None:
        self._sink.outbox_sampled(stats.size, stats.oldest_age_s(self._clock.now()))

    # -- one claim ------------------------------------------------------------------------
    def _process(self, items: Sequence[Item], tally: _Tally, settings: Settings) -> None:
        by_key: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            by_key.setdefault(item.key, []).append(item)
        groups: dict[tuple[str, str], list[Item]] = {}
        for key_items in by_key.values():
            newest = max(key_items, key=lambda i: i.seq)
            groups.setdefault((newest.tenant, newest.destination), []).append(newest)
        verdicts: dict[tuple[str, str], tuple[Verdict, str]] = {}
        try:
            for (tenant, destination), newest_items in groups.items():
                if tally.stopped is not None:
                    for item in newest_items:
                        verdicts[item.key] = ("in_flight", "")
                    continue
                verdicts.update(self._group(tenant, destination, newest_items, tally, settings))
        finally:
            self._settle(by_key, verdicts, tally)

    def _settle(
        self,
        by_key: dict[tuple[str, str], list[Item]],
        verdicts: dict[tuple[str, str], tuple[Verdict, str]],
        tally: _Tally,
    ) -> None:
        """Ack, fail or release every claimed item according to its document's verdict."""
        done: list[Item] = []
        release: list[int] = []
        failures: dict[str, list[Item]] = {}
        for key, key_items in by_key.items():
            verdict, error = verdicts.get(key, ("in_flight", ""))
            if verdict == "failed":
                failures.setdefault(error, []).extend(key_items)
            elif verdict == "in_flight":
                release += [i.seq for i in key_items]
                tally.add("in_flight", len(key_items))
            else:
                done += key_items
                tally.add(verdict, 1)
                tally.add("superseded", len(key_items) - 1)
        acked = self._outbox.ack(self.owner, [i.seq for i in done])
        if acked != len(done):
            log.warning(
                "some replayed items were no longer leased to this replay (lease expired)",
                extra={"expected": len(done), "acked": acked, "owner": self.owner},
            )
        self._outbox.release(self.owner, release)
        now = self._clock.now()
        for error, failed in failures.items():
            self._outbox.fail(self.owner, [i.seq for i in failed], error, now=now)
            tally.add("failed", len(failed))
            for item in failed:
                log.warning(
                    "outbox item failed; it stays for the next replay",
                    extra={
                        "tenant": item.tenant,
                        "doc_id": item.doc_id,
                        "seq": item.seq,
                        "trace_id": item.trace_id,
                        "destination": item.destination,
                        "attempts": item.attempts + 1,
                        "error": error,
                    },
                )

    def _group(
        self, tenant: str, destination: str, items: list[Item], tally: _Tally, settings: Settings
    ) -> dict[tuple[str, str], tuple[Verdict, str]]:
        try:
            source_kind = _source_kind(destination, settings)
            dest = self._stores(destination)
            source = self._stores(source_kind)
            return self._converge(tenant, source, dest, items)
        except (ConfigError, MissingDependency):
            raise
        except (StoreUnavailable, StoreTimeout) as exc:
            tally.stopped = f"{type(exc).__name__}: {exc}"
            return {i.key: ("failed", str(exc)) for i in items}
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the others
            # our errors never hold content; anything else is kept by type only
            error = str(exc) if isinstance(exc, ShadowswapError) else type(exc).__name__
            if len(items) == 1:
                return {items[0].key: ("failed", error)}
        out: dict[tuple[str, str], tuple[Verdict, str]] = {}
        for item in items:  # isolate the item that fails the batch
            if tally.stopped is not None:
                out[item.key] = ("in_flight", "")
            else:
                out.update(self._group(tenant, destination, [item], tally, settings))
        return out

    def _converge(
        self, tenant: str, source: VectorStore, dest: VectorStore, items: list[Item]
    ) -> dict[tuple[str, str], tuple[Verdict, str]]:
        """Make ``dest`` hold what ``source`` holds for these documents; judge each item."""
        now = self._clock.now()
        verdicts: dict[tuple[str, str], tuple[Verdict, str]] = {}
        todo = {i.doc_id: i for i in items}
        forced = False
        for _round in range(_ROUNDS):
            ids = list(todo)
            held = source.get(tenant, ids)
            have = {d: doc.content_hash for d, doc in dest.get(tenant, ids).items()}
            upserts: list[Document] = []
            deletes: list[str] = []
            wrote: dict[str, str | None] = {}
            for doc_id, item in todo.items():
                want = held.get(doc_id)
                want_hash = None if want is None else want.content_hash
                matches = want_hash == item.content_hash if item.op == "upsert" else want is None
                if not matches and not forced and now - item.created_at < self._grace_s:
                    verdicts[item.key] = ("in_flight", "")
                    continue
                verdict: Verdict = "replayed" if matches and not forced else "superseded"
                if have.get(doc_id) == want_hash:
                    verdicts[item.key] = ("skipped" if verdict == "replayed" else verdict, "")
                    continue
                if want is None:
                    deletes.append(doc_id)
                else:
                    upserts.append(want)  # the source's copy: when it matches, the change
                verdicts[item.key] = (verdict, "")
                wrote[doc_id] = want_hash
            if upserts:
                dest.upsert(tenant, upserts)
            if deletes:
                dest.delete(tenant, deletes)
            if not wrote:
                return verdicts
            again = source.get(tenant, list(wrote))
            moved = [
                d for d, h in wrote.items() if (again[d].content_hash if d in again else None) != h
            ]
            # A write reached the source while we wrote: ours may have overwritten its copy,
            # unless a newer change of the document is still to be applied after this one.
            later = {d for d in moved if self._later and self._later((tenant, d), todo[d].seq)}
            for doc_id in later:
                verdicts[todo[doc_id].key] = ("superseded", "")
            todo = {d: todo[d] for d in moved if d not in later}
            if not todo:
                return verdicts
            forced = True
        for item in todo.values():
            verdicts[item.key] = ("failed", "the source kept changing during replay; retried later")
        return verdicts


class OpenStores:
    """Backends opened by kind from the settings on first use, closed together. The CLI's
    `StoreOpener`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._open: dict[str, VectorStore] = {}

    def __call__(self, kind: str) -> VectorStore:
        if kind not in self._open:
            self._open[kind] = open_store(kind, self._settings)
        return self._open[kind]

    def close(self) -> None:
        for store in self._open.values():
            try:
                store.close()
            except ShadowswapError as exc:
                log.warning(
                    "closing a store failed", extra={"backend": store.kind, "error": str(exc)}
                )
        self._open.clear()


def _source_kind(destination: str, settings: Settings) -> str:
    """The configured kind that received the write synchronously: the other one."""
    primary, target = settings.backend, settings.target_backend
    if destination == primary and target is not None:
        return target
    if destination == target:
        return primary
    raise ConfigError(
        "RETRIEVAL_TARGET_BACKEND",
        target or "",
        f"the outbox holds changes for backend {destination!r}, which is neither "
        "RETRIEVAL_BACKEND nor RETRIEVAL_TARGET_BACKEND; configure the backends the "
        "changes were written for",
    )
