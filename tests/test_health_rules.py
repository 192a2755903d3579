"""The health rules and their precedence (conntel/health.py `decide`), one case per line of the README's table."""

from __future__ import annotations

import pytest

from conntel.health import HealthFacts, HealthState, Report, decide

NOW = 1_700_000_000
FACTS = HealthFacts(None, None, None, None, None, None, NOW - 5, NOW - 3600)
HEALTHY = HealthState("healthy", NOW - 100, "reporting")


def facts(**changes: object) -> HealthFacts:
    return FACTS._replace(**changes)


@pytest.mark.parametrize(
    ("given", "silent_since", "expected"),
    [
        # 1. an outcome failure outranks everything, silence included
        (facts(outcome_t=10, outcome_n=2, outcome_k="FinishUpgradeFailure", tunnel_t=20, tunnel_down="a",
               operation_overdue="op"), NOW - 1, ("failing", "FinishUpgradeFailure", 10, 2, None, None, None)),
        # 2. then a tunnel down in the newest snapshot, silence included
        (facts(outcome_k="FinishUpgradeSuccess", tunnel_t=20, tunnel_down="a", operation_overdue="op"), NOW - 1,
         ("failing", "tunnel_down", None, None, 20, "a", None)),
        # 3. then silence, which explains an operation pending
        (facts(operation_overdue="op"), NOW - 1, ("silent", "no_heartbeat", None, None, None, None, None)),
        (facts(last_heartbeat=None), NOW - 1, ("silent", "never_reported", None, None, None, None, None)),
        # 4. then an operation pending too long
        (facts(operation_overdue="op"), None, ("failing", "operation_pending", None, None, None, None, "op")),
        # 5. else healthy, as it was
        (facts(outcome_k="FinishUpgradeSuccess", tunnel_t=20), None, ("healthy", "reporting", None, None, None,
                                                                      None, None)),
    ],
)  # fmt: skip
def test_precedence(given: HealthFacts, silent_since: int | None, expected: tuple):
    decided = decide(HEALTHY, given, NOW, silent_since, Report())
    assert (decided.health, decided.reason, *decided[3:]) == expected


def test_what_cleared_a_failure_is_the_healthy_reason_and_since_moves_only_with_the_health():
    by_outcome = HealthState("failing", NOW - 50, "FinishUpgradeFailure", 10, 0)
    success = facts(outcome_t=11, outcome_n=0, outcome_k="FinishUpgradeSuccess")
    assert decide(by_outcome, success, NOW, None, Report()) == HealthState("healthy", NOW, "FinishUpgradeSuccess",
                                                                           11, 0)  # fmt: skip
    by_tunnel = HealthState("failing", NOW - 50, "tunnel_down", snapshot_t=20, tunnel_id="a")
    assert decide(by_tunnel, facts(tunnel_t=30), NOW, None, Report()) == HealthState(
        "healthy", NOW, "tunnels_up", snapshot_t=30)  # fmt: skip
    by_operation = HealthState("failing", NOW - 50, "operation_pending", operation_id="op")
    assert decide(by_operation, FACTS, NOW, None, Report()) == HealthState(
        "healthy", NOW, "operation_done", operation_id="op")  # fmt: skip
    # Still failing for the next reason that holds: the reason changes, since when it fails does not.
    assert decide(by_outcome, success._replace(tunnel_t=20, tunnel_down="b"), NOW, None, Report()) == HealthState(
        "failing", NOW - 50, "tunnel_down", snapshot_t=20, tunnel_id="b")  # fmt: skip
    # Silent, then reporting again: with what it reported.
    silent = HealthState("silent", NOW - 50, "no_heartbeat")
    assert decide(silent, FACTS, NOW, None, Report(snapshot_t=40)) == HealthState(
        "healthy", NOW, "reporting", snapshot_t=40)  # fmt: skip
    # Nothing changes: the very same state (the store writes nothing).
    assert decide(HEALTHY, FACTS, NOW, None, Report(1, 2)) is HEALTHY
    assert decide(silent, FACTS, NOW, NOW - 1, Report()) is silent
