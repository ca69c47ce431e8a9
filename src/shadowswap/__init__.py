"""shadowswap: move a retrieval backend to another vector store in production, with proof.

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
