"""GetPathSessionStats through the ingest and query use cases, on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.app import queries
from service.domain import events as ev
from service.domain.errors import NotFound
from service.domain.paths import DetailedStatusType, PathStatus
from tests.builders import apply, path_event, read, user
from tests.fakes import FakePorts

NOW = datetime(2026, 11, 20, tzinfo=UTC)
SESSION = ev.PathSessionPublished(
    "p1",
    "path",
    "Safety basics",
    NOW - timedelta(days=5),
    NOW + timedelta(days=5),
    (ev.Step("s1"), ev.Step("s2", requires_correction=True)),
)


def stats(ports: FakePorts, who: str = "ann", session: str = "p1", tenant: str = "acme"):  # type: ignore[no-untyped-def]
    with read(ports) as reading:
        return queries.path_session_stats(reading, tenant, session, who, NOW)


def reason(ports: FakePorts, who: str, session: str = "p1", tenant: str = "acme") -> str:
    with pytest.raises(NotFound) as missing:
        stats(ports, who, session, tenant)
    return missing.value.reason


def test_a_learners_stats_follow_their_attempts_and_corrections(ports: FakePorts) -> None:
    attempt = ev.StepAttempted(
        "p1", "ann", "s2", "a2", NOW - timedelta(hours=3), NOW - timedelta(hours=2), 120_000
    )
    apply(
        ports,
        user("ann", email="Ann.Lee@Example.com"),
        path_event(SESSION),
        path_event(attempt),  # before the enrollment: order does not matter
        path_event(ev.PathEnrolled("p1", "ann", NOW - timedelta(days=1))),
        path_event(
            ev.StepAttempted(
                "p1",
                "ann",
                "s1",
                "a1",
                NOW - timedelta(hours=5),
                NOW - timedelta(hours=4),
                60_000,
                80.0,
            )
        ),
    )
    waiting = stats(ports)
    assert (waiting.progress, waiting.global_time_ms, waiting.status) == (
        50,
        180_000,
        PathStatus.AWAITING_CORRECTION,
    )
    apply(
        ports,
        path_event(ev.StepCorrected("p1", "ann", "s2", "a2", 90.0, NOW - timedelta(hours=1))),
    )
    done = stats(ports, "ann.lee@example.COM")
    assert (done.progress, done.score, done.status, done.detailed_type) == (
        100,
        85,
        PathStatus.COMPLETED,
        DetailedStatusType.SUCCESSFUL,
    )
    assert done.completed_at == NOW - timedelta(hours=1)


def test_not_found_reasons_come_session_first_then_user_then_enrolment(ports: FakePorts) -> None:
    apply(
        ports,
        user("ann"),
        user("bob"),
        path_event(SESSION),
        path_event(ev.PathEnrolled("p1", "ann", NOW)),
        path_event(SESSION, tenant="other"),
        user("zed", tenant="other"),
    )
    assert reason(ports, "nobody", session="nope") == "path_session_not_found"
    assert reason(ports, "nobody") == "user_not_found"
    assert reason(ports, "bob") == "user_not_enrolled"
    assert reason(ports, "zed") == "user_not_found"
    assert reason(ports, "ann", tenant="other") == "user_not_found"
    assert stats(ports).detailed_type is DetailedStatusType.NOT_YET_STARTED


def test_unenrolling_archives_the_stats(ports: FakePorts) -> None:
    left = NOW - timedelta(hours=6)
    apply(
        ports,
        user("ann"),
        path_event(SESSION),
        path_event(ev.PathEnrolled("p1", "ann", NOW - timedelta(days=2))),
        path_event(ev.PathUnenrolled("p1", "ann", left)),
        path_event(
            ev.StepAttempted(
                "p1",
                "ann",
                "s1",
                "a1",
                NOW - timedelta(hours=2),
                NOW - timedelta(hours=1),
                1000,
                99.0,
            )
        ),
    )
    archived = stats(ports)
    assert (archived.archived_at, archived.progress) == (left, 0)
    apply(ports, path_event(ev.PathEnrolled("p1", "ann", NOW - timedelta(minutes=30))))
    again = stats(ports)
    assert (again.archived_at, again.progress) == (None, 50)
