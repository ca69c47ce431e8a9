"""``shadowswap compare`` as a real process on real stores, and the offline run under it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shadowswap.clock import FakeClock
from shadowswap.errors import InvalidInput
from shadowswap.shadow.offline import Distribution, parse_queries, run_offline
from shadowswap.similarity import Metric
from shadowswap.stores.chroma import ChromaStore
from shadowswap.stores.faiss import FaissStore
from shadowswap.stores.memory import MemoryStore
from shadowswap.testing import clustered_corpus
from shadowswap.testing.faults import FailingStore
from tests.helpers import cli, run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FAISS and Chroma stores in a directory: acme identical in both, globex with a fifth
    of its documents missing from Chroma; and a queries file for both tenants."""
    root = tmp_path_factory.mktemp("compare")
    faiss = FaissStore(root / "faiss", Metric.COSINE)
    chroma = ChromaStore(str(root / "chroma"), Metric.COSINE)
    lines = []
    for i, tenant in enumerate(("acme", "globex")):
        corpus = clustered_corpus(tenant, 400, 24, queries=25, clusters=6, seed=i)
        faiss.upsert(tenant, corpus.documents)
        docs = corpus.documents
        chroma.upsert(
            tenant, docs if tenant == "acme" else [d for j, d in enumerate(docs) if j % 5]
        )
        lines += [json.dumps({"tenant": tenant, "vector": q.tolist()}) for q in corpus.queries]
        if tenant == "acme":
            filtered = {"tenant": tenant, "vector": corpus.queries[0].tolist(), "id": "f"}
            lines.append(json.dumps({**filtered, "filter": {"lang": "en"}}))
    (root / "queries.jsonl").write_text("\n".join(lines) + "\n\n")
    faiss.close()
    chroma.close()
    return root


def env(root: Path) -> dict[str, str]:
    return {
        "RETRIEVAL_FAISS_URL": str(root / "faiss"),
        "RETRIEVAL_CHROMA_URL": str(root / "chroma"),
        "RETRIEVAL_TARGET_BACKEND": "chroma",
    }


def test_json_report_per_tenant_and_overall(workdir: Path) -> None:
    out = run(cli("compare", "--queries", "queries.jsonl", "--json"), workdir, env(workdir))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["primary"], report["target"], report["k"]) == ("faiss", "chroma", 10)
    assert report["queries"] == 51
    assert set(report["tenants"]) == {"acme", "globex"}
    acme, globex = report["tenants"]["acme"], report["tenants"]["globex"]
    assert acme["queries"] == 26 and globex["queries"] == 25
    assert acme["agreement_at_5"]["mean"] == 1.0 and acme["mismatches"] == 0
    assert globex["agreement_at_5"]["mean"] < 0.95 and globex["mismatches"] > 0
    for scope in (report["overall"], acme, globex):
        for measure in ("agreement_at_5", "ndcg_at_10", "score_delta", "latency_delta_ms"):
            assert set(scope[measure]) == {"count", "mean", "p5", "p50", "p95", "min", "max"}
        assert scope["errors"] == {"primary": 0, "target": 0}
    overall = report["overall"]
    assert overall["compared"] == 51
    assert overall["mismatches"] == acme["mismatches"] + globex["mismatches"]
    assert report["errors"] == []


def test_text_report_and_k(workdir: Path) -> None:
    out = run(cli("compare", "--queries", "queries.jsonl", "--k", "5"), workdir, env(workdir))
    assert out.returncode == 0, out.stderr
    assert "faiss (primary) vs chroma (target), k=5" in out.stdout
    for line in ("overall: 51 queries", "tenant acme: 26 queries", "tenant globex: 25 queries"):
        assert line in out.stdout
    for measure in ("agreement@5", "nDCG@10", "score delta", "latency delta ms"):
        assert measure in out.stdout


def test_bad_lines_are_refused_with_their_line_numbers(workdir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"tenant": "acme", "vector": [0.1] * 24})
    bad.write_text(
        "\n".join(
            [
                good,
                "{not json",
                json.dumps({"tenant": "acme"}),
                json.dumps({"tenant": "acme", "vector": [0.1] * 24, "filters": {}}),
                good,
                json.dumps({"tenant": "a b", "vector": [1]}),
            ]
        )
    )
    out = run(cli("compare", "--queries", str(bad), "--json"), workdir, env(workdir))
    assert out.returncode == 2
    assert out.stdout == ""
    for expected in ("line 2:", "line 3: vector: missing", "line 4: filters", "line 6: tenant"):
        assert expected in out.stderr
    assert "line 1:" not in out.stderr and "line 5:" not in out.stderr
    assert "Traceback" not in out.stderr


def test_a_vector_of_the_wrong_dimension_is_named_by_line(workdir: Path, tmp_path: Path) -> None:
    file = tmp_path / "dims.jsonl"
    file.write_text(json.dumps({"tenant": "acme", "vector": [0.1, 0.2, 0.3]}) + "\n")
    out = run(cli("compare", "--queries", str(file)), workdir, env(workdir))
    assert out.returncode == 2
    assert "line 1" in out.stderr and "3 dimensions" in out.stderr and "24" in out.stderr


def test_no_target_backend_is_a_configuration_error(workdir: Path) -> None:
    settings = {k: v for k, v in env(workdir).items() if k != "RETRIEVAL_TARGET_BACKEND"}
    out = run(cli("compare", "--queries", "queries.jsonl"), workdir, settings)
    assert out.returncode == 2
    assert "RETRIEVAL_TARGET_BACKEND" in out.stderr


def test_a_missing_queries_file_is_bad_usage(workdir: Path) -> None:
    out = run(cli("compare", "--queries", "nope.jsonl"), workdir, env(workdir))
    assert out.returncode == 2 and "nope.jsonl does not exist" in out.stderr


def test_backend_errors_are_counted_per_query_and_the_run_goes_on(tmp_path: Path) -> None:
    corpus = clustered_corpus("acme", 50, 8, queries=6, seed=3)
    primary, target = MemoryStore(), MemoryStore()
    primary.upsert("acme", corpus.documents)
    target.upsert("acme", corpus.documents)
    file = tmp_path / "q.jsonl"
    file.write_text(
        "".join(json.dumps({"tenant": "acme", "vector": q.tolist()}) + "\n" for q in corpus.queries)
    )
    queries = parse_queries(file)
    failing = FailingStore(target, ops=["search"])
    report = run_offline(primary, failing, queries, k=5, clock=FakeClock())
    summary = report.overall()
    assert (summary.queries, summary.compared, summary.target_errors) == (6, 0, 6)
    assert len(report.errors) == 6 and "injected fault" in str(report.errors[0].error)
    healthy = run_offline(primary, target, queries, k=5, clock=FakeClock()).overall()
    assert healthy.compared == 6 and healthy.agreement_at_5.mean == 1.0


def test_distributions() -> None:
    d = Distribution.of([float(x) for x in range(101)])
    assert (d.count, d.mean, d.p5, d.p50, d.p95, d.min, d.max) == (101, 50, 5, 50, 95, 0, 100)
    assert Distribution.of([]).as_json()["mean"] is None
    assert np.isclose(Distribution.of([0.5]).as_json()["p95"] or 0, 0.5)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(InvalidInput, match="no queries"):
        parse_queries(tmp_path / "empty.jsonl")
