"""Publishing an `Observation` to the metrics: the shadow histograms and the mismatch counter
of CONTRACT §2, from the one record a shadow read makes (the JSON-lines log is the other sink,
`shadowswap.shadow.observations.JsonlObservationLog`).

Only ``compared`` observations carry measures; the others publish nothing here (the shadow's
search is counted by `shadowswap.metrics.Metrics.read` and its errors by ``shadow_error``).
"""

from __future__ import annotations

from shadowswap.metrics import Metrics
from shadowswap.shadow.judge import CLASSES
from shadowswap.shadow.observations import Observation


class ObservationMetrics:
    """An `ObservationSink` that turns observations into metric samples; never raises.

    >>> from shadowswap.metrics import Metrics
    >>> sink = ObservationMetrics(Metrics.null())
    >>> sink.close()
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, observation: Observation) -> None:
        o, m = observation, self._metrics
        if o.outcome != "compared" or o.agreement_at_5 is None or o.ndcg_at_10 is None:
            return
        b, s, base = o.shadow_backend, o.sample or m.sample, m.base
        m.shadow_latency.labels(backend=b, sample=s, **base).observe(o.shadow_latency_s or 0.0)
        m.agreement.labels(backend=b, k="5", sample=s, **base).observe(o.agreement_at_5)
        m.ndcg.labels(backend=b, k="10", sample=s, **base).observe(o.ndcg_at_10)
        if o.score_delta is not None:
            m.score_delta.labels(backend=b, **base).observe(o.score_delta)
        m.latency_delta.labels(backend=b, **base).observe(max(0.0, o.latency_delta_s or 0.0))
        mismatches = m.mismatches.labels(backend=b, **base)
        if o.mismatch:
            mismatches.inc()
        if o.looked_up:  # one count per comparison and class (created at the first, so the
            for name in CLASSES:  # gate reads 0, not unknown, for a class never seen)
                counted = m.hit_classes.labels(backend=b, **{"class": name}, **base)
                if getattr(o, name):
                    counted.inc()

    def close(self) -> None:
        pass


__all__ = ["ObservationMetrics"]
