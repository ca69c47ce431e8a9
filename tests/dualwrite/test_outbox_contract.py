"""One contract for every outbox: SQLite, and PostgreSQL (a real server)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shadowswap.dualwrite.outbox import Change, Outbox, TenantUse, max_deferrable, tenant_share
from shadowswap.dualwrite.sqlite_outbox import SqliteOutbox
from shadowswap.values import Document
from tests.dualwrite.conftest import KINDS, doc, make_outbox

NOW = 1_000_000.0
BIG = 10_000


def up(tenant: str, doc_id: str, version: int = 0, dest: str = "faiss") -> Change:
    return Change.upsert(doc(tenant, doc_id, version), dest, trace_id=f"trace-{doc_id}")


def rm(tenant: str, doc_id: str, dest: str = "faiss") -> Change:
    return Change.delete(tenant, doc_id, dest)


def append(box: Outbox, *changes: Change, now: float = NOW, capacity: int = BIG) -> list[int]:
    return list(box.append(changes, now=now, capacity=capacity, ttl_s=3600).seqs)


def test_append_stores_changes_with_growing_sequence_numbers(outbox: Outbox) -> None:
    seqs = append(outbox, up("a", "1"), rm("a", "2"))
    more = append(outbox, up("b", "3"), now=NOW + 5)
    assert seqs[0] < seqs[1] < more[0]
    stats = outbox.stats()
    assert (stats.size, stats.oldest_created_at) == (3, NOW)
    assert stats.oldest_age_s(NOW + 10) == 10
    assert outbox.last_seq() == more[0]


def test_sequence_numbers_are_never_reused(outbox: Outbox) -> None:
    first = append(outbox, up("a", "1"))
    outbox.discard(first)
    assert append(outbox, up("a", "1"))[0] > first[0]


def test_an_item_records_the_change_and_its_hash(outbox: Outbox) -> None:
    original = doc("a", "é/1", 3)
    append(outbox, Change.upsert(original, "faiss", "t-1"), rm("a", "gone"))
    upsert, delete = outbox.claim("me", limit=10, after=0, upto=BIG, now=NOW).items
    assert (upsert.tenant, upsert.doc_id, upsert.destination, upsert.op) == (
        "a", "é/1", "faiss", "upsert",
    )  # fmt: skip
    assert (upsert.content_hash, upsert.trace_id) == (original.content_hash, "t-1")
    assert (delete.op, delete.content_hash, delete.created_at) == ("delete", None, NOW)


def test_no_document_content_is_ever_stored(tmp_path: Path) -> None:
    secret = Document("a", "1", [0.25, 0.5], {"ssn": "SSN-123-45"}, text="TOPSECRET-TEXT")
    box = SqliteOutbox(tmp_path / "o.sqlite3")
    box.append([Change.upsert(secret, "faiss")], now=NOW, capacity=9, ttl_s=99)
    box.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # database and WAL
    assert secret.content_hash.encode() in stored
    assert b"TOPSECRET" not in stored and b"SSN-123" not in stored


def test_capacity_refuses_the_overflow_and_records_it(outbox: Outbox) -> None:
    result = outbox.append(
        [up("a", "1"), up("a", "2"), up("a", "3"), rm("b", "4")],
        now=NOW,
        capacity=2,
        ttl_s=3600,
    )
    assert len(result.seqs) == 2
    assert [(c.tenant, c.doc_id) for c in result.refused] == [("a", "3"), ("b", "4")]
    assert (result.stats.size, result.stats.dropped_full, result.stats.dropped_ttl) == (2, 2, 0)
    dropped = {(d.tenant, d.doc_id, d.destination, d.reason) for d in outbox.dropped()}
    assert dropped == {("a", "3", "faiss", "full"), ("b", "4", "faiss", "full")}
    assert outbox.append([up("a", "5")], now=NOW, capacity=2, ttl_s=3600).refused


def test_items_older_than_the_ttl_are_dropped_and_recorded(outbox: Outbox) -> None:
    append(outbox, up("a", "old"), now=NOW)
    append(outbox, up("a", "new"), now=NOW + 50)
    assert outbox.expire(now=NOW + 100, ttl_s=100) == ()
    expired = outbox.expire(now=NOW + 100.5, ttl_s=100)
    assert expired == (("a", "old", "faiss"),)
    stats = outbox.stats()
    assert (stats.size, stats.dropped_ttl) == (1, 1)
    assert [(d.doc_id, d.reason) for d in outbox.dropped()] == [("old", "ttl")]
    # append expires too, before it checks the capacity
    result = outbox.append([up("a", "x")], now=NOW + 500, capacity=1, ttl_s=100)
    assert result.expired == (("a", "new", "faiss"),) and len(result.seqs) == 1


def test_forget_dropped(outbox: Outbox) -> None:
    outbox.append([up("a", "1"), up("a", "2")], now=NOW, capacity=0, ttl_s=3600)
    assert outbox.forget_dropped([("a", "1", "faiss")]) == 1
    assert [d.doc_id for d in outbox.dropped()] == ["2"]
    assert outbox.stats().dropped_full == 2  # totals are history, not the list


def test_claim_takes_whole_documents_oldest_first(outbox: Outbox) -> None:
    s = append(outbox, up("a", "x", 1), up("a", "y"), rm("a", "x"), up("a", "z"), up("a", "x", 2))
    claim = outbox.claim("me", limit=1, after=0, upto=BIG, now=NOW)
    assert [i.seq for i in claim.items] == [s[0], s[2], s[4]]  # every item of x, not only one
    assert claim.cursor == s[0]
    nxt = outbox.claim("me", limit=1, after=claim.cursor, upto=BIG, now=NOW)
    assert [i.doc_id for i in nxt.items] == ["y"]


def test_claim_respects_upto(outbox: Outbox) -> None:
    s = append(outbox, up("a", "1"), up("a", "2"))
    claim = outbox.claim("me", limit=10, after=0, upto=s[0], now=NOW)
    assert [i.seq for i in claim.items] == [s[0]]


def test_leased_documents_are_not_claimed_by_another_owner(outbox: Outbox) -> None:
    s = append(outbox, up("a", "1"), up("a", "2"))
    mine = outbox.claim("A", limit=1, after=0, upto=BIG, now=NOW, lease_s=60)
    assert [i.seq for i in mine.items] == [s[0]]
    append(outbox, up("a", "1", 5))  # a newer item of the leased document
    theirs = outbox.claim("B", limit=10, after=0, upto=BIG, now=NOW + 1, lease_s=60)
    assert [i.doc_id for i in theirs.items] == ["2"]
    # after the lease expires, C may take document 1 (A died), but not B's document 2
    late = outbox.claim("C", limit=10, after=0, upto=BIG, now=NOW + 60.5, lease_s=60)
    assert [i.doc_id for i in late.items] == ["1", "1"]


def test_documents_seen_earlier_in_a_run_are_passed_over(outbox: Outbox) -> None:
    s = append(outbox, up("a", "1"), up("a", "2"))
    first = outbox.claim("me", limit=1, after=0, upto=BIG, now=NOW)
    outbox.fail("me", [i.seq for i in first.items], "boom", now=NOW)
    append(outbox, up("a", "1", 2))  # newer item of the failed document
    nxt = outbox.claim("me", limit=10, after=first.cursor, upto=BIG, now=NOW)
    assert [i.doc_id for i in nxt.items] == ["2"]
    assert s  # the failed document waits for the next run


def test_only_the_lease_owner_acks_fails_or_releases(outbox: Outbox) -> None:
    s = append(outbox, up("a", "1"), up("a", "2"), up("a", "3"))
    outbox.claim("A", limit=10, after=0, upto=BIG, now=NOW)
    assert outbox.ack("B", s) == 0
    assert outbox.fail("B", s, "x", now=NOW) == 0
    assert outbox.release("B", s) == 0
    assert outbox.ack("A", [s[0]]) == 1
    assert outbox.fail("A", [s[1]], "target down", now=NOW + 3) == 1
    assert outbox.release("A", [s[2]]) == 1
    assert outbox.stats().size == 2
    again = outbox.claim("B", limit=10, after=0, upto=BIG, now=NOW + 4).items
    failed = next(i for i in again if i.seq == s[1])
    released = next(i for i in again if i.seq == s[2])
    assert (failed.attempts, failed.last_error) == (1, "target down")
    assert (released.attempts, released.last_error) == (0, None)


def test_pending_counts_per_tenant_and_operation_without_content(outbox: Outbox) -> None:
    append(outbox, up("b", "1"), up("a", "1"), up("a", "1", 2), rm("a", "2"), now=NOW)
    append(outbox, up("a", "3"), now=NOW + 9)
    claim = outbox.claim("me", limit=1, after=0, upto=BIG, now=NOW)
    outbox.fail("me", [i.seq for i in claim.items], "x", now=NOW)
    lines = {(p.tenant, p.op): p for p in outbox.pending()}
    assert set(lines) == {("a", "upsert"), ("a", "delete"), ("b", "upsert")}
    a_up = lines[("a", "upsert")]
    assert (a_up.items, a_up.documents, a_up.oldest_created_at) == (3, 2, NOW)
    assert lines[("b", "upsert")].failing == 1
    assert {(p.tenant, p.op) for p in outbox.pending(limit=2)} == {("a", "upsert"), ("b", "upsert")}


@pytest.mark.parametrize("kind", KINDS)
def test_two_claimers_at_once_never_share_an_item(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = make_outbox(kind, tmp_path, request)
    # a second handle on the same storage, as a second process would have
    second = type(first)(first._dsn if kind == "postgres" else tmp_path / "outbox.sqlite3")  # type: ignore[attr-defined]
    try:
        for start in range(0, 300, 50):
            append(first, *[up("t", f"d{i % 120}", i) for i in range(start, start + 50)])
        claimed: dict[str, list[int]] = {"A": [], "B": []}
        barrier = threading.Barrier(2)

        def drain(owner: str, box: Outbox) -> None:
            barrier.wait()
            cursor = 0
            while True:
                claim = box.claim(owner, limit=7, after=cursor, upto=BIG, now=NOW)
                cursor = claim.cursor
                if not claim.items:
                    return
                claimed[owner] += [i.seq for i in claim.items]

        threads = [
            threading.Thread(target=drain, args=("A", first)),
            threading.Thread(target=drain, args=("B", second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not set(claimed["A"]) & set(claimed["B"])
        assert len(claimed["A"]) + len(claimed["B"]) == 300
    finally:
        first.close()
        second.close()


def test_items_appended_leased_are_left_alone_until_the_lease_expires(outbox: Outbox) -> None:
    mine = outbox.append(
        [up("a", "1"), up("a", "2")], now=NOW, capacity=BIG, ttl_s=3600, lease_owner="writer",
        lease_s=60,
    )  # fmt: skip
    other = append(outbox, up("a", "3"))
    assert [i.seq for i in outbox.claim("cron", limit=9, after=0, upto=BIG, now=NOW).items] == other
    assert outbox.ack("writer", [mine.seqs[0]]) == 1  # the writer applied it
    late = outbox.claim("cron2", limit=9, after=0, upto=BIG, now=NOW + 60.5).items
    assert [i.seq for i in late] == [mine.seqs[1]]  # the writer died: its lease expired


# -- tenants' shares (issue 16) ------------------------------------------------------------
def fill(box: Outbox, tenant: str, n: int, *, capacity: int, share: int, start: int = 0) -> int:
    """Append ``n`` changes of ``tenant`` in one call; how many were stored."""
    changes = [up(tenant, f"{tenant}{i}") for i in range(start, start + n)]
    result = box.append(changes, now=NOW, capacity=capacity, ttl_s=3600, share=share)
    assert len(result.seqs) + len(result.refused) == n
    assert list(result.refused) == changes[len(result.seqs) :]  # the first ones are stored
    return len(result.seqs)


def test_a_flooding_tenant_leaves_one_share_free_for_a_tenant_that_has_not_written(
    outbox: Outbox,
) -> None:
    assert fill(outbox, "a", 10, capacity=10, share=2) == 8  # all but one share
    assert fill(outbox, "a", 1, capacity=10, share=2, start=10) == 0
    assert fill(outbox, "b", 3, capacity=10, share=2) == 2  # b's share, not one more
    assert outbox.stats().size == 10
    assert outbox.tenants() == [TenantUse("a", 8, 3, 0), TenantUse("b", 2, 1, 0)]
    assert {d.tenant for d in outbox.dropped()} == {"a", "b"}


def test_a_tenant_below_its_share_keeps_the_rest_of_it_reserved(outbox: Outbox) -> None:
    assert fill(outbox, "b", 1, capacity=10, share=2) == 1
    # a may hold its share, then only what leaves b's other item and one new share free
    assert fill(outbox, "a", 10, capacity=10, share=2) == 6
    assert fill(outbox, "c", 5, capacity=10, share=2) == 2  # the new tenant's share
    assert fill(outbox, "b", 5, capacity=10, share=2, start=1) == 1  # b's share, complete
    assert outbox.stats().size == 10
    held = {u.tenant: u.items for u in outbox.tenants()}
    assert held == {"a": 6, "b": 2, "c": 2}


def test_beyond_its_share_a_tenant_uses_free_capacity(outbox: Outbox) -> None:
    assert fill(outbox, "a", 5, capacity=100, share=2) == 5
    assert fill(outbox, "b", 50, capacity=100, share=2) == 50
    assert fill(outbox, "a", 50, capacity=100, share=2, start=5) == 43  # 98 = 100 - share
    assert [u.items for u in outbox.tenants()] == [48, 50]


def test_the_exact_edge_of_a_share(outbox: Outbox) -> None:
    # a holds capacity - share - 1: exactly one more fits, and the next does not
    assert fill(outbox, "a", 6, capacity=9, share=2) == 6
    assert fill(outbox, "a", 1, capacity=9, share=2, start=6) == 1
    assert fill(outbox, "a", 1, capacity=9, share=2, start=7) == 0
    assert fill(outbox, "b", 2, capacity=9, share=2) == 2
    assert outbox.stats().size == 9


def test_items_being_applied_count_and_leaving_frees_the_share(outbox: Outbox) -> None:
    assert fill(outbox, "a", 10, capacity=10, share=2) == 8
    claim = outbox.claim("me", limit=3, after=0, upto=BIG, now=NOW)
    assert fill(outbox, "a", 1, capacity=10, share=2, start=20) == 0  # leased items count
    outbox.ack("me", [i.seq for i in claim.items])
    assert fill(outbox, "a", 5, capacity=10, share=2, start=30) == 3


def test_drops_are_counted_per_tenant_for_both_reasons(outbox: Outbox) -> None:
    outbox.append([up("a", "1"), up("b", "2")], now=NOW, capacity=BIG, ttl_s=10)
    outbox.append([up("a", "3")], now=NOW + 20, capacity=0, ttl_s=10)  # expires a1 and b2
    uses = {u.tenant: u for u in outbox.tenants()}
    assert uses == {"a": TenantUse("a", 0, 1, 1), "b": TenantUse("b", 0, 0, 1)}
    assert outbox.stats().dropped_full == 1 and outbox.stats().dropped_ttl == 2
    assert outbox.forget_dropped([("a", "3", "faiss")]) == 1
    assert outbox.tenants()[0] == TenantUse("a", 0, 1, 1)  # counts are history


def test_without_shares_the_first_come_is_served(outbox: Outbox) -> None:
    assert fill(outbox, "a", 12, capacity=10, share=0) == 10
    assert fill(outbox, "b", 1, capacity=10, share=0) == 0


@pytest.mark.parametrize(
    ("capacity", "fraction", "share"),
    [(1000, 0.1, 100), (1001, 0.1, 101), (1000, 0.0, 0), (3, 0.1, 1), (10, 0.5, 5),
     (1, 0.5, 0), (2, 0.01, 1), (1000, 0.001, 1)],
)  # fmt: skip
def test_tenant_share(capacity: int, fraction: float, share: int) -> None:
    assert tenant_share(capacity, fraction) == share


def test_max_deferrable_is_all_but_one_share() -> None:
    assert max_deferrable(1000, 100) == 900
    assert max_deferrable(10, 0) == 10


def test_a_claim_may_pass_over_documents_that_failed_recently(outbox: Outbox) -> None:
    s = append(outbox, up("a", "1"), up("a", "2"))
    first = outbox.claim("me", limit=1, after=0, upto=BIG, now=NOW)
    outbox.fail("me", [i.seq for i in first.items], "down", now=NOW)
    soon = outbox.claim("drain", limit=9, after=0, upto=BIG, now=NOW + 5, retry_s=10)
    assert [i.seq for i in soon.items] == [s[1]]
    outbox.release("drain", [s[1]])
    later = outbox.claim("drain", limit=9, after=0, upto=BIG, now=NOW + 10.5, retry_s=10)
    assert [i.seq for i in later.items] == s
