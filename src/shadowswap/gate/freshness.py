"""The age limit of the last reconcile, for the swap and the status (issue 15): the threshold
of the gate criterion named ``reconcile_fresh``, so the number is written in one place (the
default criteria in `shadowswap.gate.criteria`, or a criteria file such as
``deploy/gate.yml``).

`shadowswap.rollout` and `shadowswap.sync` sit at or below this package's layer and may not
import it: the entry points (the CLI, the service's status, the rehearsal) read the limit here
and hand it down (``PhaseMover(max_reconcile_age_s=...)``,
`shadowswap.sync.freshness.reconcile_freshness`).
"""

from __future__ import annotations

from shadowswap.gate.criteria import default_criteria
from shadowswap.gate.model import Criteria

RECONCILE_FRESH = "reconcile_fresh"


def reconcile_max_age_s(criteria: Criteria | None = None) -> float:
    """The threshold (seconds) of the criterion named ``reconcile_fresh`` in ``criteria``;
    when they have none (or are not given), that of the default criteria."""
    for source in (criteria, default_criteria()):
        if source is None:
            continue
        for criterion in source.criteria:
            if criterion.name == RECONCILE_FRESH:
                return float(criterion.threshold)
    raise LookupError(f"the default gate criteria have no {RECONCILE_FRESH!r} criterion")
