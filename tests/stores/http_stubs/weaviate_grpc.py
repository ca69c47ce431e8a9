"""A scripted gRPC stub of Weaviate's ``weaviate.v1.Weaviate`` service on 127.0.0.1.

The v4 Python client sends searches, batch imports, batch deletes, tenant listings and
aggregations over gRPC (and only schema, metadata and single-object calls over REST), and it
cannot be switched to REST for those. So the Weaviate adapter's tests run the client against
this stub: it deserialises each request with the client's own generated protobuf classes
(Weaviate's published ``v1/*.proto``), records it, and answers with the reply message (or the
gRPC status) the test scripted. It implements no store; an RPC no test scripted aborts with
``UNIMPLEMENTED`` and is listed in `WeaviateGrpcStub.unmatched`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from weaviate.proto.v1 import weaviate_pb2_grpc


@dataclass(frozen=True)
class Abort:
    """Answer an RPC with this gRPC status instead of a message."""

    code: grpc.StatusCode
    details: str


Answer = Any  # a reply message, an Abort, or a callable(request) -> either


class WeaviateGrpcStub(weaviate_pb2_grpc.WeaviateServicer):  # type: ignore[misc]
    """Records every RPC; answers each method with the replies scripted by `on`, in turn."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.metadata: list[dict[str, str]] = []  # invocation metadata (headers) per RPC
        self.unmatched: list[str] = []
        self._replies: dict[str, list[Answer]] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def on(self, method: str, *answers: Answer) -> WeaviateGrpcStub:
        with self._lock:
            self._replies[method] = list(answers)
            self._hits[method] = 0
        return self

    def calls(self, method: str) -> list[Any]:
        with self._lock:
            return [req for name, req in self.requests if name == method]

    def close(self) -> None:
        self._server.stop(grace=None).wait(5)

    def _answer(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.requests.append((method, request))
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            answers = self._replies.get(method)
            if not answers:
                self.unmatched.append(method)
                item: Answer = Abort(grpc.StatusCode.UNIMPLEMENTED, f"stub: no reply for {method}")
            else:
                item = answers[min(self._hits[method], len(answers) - 1)]
                self._hits[method] += 1
        if callable(item) and not isinstance(item, Abort):
            item = item(request)
        if isinstance(item, Abort):
            context.abort(item.code, item.details)
        return item

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("Search", request, context)

    def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("BatchObjects", request, context)

    def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("BatchDelete", request, context)

    def TenantsGet(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("TenantsGet", request, context)

    def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("Aggregate", request, context)


Responder = Callable[[Any], Any]
