"""Schema-driven fuzz of the gateway (schemathesis, from the app's own OpenAPI document): no
input gives a 5xx, every 4xx carries a JSON message, and answers match the documented schema.

The app runs in-process (ASGI) over a real FAISS store that holds 8-dimensional documents of
two tenants. Generated cases are sent with a key allowed every tenant and the status page.
Both generation modes run: schema-valid input (mostly refused for its dimension or ids the
schema cannot express, which must be a 4xx, not a 5xx) and schema-violating input (which must
be refused). ``max_examples`` keeps the run within the suite's budget.

Checks: schemathesis's defaults except ``positive_data_acceptance`` (a schema cannot say
"as many numbers as the store's dimension", so schema-valid requests are legitimately
refused with 422), plus `four_xx_has_a_message`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shadowswap.runtime import build_runtime
from shadowswap.service.app import create_app
from shadowswap.service.auth import KeyRing
from shadowswap.settings.config import StaticSettings, load_settings
from shadowswap.testing import clustered_corpus
from tests.service.conftest import environment, make_keys

MAX_EXAMPLES = 50


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    keys = make_keys(tmp / "keys.json")
    runtime = build_runtime(StaticSettings(load_settings(environ=environment(tmp))))
    for tenant in ("tenant-a", "acme"):
        runtime.writer.upsert(tenant, clustered_corpus(tenant, 50, 8, queries=0).documents)
    app = create_app(runtime, auth=KeyRing(tmp / "keys.json"))
    yield app, keys["admin"]
    runtime.close()


def operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # a refusal of schema-violating data may also be a 413: a generated `text` of more than a
    # million characters makes the body larger than RETRIEVAL_MAX_BODY_BYTES
    schema.config.checks.negative_data_rejection.expected_statuses = [
        "400", "401", "403", "413", "415", "422"]  # fmt: skip
    return [result.ok() for result in schema.get_all_operations()]


@schemathesis.check
def four_xx_has_a_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is JSON with a non-empty ``detail`` and an ``error`` code."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), "a 4xx body must be a JSON object"
        assert isinstance(body.get("detail"), str) and body["detail"].strip(), "no message"
        assert isinstance(body.get("error"), str) and body["error"], "no error code"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_5xx_and_every_4xx_says_why(
    fuzz_target: tuple[Any, str], mode: GenerationMode
) -> None:
    # schemathesis's pytest plugin (``schema.parametrize``) does not run under pytest 9, so
    # the strategies it builds are driven with Hypothesis directly, one operation at a time.
    app, key = fuzz_target
    headers = {"Authorization": f"Bearer {key}"}
    positive = mode is GenerationMode.POSITIVE
    seen: dict[str, set[tuple[int, str]]] = {}
    for operation in operations(app):
        outcomes = seen.setdefault(operation.label, set())

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            generated = case.headers or {}
            # positive: our key wins; negative: generated (often broken) auth headers win
            merged = {**generated, **headers} if positive else {**headers, **generated}
            response = case.call(headers=merged)
            code = response.json().get("error", "") if response.status_code >= 400 else ""
            outcomes.add((response.status_code, code))  # noqa: B023 - run() runs in this turn
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance],
                additional_checks=[four_xx_has_a_message],
            )

        try:
            run()
        except Unsatisfiable:  # no input to make invalid (GET /healthz and the like)
            assert not positive and operation.method.upper() == "GET", operation.label
    assert set(seen) >= {
        "POST /internal/retrieval/search",
        "POST /internal/retrieval/upsert",
        "POST /internal/retrieval/delete",
        "GET /internal/retrieval/status",
    }
    if positive:  # the fuzz reached the stores, not only the validation layer
        for label in ("POST /internal/retrieval/search", "POST /internal/retrieval/upsert"):
            assert (422, "dimension_mismatch") in seen[label], seen
        assert (200, "") in seen["POST /internal/retrieval/delete"], seen
        assert (200, "") in seen["GET /internal/retrieval/status"], seen


# -- a targeted property test: valid requests, then one part replaced by arbitrary JSON -------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEY = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,5}", fullmatch=True)
VALUE = (
    st.text(max_size=10)
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
)
METADATA = st.dictionaries(KEY, VALUE, max_size=5)
VECTOR8 = st.lists(st.floats(0.5, 1e6, width=32), min_size=8, max_size=8)
TENANT = st.sampled_from(["tenant-a", "acme", "nobody", "a" * 64])
DOC_ID = st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    endpoint = draw(st.sampled_from(["search", "upsert", "delete"]))
    tenant = draw(TENANT)
    if endpoint == "search":
        body: dict[str, Any] = {"tenant": tenant, "vector": draw(VECTOR8),
                                "k": draw(st.integers(1, 1000))}  # fmt: skip
        if draw(st.booleans()):
            body["filter"] = draw(METADATA)
    elif endpoint == "upsert":
        docs = []
        for _ in range(draw(st.integers(1, 3))):
            doc: dict[str, Any] = {"doc_id": draw(DOC_ID), "vector": draw(VECTOR8)}
            if draw(st.booleans()):
                doc["metadata"] = draw(METADATA)
            if draw(st.booleans()):
                doc["text"] = draw(st.text(max_size=40))
            docs.append(doc)
        body = {"tenant": tenant, "documents": docs}
    else:
        body = {"tenant": tenant, "doc_ids": draw(st.lists(DOC_ID, min_size=1, max_size=4))}
    return endpoint, body


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid request (a third of the time), else one with a part replaced by arbitrary
    JSON (or a string, a huge number, NaN), dropped, or an unknown field added."""
    endpoint, body = draw(valid_requests())
    if draw(st.integers(0, 2)) == 0:
        return endpoint, body
    path = draw(st.sampled_from(_paths(body)))
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if action == "replace":
        odd = st.sampled_from([float("nan"), float("inf"), 2**70, -(2**64), "\u0000", "", 1e39])
        parent[path[-1]] = draw(JSON | odd)
    elif action == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(JSON)
    return endpoint, body


def test_arbitrary_json_in_any_field_never_gives_a_5xx(fuzz_target: tuple[Any, str]) -> None:
    app, key = fuzz_target
    outcomes: set[tuple[str, int]] = set()
    with TestClient(app) as client:

        @given(request=requests())
        @settings(max_examples=300, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(request: tuple[str, Any]) -> None:
            endpoint, body = request
            raw = json.dumps(body, allow_nan=True)  # NaN / Infinity literals included
            r = client.post(f"/internal/retrieval/{endpoint}", content=raw, headers={
                "Authorization": f"Bearer {key}", "content-type": "application/json"})  # fmt: skip
            outcomes.add((endpoint, r.status_code))
            assert r.status_code < 500, (endpoint, raw[:300], r.text[:300])
            if r.status_code >= 400:
                problem = r.json()
                assert problem["detail"] and problem["error"], r.text

        run()
    assert ("search", 200) in outcomes and ("upsert", 200) in outcomes, outcomes
