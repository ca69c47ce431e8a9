"""Data for tests, demos and benchmarks: clustered vectors that look like real embeddings.

Random Gaussian vectors make every approximate index look broken (all points are nearly
equidistant); real embeddings are clustered. These corpora are clustered, reproducible from a
seed, and carry metadata of every supported type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shadowswap.values import Document

LANGS = ("en", "fr", "de", "ja")


@dataclass(frozen=True)
class Corpus:
    """Documents plus held-out query vectors drawn near the same clusters."""

    documents: list[Document]
    queries: np.ndarray


def clustered_vectors(
    n: int, dim: int, *, clusters: int = 32, spread: float = 0.35, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors around ``clusters`` random unit centres; returns (vectors, assignments)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    assign = rng.integers(clusters, size=n)
    noise = rng.normal(size=(n, dim)) * (spread / np.sqrt(dim))
    return (centres[assign] + noise).astype(np.float32), assign


def clustered_corpus(
    tenant: str,
    n: int,
    dim: int,
    *,
    queries: int = 20,
    clusters: int = 32,
    seed: int = 0,
    text: bool = True,
) -> Corpus:
    """A tenant's corpus of ``n`` documents and ``queries`` held-out query vectors."""
    vectors, assign = clustered_vectors(n + queries, dim, clusters=clusters, seed=seed)
    docs = []
    for i in range(n):
        c = int(assign[i])
        docs.append(
            Document(
                tenant,
                f"{tenant}-doc-{i:06d}",
                vectors[i],
                {
                    "cluster": c,
                    "lang": LANGS[i % len(LANGS)],
                    "even": i % 2 == 0,
                    "weight": round(float(i % 97) / 7.0, 6),
                },
                text=f"document {i} of cluster {c}" if text else None,
            )
        )
    return Corpus(docs, vectors[n:])
