"""Shadow read: the target answers a sample of real queries in the shadow of the primary, off
the caller's thread and within a deadline, and the two answers are compared.

    compare.py       the measures of one comparison (agreement@5, nDCG@10, deltas), pure
    ranking.py       the rank measures themselves (CONTRACT §2 formulas), pure
    executor.py      bounded queue + bounded workers + deadline watchdog
    read.py          one shadow read: search the shadow backend, make one Observation
    observations.py  the observation record, the JSON-lines log, reading it back
    publish.py       an observation published to the metrics (the log is the other sink)
    offline.py       ``shadowswap compare``: a file of queries against both backends

Each shadow read makes one `Observation` and publishes it to its sinks: the metrics
(`ObservationMetrics`) and, when ``RETRIEVAL_OBSERVATIONS_DIR`` is set, the JSON-lines log.

The router (`shadowswap.read.router.Router`) decides which reads are shadowed; docs/shadow-read.md
describes the whole. This package may import the stores, the settings and the foundation
modules (metrics, values, clock, ...), never the read path or anything above it.
"""

from shadowswap.shadow.compare import Measures, measure
from shadowswap.shadow.executor import ExecutorSizes, ExecutorStats, ShadowExecutor
from shadowswap.shadow.observations import (
    JsonlObservationLog,
    MemoryObservations,
    Observation,
    ObservationSink,
    observation_log,
    read_observations,
)
from shadowswap.shadow.publish import ObservationMetrics

__all__ = [
    "ExecutorSizes",
    "ExecutorStats",
    "JsonlObservationLog",
    "Measures",
    "MemoryObservations",
    "Observation",
    "ObservationMetrics",
    "ObservationSink",
    "ShadowExecutor",
    "measure",
    "observation_log",
    "read_observations",
]
