"""shadowswap: move a retrieval backend to another vector store in production, with proof.

The package re-exports the values and errors every layer shares (`Document`, `SearchResult`,
the error tree) and the rank measures. Wiring is `shadowswap.runtime.build_runtime`; settings
are `shadowswap.settings`. docs/architecture.md draws the layers (top first: cli; service,
rehearsal; runtime, rollout, gate; read, dualwrite, sync; shadow, testing; stores; policy;
settings; foundation), which `make lint` checks.

>>> from shadowswap import agreement_at_k
>>> agreement_at_k(["a", "b"], ["b", "c"], 2)
0.5
"""

from shadowswap.errors import (
    ConfigError,
    DimensionMismatch,
    InvalidInput,
    MissingDependency,
    ShadowswapError,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from shadowswap.shadow.ranking import agreement_at_k, ndcg_at_k
from shadowswap.similarity import Metric
from shadowswap.values import Document, Hit, Query, SearchResult, WriteReport

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DimensionMismatch",
    "Document",
    "Hit",
    "InvalidInput",
    "Metric",
    "MissingDependency",
    "Query",
    "SearchResult",
    "ShadowswapError",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "WriteReport",
    "__version__",
    "agreement_at_k",
    "ndcg_at_k",
]
