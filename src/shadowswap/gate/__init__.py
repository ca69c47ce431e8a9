"""The go/no-go gate: PROMOTE, HOLD or ROLLBACK from shadow and migration evidence, decided on
confidence bounds, never on raw means, and never PROMOTE without enough evidence.

    model.py       Verdict, Criterion, Criteria, Evidence, CriterionResult, GateResult
    stats.py       the bounds (empirical Bernstein, Clopper–Pearson, order statistics)
    criteria.py    the runbooks' default criteria, ``gate.yml`` files
    evaluate.py    evidence + criteria (+ baseline) -> verdict
    evidence.py    evidence from the observation log, a metrics registry, the state dir
    prometheus.py  evidence from Prometheus over a window
    scrape.py      evidence from gateways' own /metrics (totals since they started)

docs/gate.md describes the whole; ``shadowswap gate`` is the command.

>>> from shadowswap.gate import Evidence, default_criteria, evaluate
>>> evaluate(Evidence(), default_criteria()).verdict.value
'HOLD'

May import: `shadowswap.sync` (the last reconcile), `shadowswap.shadow` (observations),
settings and the foundation. Imported by the CLI, the service and the rehearsal.
"""

from shadowswap.gate.criteria import default_criteria, load_criteria, parse_criteria
from shadowswap.gate.evaluate import STATISTICS, evaluate
from shadowswap.gate.evidence import (
    combine,
    evidence_from_observations,
    evidence_from_records,
    evidence_from_registry,
    evidence_from_state,
    unexplained_hits,
)
from shadowswap.gate.model import (
    Criteria,
    Criterion,
    CriterionResult,
    Evidence,
    GateResult,
    Histogram,
    Verdict,
)
from shadowswap.gate.prometheus import evidence_from_prometheus
from shadowswap.gate.scrape import evidence_from_metrics_url

__all__ = [
    "STATISTICS",
    "Criteria",
    "Criterion",
    "CriterionResult",
    "Evidence",
    "GateResult",
    "Histogram",
    "Verdict",
    "combine",
    "default_criteria",
    "evaluate",
    "evidence_from_metrics_url",
    "evidence_from_observations",
    "evidence_from_prometheus",
    "evidence_from_records",
    "evidence_from_registry",
    "evidence_from_state",
    "load_criteria",
    "parse_criteria",
    "unexplained_hits",
]
