"""FAISS reads documents back from its own catalog without validating or hashing them again
(`Document._trusted`): what it returns must be exactly what full validation would build."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowswap.errors import CorruptStore, InvalidInput
from shadowswap.similarity import Metric
from shadowswap.stores.faiss import FaissStore
from shadowswap.values import Document, content_hash

meta_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
documents = st.builds(
    lambda doc_id, vector, metadata, text: Document("t", doc_id, vector, metadata, text),
    st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=20),
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3).filter(any),
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True), meta_values, max_size=5),
    st.none() | st.text(max_size=30),
)


def rebuilt(doc: Document) -> Document:
    """The same parts through full validation."""
    return Document(doc.tenant, doc.doc_id, np.array(doc.vector), dict(doc.metadata), doc.text)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(documents, min_size=1, max_size=8, unique_by=lambda d: d.doc_id))
def test_documents_read_back_are_what_full_validation_builds(
    tmp_path: Path, batch: list[Document]
) -> None:
    with FaissStore(tmp_path / f"f{len(list(tmp_path.iterdir()))}", Metric.DOT) as store:
        store.upsert("t", batch)
        scanned = [d for page in store.scan("t", batch_size=3) for d in page]
        got = store.get("t", [d.doc_id for d in batch])
    assert [d.doc_id for d in scanned] == sorted(d.doc_id for d in batch)
    for doc in [*scanned, *got.values()]:
        full = rebuilt(doc)
        assert doc.content_hash == content_hash(doc.vector, doc.metadata, doc.text)
        assert doc.content_hash == full.content_hash == got[doc.doc_id].content_hash
        assert dict(doc.metadata) == dict(full.metadata)
        assert [type(v) for v in doc.metadata.values()] == [type(v) for v in full.metadata.values()]
        assert doc.vector.dtype == np.float32 and not doc.vector.flags.writeable
        with pytest.raises(TypeError):
            doc.metadata["x"] = 1  # type: ignore[index]
    originals = {d.doc_id: d for d in batch}
    assert all(d.content_hash == originals[d.doc_id].content_hash for d in scanned)


def test_a_catalog_row_with_a_vector_of_another_length_is_reported_corrupt(
    tmp_path: Path,
) -> None:
    store = FaissStore(tmp_path / "f")
    store.upsert("t", [Document("t", "a", [1.0, 0.0, 0.0]), Document("t", "b", [0.0, 1.0, 0.0])])
    with sqlite3.connect(tmp_path / "f" / "catalog.sqlite3") as db:
        db.execute("UPDATE docs SET vector = substr(vector, 1, 8) WHERE doc_id = 'b'")
    with pytest.raises(CorruptStore, match="'b' has 2 dimensions, not 3"):
        list(store.scan("t"))
    with pytest.raises(CorruptStore, match="'b' has 2 dimensions"):
        store.get("t", ["b"])
    store.close()


def test_with_vector_still_checks_the_new_vector() -> None:
    doc = Document("t", "a", [1.0, 2.0], {"k": 1}, "text")
    for bad in ([1.0, float("nan")], [], "12"):
        with pytest.raises(InvalidInput):
            doc.with_vector(bad)  # type: ignore[arg-type]
    moved = doc.with_vector(np.array([3.0, -0.0], dtype=np.float64))  # type: ignore[arg-type]
    assert moved == Document("t", "a", [3.0, 0.0], {"k": 1}, "text")
    assert moved.vector.dtype == np.float32 and not moved.vector.flags.writeable
