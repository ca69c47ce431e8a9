"""Distance metrics and the one rule for turning them into scores: higher is better.

========  =====================================  ==========================================
metric    what the stores keep                   score of a hit
========  =====================================  ==========================================
cosine    unit vectors (`canonical_vector`)      cosine similarity, in [-1, 1]
dot       the vectors as given                   inner product
l2        the vectors as given                   minus the squared Euclidean distance (<= 0)
========  =====================================  ==========================================

Under cosine every store keeps the *normalised* vector, computed here once, so that the
primary and the target hold the very same float32 bytes and the same content hash. Engines
that normalise on their own (Chroma's ``cosine`` space does, and loses the last bit) are run
in their inner-product mode on our unit vectors instead. Normalisation is idempotent: a
vector that is already unit length to float32 precision is kept bit for bit, so copying a
document from one store to another never changes its hash.
"""

from __future__ import annotations

import enum

import numpy as np

from shadowswap.errors import InvalidInput
from shadowswap.values import Vector

# Relative tolerance under which a float32 vector counts as unit length already.
_UNIT_TOLERANCE = 4e-7


class Metric(enum.StrEnum):
    """The similarity a store ranks by; fixed when the store is created."""

    COSINE = "cosine"
    DOT = "dot"
    L2 = "l2"


def canonical_vector(vector: Vector, metric: Metric, field_name: str = "vector") -> Vector:
    """The vector a store keeps for ``metric``: unit length under cosine, else unchanged."""
    if metric is not Metric.COSINE:
        return vector
    v64 = vector.astype(np.float64)
    norm = float(np.sqrt(np.dot(v64, v64)))
    if norm == 0.0:
        raise InvalidInput(
            field_name, "an all-zero vector has no direction, so it has no cosine similarity"
        )
    if abs(norm - 1.0) <= _UNIT_TOLERANCE:
        return vector
    unit = (v64 / norm).astype(np.float32)
    unit += np.float32(0.0)
    unit.flags.writeable = False
    return unit


def exact_scores(matrix: np.ndarray, query: Vector, metric: Metric) -> np.ndarray:
    """Scores of every row of ``matrix`` against ``query`` (both canonical), in float64.

    This is the reference every engine is compared with in the congruence tests.
    """
    m = matrix.astype(np.float64, copy=False)
    q = query.astype(np.float64)
    if metric is Metric.L2:
        diff = m - q
        out: np.ndarray = -np.einsum("ij,ij->i", diff, diff)
        return out
    scores: np.ndarray = m @ q
    return scores


def score_from_distance(distance: float, metric: Metric, convention: str) -> float:
    """Convert an engine's native distance to our score.

    ``convention`` names what the engine returned:
      ``"one_minus_ip"``  1 - inner product (Chroma ``ip``)
      ``"ip"``            the inner product itself (FAISS ``IndexFlatIP``)
      ``"sq_l2"``         squared Euclidean distance (FAISS ``IndexFlatL2``, Chroma ``l2``)
      ``"l2"``            Euclidean distance (pgvector ``<->``)
    """
    if convention == "one_minus_ip":
        return 1.0 - distance
    if convention == "ip":
        return distance
    if convention == "sq_l2":
        return -distance
    if convention == "l2":
        return -(distance * distance)
    raise ValueError(f"unknown distance convention {convention!r} for metric {metric}")
