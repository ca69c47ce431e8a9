"""The rehearsal's parts on their own: the data split, the ledger's lost-write check, the work
directory's safety, the options, the charts and the page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from shadowswap.errors import InvalidInput
from shadowswap.policy import in_percent
from shadowswap.rehearsal import RehearsalOptions
from shadowswap.rehearsal.data import glove_dataset, spread_tenants
from shadowswap.rehearsal.ledger import Ledger
from shadowswap.rehearsal.report import CutoverBar, ReportInputs, render, svg
from shadowswap.rehearsal.result import RehearsalResult, StepRecord
from shadowswap.rehearsal.workspace import MARKER, prepare
from shadowswap.stores.memory import MemoryStore
from shadowswap.values import Document


# -- data ----------------------------------------------------------------------------------------
def test_tenant_names_make_each_cutover_step_move_about_its_share() -> None:
    for count in (3, 5, 10):
        names = spread_tenants(count)
        assert len(set(names)) == count
        for percent in (10, 50):
            moved = sum(in_percent(t, percent) for t in names)
            assert abs(moved - count * percent / 100) <= 1, (count, percent, moved)
    five = spread_tenants(5)
    assert [sum(in_percent(t, p) for t in five) for p in (10, 50, 100)] == [1, 3, 5]


def test_glove_split_is_held_out_unit_length_and_reproducible() -> None:
    a = glove_dataset(docs=600, queries=50, tenants=3, seed=11)
    b = glove_dataset(docs=600, queries=50, tenants=3, seed=11)
    c = glove_dataset(docs=600, queries=50, tenants=3, seed=12)
    docs = [d for ds in a.documents.values() for d in ds]
    assert len(docs) == 600 and len({d.doc_id for d in docs}) == 600
    assert {len(ds) for ds in a.documents.values()} == {200}
    assert a.dimension == 50 and all(d.text for d in docs)
    norms = np.linalg.norm(np.stack([d.vector for d in docs]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    stored = {d.vector.tobytes() for d in docs}
    assert not any(q.vector.tobytes() in stored for q in a.queries)  # queries are held out
    assert [d.doc_id for d in a.documents[a.tenants[0]]] == [
        d.doc_id for d in b.documents[b.tenants[0]]
    ]
    assert [d.doc_id for d in a.documents[a.tenants[0]]] != [
        d.doc_id for d in c.documents[c.tenants[0]]
    ]


def test_glove_sizes_are_checked() -> None:
    with pytest.raises(InvalidInput, match="--docs"):
        glove_dataset(docs=2, queries=10, tenants=3, seed=1)
    with pytest.raises(InvalidInput, match="--docs"):
        glove_dataset(docs=400_000, queries=10, tenants=3, seed=1)


# -- ledger --------------------------------------------------------------------------------------
def _doc(doc_id: str, x: float) -> Document:
    return Document("acme", doc_id, [x, 1.0 - x], {"rev": 1})


def test_ledger_finds_missing_stale_and_resurrected_documents_per_store() -> None:
    ledger = Ledger()
    good, old, new, gone = _doc("a", 0.1), _doc("b", 0.2), _doc("b", 0.3), _doc("c", 0.4)
    ledger.upserted([good, old])
    ledger.upserted([new])  # the last acknowledged write of "b" wins
    ledger.upserted([gone])
    ledger.deleted("acme", ["c"])
    ledger.upserted([_doc("d", 0.5)])
    ledger.failed("acme", ["d"])  # not acknowledged: left out
    left, right = MemoryStore(), MemoryStore()
    left.upsert("acme", [good, new])
    right.upsert("acme", [good, old, gone])  # stale "b", "c" deleted but present
    check = ledger.check([left, right])
    assert check.documents_checked == 3 and check.uncertain == 1
    assert check.lost == 2
    assert (check.stores[0].total, check.stores[1].total) == (0, 2)
    assert (check.stores[1].stale, check.stores[1].resurrected) == (1, 1)
    assert set(check.examples) == {"acme/b", "acme/c"}


def test_ledger_counts_a_missing_document() -> None:
    ledger = Ledger()
    ledger.upserted([_doc("a", 0.1)])
    check = ledger.check([MemoryStore()])
    assert check.lost == 1 and check.stores[0].missing == 1


# -- work directory and options ------------------------------------------------------------------
def test_prepare_recreates_its_own_directory_and_refuses_any_other(tmp_path: Path) -> None:
    ws = prepare(tmp_path / "w")
    (ws.root / "old-report.html").write_text("x")
    again = prepare(tmp_path / "w")
    assert (again.root / MARKER).is_file() and not (again.root / "old-report.html").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.txt").write_text("keep")
    with pytest.raises(InvalidInput, match="not made by shadowswap rehearse"):
        prepare(other)
    assert (other / "data.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"primary": "mongo"}, "--primary"),
        ({"primary": "chroma", "target": "chroma"}, "--target"),
        ({"queries_file": Path("q.jsonl")}, "--queries-file"),
        ({"tenants": 0}, "--tenants"),
    ],
)
def test_options_refuse_what_cannot_work(options: dict[str, object], flag: str) -> None:
    with pytest.raises(InvalidInput, match=flag):
        RehearsalOptions(**options)  # type: ignore[arg-type]


# -- charts and page -----------------------------------------------------------------------------
def test_charts_are_well_formed_svg_with_escaped_text() -> None:
    charts = [
        svg.histogram("a <b> & c", {"x": [0.1, 0.5, 0.9, 2.0]}, bins=[0, 0.5, 1], x_label="v"),
        svg.histogram(
            "log", {"p": [0.3, 3.0], "s": [30.0]}, bins=[0.1, 1, 10, 100], x_label="ms",
            log_x=True, counts_on_bars=True,
        ),
        svg.step_lines("outbox", [(0.0, 0.0), (1.0, 5.0), (2.0, 1.0)],
                       states=[(0.0, "closed"), (0.5, "open"), (1.5, "half_open")],
                       marks=[(0.5, "down")], window=(0.0, 3.0), x_label="s", y_label="n"),
        svg.stacked_bars("reads", ["a", "b"], {"faiss": [3, 0], "chroma": [1, 4]},
                         y_label="reads", notes=["x", "y"]),
        svg.gantt("steps", [("load", 0.0, 1.0, "passed"), ("x", 1.0, 2.0, "failed")],
                  x_label="s"),
        svg.empty("nothing", "no samples"),
    ]  # fmt: skip
    for chart in charts:
        root = ET.fromstring(chart)  # noqa: S314 - our own output
        assert (
            root.tag.endswith("svg") and root.find("{http://www.w3.org/2000/svg}title") is not None
        )
    assert "a &lt;b&gt; &amp; c" in charts[0]
    assert "no samples" in svg.histogram("t", {"x": []}, bins=[0, 1], x_label="v")


def test_histogram_shares_are_per_series() -> None:
    series = {"one": [0.1] * 10, "two": [0.9] * 2}
    chart = svg.histogram("t", series, bins=[0, 0.5, 1], x_label="v", counts_on_bars=True)
    assert ">10</text>" in chart and ">2</text>" in chart
    assert "one (10)" in chart and "two (2)" in chart


def test_page_shows_the_verdict_the_failure_and_every_section() -> None:
    result = RehearsalResult(
        primary="faiss",
        target="chroma",
        data={"source": "test", "documents": 10, "tenants": ["a"], "queries": 2, "seed": 1},
        steps=[
            StepRecord("load primary", "passed", 0.0, 1.0, "10 documents"),
            StepRecord("dual write on", "failed", 1.0, 0.5, "failed", {}, "boom <b>"),
            StepRecord("backfill target", "not run", 1.5, 0.0, "not run"),
        ],
        verdict="NONE",
        lost_writes=0,
    )
    page = render(ReportInputs(result, cutover=[CutoverBar("cutover 10%", {"faiss": 3}, 0, 1.0)]))
    for section in ("summary", "ladder", "quality", "latency", "outage", "cutover", "gate",
                    "writes", "files"):  # fmt: skip
        assert f'id="{section}"' in page
    assert "failed at: dual write on" in page and "boom &lt;b&gt;" in page
    assert "<script" not in page


def test_the_gate_table_shows_units_the_breaker_by_name_and_what_is_still_needed() -> None:
    """Issue 15: ms, s, %, "closed" rather than 0, and the count still needed."""
    from shadowswap.gate import Evidence, default_criteria, evaluate

    ev = Evidence(
        agreement_at_5=(1.0,) * 260, ndcg_at_10=(1.0,) * 260, score_delta=(0.0,) * 260,
        latency_delta_s=(0.002,) * 260, shadow_latency_s=(0.004,) * 260, compared=260,
        mismatches=0, foreign_hits=0, stale_hits=0, shadow_errors=0,
        drops={"timeout": 0, "queue_full": 0}, reads=520, read_errors=0,
        dual_write_errors=0, dual_write_skipped=0, breaker_open=False, outbox_size=0,
        outbox_dropped=0, reconcile_drift=0, reconcile_age_s=90.0, window_s=600.0,
    )  # fmt: skip
    gate = evaluate(ev, default_criteria()).as_dict()
    result = RehearsalResult(
        primary="faiss", target="chroma",
        data={"source": "test", "documents": 10, "tenants": ["a"], "queries": 2, "seed": 1},
        steps=[], verdict="HOLD", lost_writes=0, gate=gate,
    )  # fmt: skip
    page = render(ReportInputs(result, cutover=[]))
    section = page[page.index('id="gate"') :]
    section = section[: section.index("</section>")]
    assert "<td class=num>4 ms</td>" in section  # p95 shadow latency, 0.004 s
    assert "<td>&lt;= 1200 ms</td>" in section
    assert "<td class=num>closed</td>" in section and "== closed" in section
    assert "<td class=num>0 %</td>" in section  # a rate
    assert "<td class=num>2 min</td>" in section  # the reconcile's age, 90 s
    assert "2,735 more comparisons (~" in section  # foreign hits: 2,995 - 260
    assert "39 more comparisons (~" in section  # stale hits: 299 - 260
