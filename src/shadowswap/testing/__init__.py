"""Helpers for your own tests: fault-injecting stores and realistic data.

    faults.py  wrap a real store so chosen operations hang, fail, slow down, flap or leak
               (`HangingStore`, `FailingStore`, `SlowStore`, `FlappingStore`, `LeakingStore`,
               `TailLeakStore`)
    data.py    clustered vectors and corpora that behave like real embeddings
               (`clustered_corpus`): random Gaussian vectors make every ANN index look broken

>>> from shadowswap.stores.memory import MemoryStore
>>> from shadowswap.testing import FailingStore, clustered_corpus
>>> store = FailingStore(MemoryStore(), ops=("search",))

May import: `shadowswap.stores` (their base) and the foundation. Product code below the
rehearsal never imports it.
"""

from shadowswap.testing.data import Corpus, clustered_corpus, clustered_vectors
from shadowswap.testing.faults import (
    FailingStore,
    FaultyStore,
    FlappingStore,
    HangingStore,
    LeakingStore,
    SlowStore,
    TailLeakStore,
)

__all__ = [
    "Corpus",
    "FailingStore",
    "FaultyStore",
    "FlappingStore",
    "HangingStore",
    "LeakingStore",
    "SlowStore",
    "TailLeakStore",
    "clustered_corpus",
    "clustered_vectors",
]
