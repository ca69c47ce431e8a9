"""Per-request decisions: every combination of flags, target, allowlist, cutover list and
percentage, checked against the rules of the module docstring, plus the hash's promises."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowswap import policy
from shadowswap.policy import (
    WRITE_PLAN_VARIABLES,
    Plan,
    WritePlan,
    cutover_bucket,
    fallback_role,
    in_percent,
    in_step,
    kind_of,
    plan,
    read_role,
    shadow_role,
    write_plan,
    write_plan_fingerprint,
    write_plan_variables,
)
from shadowswap.settings.config import Settings, load_settings

# Buckets written down once (version 1 of the hash). If one of these changes, tenants move
# between backends on upgrade: that is a breaking change, not a test to update.
PINNED_BUCKETS = {
    "tenantA": 31.602228307157265,
    "tenantB": 11.951167895750235,
    "internal": 31.760437696136805,
    "acme": 63.24951482869392,
    "t-0001": 1.9200491486674596,
}

# Three tenants whose buckets (above) fall in different bands, so the table below can say by
# hand which percentages select them: low (1.9), mid (11.95), high (63.2).
LOW, MID, HIGH = "t-0001", "tenantB", "acme"
SELECTED_AT = {0: set(), 10: {LOW}, 50: {LOW, MID}, 100: {LOW, MID, HIGH}}


def settings(**env: str) -> Settings:
    return load_settings(environ=env)


def test_pinned_buckets_are_stable() -> None:
    for tenant, bucket in PINNED_BUCKETS.items():
        assert cutover_bucket(tenant) == bucket, tenant


def test_the_table_tenants_are_in_the_bands_it_claims() -> None:
    for percent, chosen in SELECTED_AT.items():
        for tenant in (LOW, MID, HIGH):
            assert in_percent(tenant, percent) == (tenant in chosen), (tenant, percent)


# -- the exhaustive table ----------------------------------------------------------------------
ALLOWLISTS = {"empty": "", "containing": "{tenant},other", "not containing": "other,more"}
COMBINATIONS = list(
    itertools.product(
        (False, True),  # dual write
        (False, True),  # shadow read
        (None, "chroma"),  # target
        tuple(ALLOWLISTS),
        (False, True),  # tenant in RETRIEVAL_CUTOVER_TENANTS
        (0, 10, 50, 100),  # RETRIEVAL_CUTOVER_PERCENT
        (LOW, MID, HIGH),
    )
)


NAMES = ("dual", "shadow", "target", "allow", "listed", "pct", "tenant")


def _build(
    *, dual: bool, shadow: bool, target: str | None, allow: str, listed: bool, pct: int, tenant: str
) -> Settings:
    env = {
        "FF_RETRIEVAL_DUAL_WRITE": "ON" if dual else "OFF",
        "FF_RETRIEVAL_SHADOW_READ": "ON" if shadow else "OFF",
        "RETRIEVAL_TENANT_ALLOWLIST": ALLOWLISTS[allow].format(tenant=tenant),
        "RETRIEVAL_CUTOVER_TENANTS": f"{tenant},zz" if listed else "zz",
        "RETRIEVAL_CUTOVER_PERCENT": str(pct),
    }
    if target:
        env["RETRIEVAL_TARGET_BACKEND"] = target
    return settings(**env)


@pytest.mark.parametrize(NAMES, COMBINATIONS)
def test_every_combination(
    *, dual: bool, shadow: bool, target: str | None, allow: str, listed: bool, pct: int, tenant: str
) -> None:
    s = _build(
        dual=dual, shadow=shadow, target=target, allow=allow, listed=listed, pct=pct, tenant=tenant
    )
    eligible = allow != "not containing"
    # The rules, said plainly:
    kept_in_step = target is not None and dual and eligible
    named = listed or tenant in SELECTED_AT[pct]
    expected_read = "target" if kept_in_step and named else "primary"
    other = "primary" if expected_read == "target" else "target"

    assert read_role(s, tenant) == expected_read
    assert write_plan(s, tenant) == WritePlan(expected_read, other if kept_in_step else None)
    assert fallback_role(s, tenant) == (other if kept_in_step else None)
    expected_shadow = other if (shadow and target is not None and eligible) else None
    assert shadow_role(s, tenant) == expected_shadow


@pytest.mark.parametrize(
    ("env", "tenant", "read", "plan", "shadow"),
    [
        # No target: everything on the primary, whatever the flags say.
        ({"FF_RETRIEVAL_DUAL_WRITE": "ON", "RETRIEVAL_CUTOVER_PERCENT": "100"}, "a",
         "primary", WritePlan("primary", None), None),
        # Shadow read only (runbook 000 step 1): reads primary, shadow on the target.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_SHADOW_READ": "ON"}, "a",
         "primary", WritePlan("primary", None), "target"),
        # Dual write for everyone, no cutover.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "ON"}, "a",
         "primary", WritePlan("primary", "target"), None),
        # A listed tenant during cutover: reads and sync writes on the target, primary deferred.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "ON",
          "FF_RETRIEVAL_SHADOW_READ": "ON", "RETRIEVAL_CUTOVER_TENANTS": "a"}, "a",
         "target", WritePlan("target", "primary"), "primary"),
        # Cutover list while dual write is OFF: ignored, reads stay on the primary.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "RETRIEVAL_CUTOVER_TENANTS": "a"}, "a",
         "primary", WritePlan("primary", None), None),
        # Listed but outside the allowlist: its writes never reach the target, so it stays.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "ON",
          "RETRIEVAL_TENANT_ALLOWLIST": "b", "RETRIEVAL_CUTOVER_TENANTS": "a"}, "a",
         "primary", WritePlan("primary", None), None),
        # 100 %: everyone eligible moves.
        ({"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "ON",
          "RETRIEVAL_CUTOVER_PERCENT": "100"}, "zzz",
         "target", WritePlan("target", "primary"), None),
        # Swapped (runbook 001): the new backend is primary, the old one kept in step.
        ({"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "faiss",
          "FF_RETRIEVAL_DUAL_WRITE": "ON", "FF_RETRIEVAL_SHADOW_READ": "ON"}, "a",
         "primary", WritePlan("primary", "target"), "target"),
    ],
)  # fmt: skip
def test_hand_written_rows(
    env: dict[str, str], tenant: str, read: str, plan: WritePlan, shadow: str | None
) -> None:
    s = settings(**env)
    assert read_role(s, tenant) == read
    assert write_plan(s, tenant) == plan
    assert shadow_role(s, tenant) == shadow


@pytest.mark.parametrize("combination", COMBINATIONS[::7])
def test_no_write_is_ever_lost(combination: tuple[object, ...]) -> None:
    """Whatever the flags, a tenant served by the target has the primary in step."""
    s = _build(**dict(zip(NAMES, combination, strict=True)))  # type: ignore[arg-type]
    tenant = str(combination[-1])
    plan = write_plan(s, tenant)
    assert plan.sync == read_role(s, tenant)
    assert plan.deferred != plan.sync
    if plan.sync == "target":
        assert plan.deferred == "primary"


# -- the plan: every answer at once --------------------------------------------------------------
def _agrees_with_the_rules(s: Settings, tenant: str) -> Plan:
    """``plan`` says, field by field, what each single-question function says."""
    p = plan(s, tenant)
    assert p.tenant == tenant
    assert p.read == read_role(s, tenant)
    assert p.read_kind == kind_of(s, p.read) == p.sync_kind == p.kind(p.read)
    assert p.other == ("target" if p.read == "primary" else "primary")
    assert p.other_kind == (kind_of(s, p.other) if s.target_backend is not None else None)
    assert p.in_step == in_step(s, tenant)
    assert p.write == write_plan(s, tenant)
    assert p.fallback == fallback_role(s, tenant)
    assert p.shadow == shadow_role(s, tenant)
    assert p.shadowed == (p.shadow is not None)
    assert p.fallback_kind == (kind_of(s, p.fallback) if p.fallback is not None else None)
    assert p.deferred_kind == p.fallback_kind
    assert p.shadow_kind == (kind_of(s, p.shadow) if p.shadow is not None else None)
    return p


@pytest.mark.parametrize(NAMES, COMBINATIONS)
def test_the_plan_agrees_with_every_rule_in_every_combination(
    *, dual: bool, shadow: bool, target: str | None, allow: str, listed: bool, pct: int, tenant: str
) -> None:
    s = _build(
        dual=dual, shadow=shadow, target=target, allow=allow, listed=listed, pct=pct, tenant=tenant
    )
    _agrees_with_the_rules(s, tenant)


ON = {"FF_RETRIEVAL_DUAL_WRITE": "ON", "FF_RETRIEVAL_SHADOW_READ": "ON"}


def test_the_plan_without_a_target_is_the_primary_alone() -> None:
    s = settings(**ON, RETRIEVAL_CUTOVER_PERCENT="100", RETRIEVAL_CUTOVER_TENANTS="a")
    p = _agrees_with_the_rules(s, "a")
    assert (p.read, p.read_kind, p.other_kind) == ("primary", s.backend, None)
    assert (p.shadowed, p.shadow, p.shadow_kind) == (False, None, None)
    assert (p.in_step, p.fallback, p.fallback_kind) == (False, None, None)
    assert p.write == WritePlan("primary", None) and p.deferred_kind is None
    with pytest.raises(ValueError, match="no target backend is configured for tenant 'a'"):
        p.kind("target")


def test_the_plan_of_a_tenant_outside_the_allowlist() -> None:
    s = settings(
        **ON,
        RETRIEVAL_TARGET_BACKEND="chroma",
        RETRIEVAL_TENANT_ALLOWLIST="b",
        RETRIEVAL_CUTOVER_TENANTS="a,b",
        RETRIEVAL_CUTOVER_PERCENT="100",
    )
    outside = _agrees_with_the_rules(s, "a")
    assert (outside.read, outside.in_step, outside.shadowed) == ("primary", False, False)
    assert outside.other_kind == "chroma" and outside.kind("target") == "chroma"
    assert (outside.fallback, outside.shadow) == (None, None)
    assert outside.write == WritePlan("primary", None)
    inside = _agrees_with_the_rules(s, "b")
    assert (inside.read, inside.read_kind, inside.in_step) == ("target", "chroma", True)
    assert (inside.fallback, inside.fallback_kind) == ("primary", s.backend)
    assert (inside.shadow, inside.shadow_kind) == ("primary", s.backend)


def test_the_plan_with_dual_write_off_ignores_the_cutover() -> None:
    s = settings(
        RETRIEVAL_TARGET_BACKEND="chroma",
        FF_RETRIEVAL_SHADOW_READ="ON",
        RETRIEVAL_CUTOVER_TENANTS="a",
        RETRIEVAL_CUTOVER_PERCENT="100",
    )
    p = _agrees_with_the_rules(s, "a")
    assert (p.read, p.in_step, p.fallback) == ("primary", False, None)
    assert p.write == WritePlan("primary", None)
    assert (p.shadow, p.shadow_kind) == ("target", "chroma")


def test_the_plan_at_one_hundred_percent_moves_every_eligible_tenant() -> None:
    s = settings(
        RETRIEVAL_BACKEND="faiss",
        RETRIEVAL_TARGET_BACKEND="chroma",
        FF_RETRIEVAL_DUAL_WRITE="ON",
        RETRIEVAL_CUTOVER_PERCENT="100",
    )
    for tenant in (LOW, MID, HIGH, "zzz"):
        p = _agrees_with_the_rules(s, tenant)
        assert (p.read, p.read_kind) == ("target", "chroma")
        assert (p.other, p.other_kind) == ("primary", "faiss")
        assert p.write == WritePlan("target", "primary") and p.deferred_kind == "faiss"
        assert (p.fallback, p.shadowed) == ("primary", False)


def test_kind_of_names_the_backend() -> None:
    s = settings(RETRIEVAL_BACKEND="chroma", RETRIEVAL_TARGET_BACKEND="faiss")
    assert (kind_of(s, "primary"), kind_of(s, "target")) == ("chroma", "faiss")


# -- percentage cutover over many tenants ------------------------------------------------------
TENANTS = [f"tenant-{i:05d}" for i in range(10_000)]


def _served_by_target(percent: float) -> set[str]:
    s = settings(
        RETRIEVAL_TARGET_BACKEND="chroma",
        FF_RETRIEVAL_DUAL_WRITE="ON",
        RETRIEVAL_CUTOVER_PERCENT=str(percent),
    )
    return {t for t in TENANTS if read_role(s, t) == "target"}


def test_percentages_select_their_share_and_only_grow() -> None:
    chosen = {p: _served_by_target(p) for p in (10, 50, 100)}
    for percent, tenants in chosen.items():
        share = 100 * len(tenants) / len(TENANTS)
        assert abs(share - percent) <= 1.5, (percent, share)
    assert chosen[10] <= chosen[50] <= chosen[100]
    assert len(chosen[100]) == len(TENANTS)
    assert not _served_by_target(0)


def test_one_percent_cuts_over_about_one_tenant_in_a_hundred() -> None:
    chosen = _served_by_target(1)
    # the v1 hash over these 10,000 tenants puts 107 buckets below 1 (a binomial count:
    # 100 expected, standard deviation about 10)
    assert len(chosen) == 107
    assert chosen <= _served_by_target(10)
    # the two tenants nearest the boundary, on each side of it
    assert cutover_bucket("tenant-01896") == pytest.approx(0.996869839022615, abs=1e-12)
    assert cutover_bucket("tenant-02178") == pytest.approx(1.0266648952776236, abs=1e-12)
    assert "tenant-01896" in chosen and "tenant-02178" not in chosen


@pytest.mark.parametrize(
    ("bucket", "selected"),
    [(0.0, True), (0.5, True), (math.nextafter(1.0, 0.0), True), (1.0, False), (1.5, False)],
)
def test_at_one_percent_bucket_0_is_in_and_bucket_1_is_out(
    monkeypatch: pytest.MonkeyPatch, bucket: float, selected: bool
) -> None:
    # a bucket in [0, 1) is selected at 1 %; exactly 1 is not (selection is bucket < p)
    monkeypatch.setattr(policy, "cutover_bucket", lambda _tenant: bucket)
    assert in_percent("tenant", 1.0) is selected
    s = settings(
        RETRIEVAL_TARGET_BACKEND="chroma",
        FF_RETRIEVAL_DUAL_WRITE="ON",
        RETRIEVAL_CUTOVER_PERCENT="1",
    )
    assert read_role(s, "tenant") == ("target" if selected else "primary")
    assert in_percent("tenant", 0.0) is False  # 0 % selects no one, not even bucket 0


@given(
    tenant=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    low=st.floats(0, 100),
    high=st.floats(0, 100),
)
def test_raising_the_percentage_never_moves_a_tenant_back(
    tenant: str, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    if in_percent(tenant, low):
        assert in_percent(tenant, high)
    assert 0.0 <= cutover_bucket(tenant) <= 100.0
    assert in_percent(tenant, 100.0)


# -- the write plan's fingerprint (issue 15) ---------------------------------------------------
def test_the_write_plan_fingerprint_is_stable_and_reads_only_what_decides_writes() -> None:
    base = {"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "on"}
    s = settings(**base)
    assert write_plan_variables(s) == {
        "RETRIEVAL_BACKEND": "faiss",
        "RETRIEVAL_TARGET_BACKEND": "chroma",
        "FF_RETRIEVAL_DUAL_WRITE": "ON",
        "RETRIEVAL_TENANT_ALLOWLIST": "",
        "RETRIEVAL_CUTOVER_TENANTS": "",
        "RETRIEVAL_CUTOVER_PERCENT": "0",
    }
    assert tuple(write_plan_variables(s)) == WRITE_PLAN_VARIABLES
    fingerprint = write_plan_fingerprint(s)
    assert len(fingerprint) == 12 and int(fingerprint, 16) >= 0
    # the same plan spelled otherwise: same fingerprint
    same = settings(**(base | {"FF_RETRIEVAL_DUAL_WRITE": "yes"}), RETRIEVAL_CUTOVER_PERCENT="0.0")
    assert write_plan_fingerprint(same) == fingerprint
    assert write_plan_fingerprint(settings(**base, RETRIEVAL_TENANT_ALLOWLIST="b, a")) == (
        write_plan_fingerprint(settings(**base, RETRIEVAL_TENANT_ALLOWLIST="a,b"))
    )
    # what decides no write: no change
    for name, value in (("FF_RETRIEVAL_SHADOW_READ", "ON"), ("METRIC_ENV", "prod")):
        assert write_plan_fingerprint(settings(**base, **{name: value})) == fingerprint
    # every variable that decides writes: a change
    changed = {
        "RETRIEVAL_BACKEND": "memory",
        "RETRIEVAL_TARGET_BACKEND": "qdrant",
        "FF_RETRIEVAL_DUAL_WRITE": "OFF",
        "RETRIEVAL_TENANT_ALLOWLIST": "acme",
        "RETRIEVAL_CUTOVER_TENANTS": "acme",
        "RETRIEVAL_CUTOVER_PERCENT": "10",
    }
    assert set(changed) == set(WRITE_PLAN_VARIABLES)
    for name, value in changed.items():
        assert write_plan_fingerprint(settings(**(base | {name: value}))) != fingerprint, name
