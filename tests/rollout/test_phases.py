"""Phases: named from the flags, the ladder of advance/back, and the transition table — every
(from, to) pair under every reconcile outcome, with the checks that refuse it."""

from __future__ import annotations

import pytest

from shadowswap.errors import InvalidInput
from shadowswap.rollout.phases import (
    Goal,
    next_goal,
    next_step,
    previous_goal,
    set_goal,
    transition,
)
from shadowswap.settings.config import Settings, load_settings
from shadowswap.settings.phase import PHASES, classify
from shadowswap.sync.freshness import Freshness


def said(total: int | None, detail: str, fresh: bool = True) -> Freshness:
    """What the last reconcile says: fresh with ``total`` (None: there is none, ``detail``
    saying why), or stale (``fresh=False``) with ``detail`` as the reason."""
    if total is None or not fresh:
        return Freshness(False, None, total, (detail,))
    return Freshness(True, 0.0, total)


BASE = {"RETRIEVAL_BACKEND": "faiss", "RETRIEVAL_TARGET_BACKEND": "chroma"}
ON, OFF = "ON", "OFF"

# The canonical flags of each phase (what `phase set` writes), as an env would hold them.
CANONICAL: dict[str, dict[str, str]] = {
    "legacy": BASE | {"FF_RETRIEVAL_DUAL_WRITE": OFF, "FF_RETRIEVAL_SHADOW_READ": OFF},
    "dual_write": BASE | {"FF_RETRIEVAL_DUAL_WRITE": ON, "FF_RETRIEVAL_SHADOW_READ": OFF},
    "shadow_read": BASE | {"FF_RETRIEVAL_DUAL_WRITE": ON, "FF_RETRIEVAL_SHADOW_READ": ON},
    "cutover": BASE
    | {"FF_RETRIEVAL_DUAL_WRITE": ON, "FF_RETRIEVAL_SHADOW_READ": ON}
    | {"RETRIEVAL_CUTOVER_PERCENT": "10"},
    "swapped": {"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "faiss"}
    | {"FF_RETRIEVAL_DUAL_WRITE": ON, "FF_RETRIEVAL_SHADOW_READ": ON},
    "done": {"RETRIEVAL_BACKEND": "chroma"},
}


def settings(env: dict[str, str]) -> Settings:
    return load_settings(environ=env)


@pytest.mark.parametrize("name", PHASES)
def test_canonical_flags_name_their_phase(name: str) -> None:
    assert classify(settings(CANONICAL[name])).name == name


@pytest.mark.parametrize(
    ("env", "name", "why"),
    [
        ({}, "legacy", ""),
        ({"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_LEGACY_BACKEND": "chroma"}, "legacy", ""),
        ({"FF_RETRIEVAL_DUAL_WRITE": ON}, "custom", "no RETRIEVAL_TARGET_BACKEND"),
        ({"RETRIEVAL_CUTOVER_PERCENT": "10"}, "custom", "no RETRIEVAL_TARGET_BACKEND"),
        (BASE | {"FF_RETRIEVAL_SHADOW_READ": ON}, "shadow_read", ""),
        (BASE | {"RETRIEVAL_CUTOVER_TENANTS": "a"}, "custom", "FF_RETRIEVAL_DUAL_WRITE is OFF"),
        (
            {"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "faiss"},
            "custom",
            "not kept in step",
        ),
        (
            CANONICAL["swapped"] | {"RETRIEVAL_CUTOVER_PERCENT": "50"},
            "custom",
            "read from faiss",
        ),
        (
            {"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "memory"},
            "custom",
            "RETRIEVAL_LEGACY_BACKEND",
        ),
    ],
)
def test_flags_that_form_no_phase_say_why(env: dict[str, str], name: str, why: str) -> None:
    phase = classify(settings(env))
    assert phase.name == name
    assert why in phase.reason
    assert next_step(phase)


def test_cutover_carries_its_percentage_tenants_and_allowlist_note() -> None:
    env = CANONICAL["cutover"] | {
        "RETRIEVAL_CUTOVER_TENANTS": "internal",
        "RETRIEVAL_TENANT_ALLOWLIST": "internal,a",
    }
    phase = classify(settings(env))
    assert (phase.percent, phase.tenants, phase.label) == (
        10.0,
        ("internal",),
        "cutover 10% + tenants internal",
    )
    assert any("limits dual write and cutover to 2 tenant" in n for n in phase.notes)
    shadow_only = classify(settings(BASE | {"FF_RETRIEVAL_SHADOW_READ": ON}))
    assert any("dual write must be ON" in n for n in shadow_only.notes)


def test_back_walks_the_ladder_down_from_swapped() -> None:
    with pytest.raises(InvalidInput, match="done"):
        next_goal(classify(settings(CANONICAL["done"])))
    with pytest.raises(InvalidInput, match="already at legacy"):
        previous_goal(classify(settings(CANONICAL["legacy"])))
    downs = []
    env = dict(CANONICAL["swapped"])
    while classify(settings(env)).name != "legacy":
        phase = classify(settings(env))
        move = transition(phase, previous_goal(phase), said(None, "unknown"))
        assert move.allowed, move.refusals
        env = _applied(env, move.values)
        downs.append(classify(settings(env)).label)
    assert downs == [
        "cutover 100%",
        "cutover 50%",
        "cutover 10%",
        "shadow_read",
        "dual_write",
        "legacy",
    ]


def _applied(env: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    return {**env, **values}


def test_the_full_forward_ladder() -> None:
    env = dict(CANONICAL["legacy"])
    seen = []
    while True:
        phase = classify(settings(env))
        seen.append(phase.label)
        if phase.name == "done":
            break
        move = transition(phase, next_goal(phase), said(0, "clean"))
        assert move.allowed, move.refusals
        env = _applied(env, move.values)
    assert seen == [
        "legacy",
        "dual_write",
        "shadow_read",
        "cutover 10%",
        "cutover 50%",
        "cutover 100%",
        "swapped",
        "done",
    ]
    assert settings(env).target_backend is None and settings(env).backend == "chroma"


def test_internal_tenant_first_then_percentages() -> None:
    phase = classify(settings(CANONICAL["shadow_read"]))
    goal = next_goal(phase, tenants=("internal",))
    assert goal == Goal("cutover", 0.0, ("internal",))
    env = _applied(CANONICAL["shadow_read"], transition(phase, goal, said(0, "")).values)
    after = classify(settings(env))
    assert after.label == "cutover tenants internal"
    assert next_goal(after) == Goal("cutover", 10.0, ("internal",))
    assert previous_goal(after) == Goal("shadow_read")


def test_legacy_without_target_needs_one() -> None:
    phase = classify(settings({}))
    with pytest.raises(InvalidInput, match="--target"):
        transition(phase, next_goal(phase), said(0, ""))
    move = transition(phase, next_goal(phase), said(0, ""), new="chroma")
    assert move.changes == {"RETRIEVAL_TARGET_BACKEND": "chroma", "FF_RETRIEVAL_DUAL_WRITE": "ON"}
    with pytest.raises(InvalidInput, match="legacy backend"):
        transition(phase, next_goal(phase), said(0, ""), new="faiss")


def test_set_goal_checks_its_options() -> None:
    assert set_goal("cutover", 50.0) == Goal("cutover", 50.0)
    for args, why in [
        (("nope", None, None), "not a phase"),
        (("swapped", 10.0, None), "only apply"),
        (("cutover", None, None), "needs one"),
        (("cutover", 150.0, None), "0 to 100"),
        (("cutover", 0.0, ()), "is shadow_read"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            set_goal(*args)  # type: ignore[arg-type]


# -- the transition table ------------------------------------------------------------------
GOALS = {
    "legacy": Goal("legacy"),
    "dual_write": Goal("dual_write"),
    "shadow_read": Goal("shadow_read"),
    "cutover": Goal("cutover", 50.0),
    "swapped": Goal("swapped"),
    "done": Goal("done"),
}
DRIFTS = {
    "clean": said(0, "drift 0"),
    "drift": said(7, "drift 7"),
    "unknown": said(None, "no reconcile result"),
    "stale": said(0, "the write plan changed after the last reconcile", fresh=False),
}

# Rules: S = skips a phase, R = reads move to a backend not kept in step, C = cutover below
# 100% before a swap, D = new primary without a clean reconcile. "" = allowed.
# Rows: from (canonical flags, plus cutover at 100%). Columns: to, in PHASES order.
# "+D" marks the rule that applies unless the reconcile is clean. Custom flags have no place
# on the ladder, so S never applies to them.
TABLE = {
    "legacy":      ["", "", "S", "SR", "SR+D", "SR+D"],
    "dual_write":  ["", "", "", "S", "S+D", "S+D"],
    "shadow_read": ["", "", "", "", "S+D", "S+D"],
    "cutover":     ["", "", "", "", "C+D", "S+D"],
    "cutover100":  ["", "", "", "", "+D", "S+D"],
    "swapped":     ["", "", "", "", "", ""],
    "done":        ["R", "R", "R", "R", "", ""],
    "custom-swap-dual-off": ["R", "R", "R", "R", "", ""],
    "custom-cut-dual-off":  ["", "", "", "R", "R+D", "R+D"],
}  # fmt: skip
FROM_ENV = {name: CANONICAL[name] for name in PHASES} | {
    "cutover100": CANONICAL["cutover"] | {"RETRIEVAL_CUTOVER_PERCENT": "100"},
    "custom-swap-dual-off": {"RETRIEVAL_BACKEND": "chroma", "RETRIEVAL_TARGET_BACKEND": "faiss"},
    "custom-cut-dual-off": BASE | {"RETRIEVAL_CUTOVER_TENANTS": "a"},
}


def _expected(cell: str, drift: str) -> set[str]:
    """``"SR+D"`` -> {S, R} plus D unless the reconcile is clean."""
    rules, _, conditional = cell.partition("+")
    out = set(rules)
    if conditional == "D" and drift != "clean":
        out.add("D")
    return out


def _rules(refusals: tuple[str, ...]) -> set[str]:
    found = set()
    for text in refusals:
        found |= {
            rule
            for rule, word in (
                ("S", "skips"),
                ("R", "not kept in step"),
                ("C", "100% before the swap"),
                ("D", "reconcile with drift 0"),
            )
            if word in text
        }
    return found


@pytest.mark.parametrize("drift", DRIFTS)
@pytest.mark.parametrize("goal", GOALS)
@pytest.mark.parametrize("source", TABLE)
def test_transition_table(source: str, goal: str, drift: str) -> None:
    phase = classify(settings(FROM_ENV[source]))
    move = transition(phase, GOALS[goal], DRIFTS[drift])
    cell = TABLE[source][PHASES.index(goal)]
    expected = _expected(cell, drift)
    assert _rules(move.refusals) == expected, (source, goal, drift, move.refusals)
    assert len(move.refusals) == len(expected)
    assert move.allowed == (not expected)


def test_every_phase_and_goal_is_in_the_table() -> None:
    assert set(PHASES) <= set(TABLE)
    assert all(len(row) == len(PHASES) for row in TABLE.values())
    assert set(GOALS) == set(PHASES)


def test_cutover_tenants_outside_the_allowlist_are_refused() -> None:
    env = CANONICAL["shadow_read"] | {"RETRIEVAL_TENANT_ALLOWLIST": "a,b"}
    phase = classify(settings(env))
    move = transition(phase, Goal("cutover", 0.0, ("a", "zed")), said(0, ""))
    assert move.refusals == (
        "cutover tenants zed are not in RETRIEVAL_TENANT_ALLOWLIST: their writes do not reach "
        "the target, so their reads would not move",
    )


def test_values_and_changes_of_a_move() -> None:
    phase = classify(settings(CANONICAL["cutover"] | {"RETRIEVAL_CUTOVER_PERCENT": "100"}))
    move = transition(phase, Goal("swapped"), said(0, ""))
    assert move.changes == {
        "RETRIEVAL_BACKEND": "chroma",
        "RETRIEVAL_TARGET_BACKEND": "faiss",
        "RETRIEVAL_CUTOVER_PERCENT": "0",
    }
    done = transition(classify(settings(CANONICAL["swapped"])), Goal("done"), said(None, ""))
    assert done.changes == {
        "RETRIEVAL_TARGET_BACKEND": "",
        "FF_RETRIEVAL_DUAL_WRITE": "OFF",
        "FF_RETRIEVAL_SHADOW_READ": "OFF",
    }
