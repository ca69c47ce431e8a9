"""A short, real end-to-end run on embedded stores: the main job until the full rehearsal.

Loads clustered documents into a FAISS primary, copies every tenant into an embedded Chroma
target through the store boundary, verifies every document by content hash, compares the
answers of both stores to held-out queries (agreement@5, nDCG@10), then applies updates and
deletes to both and verifies again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shadowswap.settings.config import Settings
from shadowswap.shadow.ranking import agreement_at_k, ndcg_at_k
from shadowswap.stores import open_store
from shadowswap.stores.base import BaseStore
from shadowswap.testing import clustered_corpus
from shadowswap.values import Document


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class DemoReport:
    """What the demo did and found. ``drift`` must be 0 and agreement close to 1."""

    primary: str
    target: str
    tenants: int
    documents: int
    queries: int
    drift: int = 0
    agreement_at_5: float = 0.0
    ndcg_at_10: float = 0.0
    duration_s: float = 0.0
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.drift == 0 and self.agreement_at_5 >= 0.95


def drift_between(source: BaseStore, target: BaseStore, tenant: str) -> int:
    """Documents missing, extra or different in ``target``, by a sorted merge of both scans."""
    drift = 0
    left, right = _digests(source, tenant), _digests(target, tenant)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            drift, a = drift + 1, next(left, None)
        elif a is None or b[0] < a[0]:
            drift, b = drift + 1, next(right, None)
        else:
            drift += a[1] != b[1]
            a, b = next(left, None), next(right, None)
    return drift


def _digests(store: BaseStore, tenant: str) -> Iterator[tuple[str, str]]:
    for page in store.scan(tenant, batch_size=1000):
        for doc in page:
            yield doc.doc_id, doc.content_hash


def run_demo(
    workdir: Path,
    *,
    tenants: int = 3,
    docs_per_tenant: int = 2000,
    dimension: int = 64,
    queries: int = 50,
    seed: int = 7,
    say: Callable[[str], None] = lambda _: None,
) -> DemoReport:
    """Run the demo in ``workdir`` (created; its stores are recreated from scratch)."""
    settings = Settings(
        RETRIEVAL_FAISS_URL=str(workdir / "faiss"),  # type: ignore[call-arg]
        RETRIEVAL_CHROMA_URL=str(workdir / "chroma"),
    )
    _clear(workdir)
    started = time.perf_counter()
    primary = open_store("faiss", settings)
    target = open_store("chroma", settings)
    names = [f"tenant-{i}" for i in range(tenants)]
    corpora = {
        t: clustered_corpus(t, docs_per_tenant, dimension, queries=queries, seed=seed + i)
        for i, t in enumerate(names)
    }
    report = DemoReport("faiss", "chroma", tenants, tenants * docs_per_tenant, tenants * queries)

    def step(name: str, action: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        detail = action()
        report.steps.append(Step(name, round(time.perf_counter() - t0, 3), detail))
        say(f"{name}: {detail} ({report.steps[-1].seconds:.2f}s)")

    def load() -> str:
        for t, corpus in corpora.items():
            for i in range(0, len(corpus.documents), 500):
                primary.upsert(t, corpus.documents[i : i + 500])
        return f"{report.documents} documents in {tenants} tenants into FAISS"

    def copy() -> str:
        copied = 0
        for t in names:
            for page in primary.scan(t, batch_size=500):
                copied += target.upsert(t, page).written
        return f"{copied} documents copied to Chroma"

    def verify() -> str:
        report.drift = sum(drift_between(primary, target, t) for t in names)
        return f"drift {report.drift} (every document compared by content hash)"

    def compare() -> str:
        agree, ndcg, n = 0.0, 0.0, 0
        for t, corpus in corpora.items():
            for q in corpus.queries:
                p = primary.search(t, q, 10).doc_ids
                s = target.search(t, q, 10).doc_ids
                agree += agreement_at_k(p, s, 5)
                ndcg += ndcg_at_k(p, s, 10)
                n += 1
        report.agreement_at_5, report.ndcg_at_10 = agree / n, ndcg / n
        return f"{n} queries: mean agreement@5 {agree / n:.4f}, mean nDCG@10 {ndcg / n:.4f}"

    def change() -> str:
        updated = deleted = 0
        for t, corpus in corpora.items():
            docs = corpus.documents
            edits = [
                Document(t, d.doc_id, d.vector, {**d.metadata, "edited": True}, d.text)
                for d in docs[::10]
            ]
            gone = [d.doc_id for d in docs[5::20]]
            for store in (primary, target):
                store.upsert(t, edits)
                store.delete(t, gone)
            updated, deleted = updated + len(edits), deleted + len(gone)
        return f"{updated} updates and {deleted} deletes applied to both stores"

    try:
        step("load primary", load)
        step("copy to target", copy)
        step("verify", verify)
        step("compare answers", compare)
        step("write to both", change)
        step("verify again", verify)
    finally:
        primary.close()
        target.close()
    report.duration_s = round(time.perf_counter() - started, 3)
    return report


def _clear(workdir: Path) -> None:
    for sub in ("faiss", "chroma"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
