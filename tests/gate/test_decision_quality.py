"""Decision quality (issue 9 item 6), in-suite version: real engines, seeded trials.

A faithful target must come out PROMOTE in at least 99 of 100 seeded trials; every faulty
target must never be promoted, and each must be caught by the criterion that names its fault.
The full matrix (larger pools, 100 trials per target) is ``benchmarks/bench_gate.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.decision_quality import VARIANTS, Lab, Setup, Variant, judge

from shadowswap.gate import Verdict
from shadowswap.shadow.observations import Observation

SETUP = Setup(tenants=3, docs=1500, queries=500, seed=11)
BY_NAME = {v.name: v for v in VARIANTS}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(Path(tmp_path_factory.mktemp("gate-quality")), SETUP)
    try:
        yield lab
    finally:
        lab.close()


class Pools:
    """Each variant's observations, made when a test first asks for them: one test's
    setup observes one variant, so no single setup carries the whole matrix's time (on a
    loaded machine that once exceeded pytest's timeout)."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        self._made: dict[str, list[Observation]] = {}

    def __getitem__(self, name: str) -> list[Observation]:
        if name not in self._made:
            self._made[name] = self._lab.observe(BY_NAME[name])
        return self._made[name]


@pytest.fixture(scope="module")
def pools(lab: Lab) -> Pools:
    return Pools(lab)


@pytest.mark.parametrize("name", ["faithful", "faithful-lancedb"])
def test_a_faithful_target_promotes_in_99_of_100_seeded_runs(pools: Pools, name: str) -> None:
    row = judge(BY_NAME[name], pools[name], seeds=100, budget=400, step=50)
    assert row.verdicts[Verdict.PROMOTE.value] >= 99, row.as_dict()
    assert max(row.queries) <= 400


# fault -> (verdicts allowed, a criterion that must have caught it in every trial)
CAUGHT = {
    "missing-5": ({Verdict.HOLD, Verdict.ROLLBACK}, "mismatch_ratio"),
    "missing-20": ({Verdict.HOLD, Verdict.ROLLBACK}, "mismatch_ratio"),
    "stale-10": ({Verdict.ROLLBACK}, "foreign_hits"),
    "l2-metric": ({Verdict.ROLLBACK}, "score_delta"),
    "lossy-hnsw": ({Verdict.HOLD, Verdict.ROLLBACK}, "mismatch_ratio"),
    "other-tenant": ({Verdict.ROLLBACK}, "foreign_hits"),
    "slow": ({Verdict.HOLD}, "latency_delta"),
    "flaky": ({Verdict.HOLD, Verdict.ROLLBACK}, "shadow_errors"),
}


@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_a_faulty_target_is_never_promoted(pools: Pools, name: str) -> None:
    variant: Variant = BY_NAME[name]
    allowed, criterion = CAUGHT[name]
    row = judge(variant, pools[name], seeds=10, budget=500, step=50)
    assert Verdict.PROMOTE.value not in row.verdicts, row.as_dict()
    assert set(row.verdicts) <= {v.value for v in allowed}, row.as_dict()
    assert row.undecided == 0 and row.deciding[criterion] == 10, row.as_dict()
