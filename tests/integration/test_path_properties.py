"""A learner's stats do not depend on the order their events arrive in, and their score is the
exact mean of the best scores, rounded once (in fractions: `tests.reference`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import queries
from service.domain import events as ev
from service.domain.errors import NotFound
from service.domain.paths import LearnerState, fold, stats
from tests import profiles
from tests.builders import apply, arrival_batches, memory_storage, path_event, read
from tests.reference import path_score

NOW = datetime(2026, 11, 20, tzinfo=UTC)
TIMES = st.integers(-200, 0).map(lambda h: NOW + timedelta(hours=h))
SCORES = st.one_of(
    st.integers(0, 100).map(float),
    st.floats(0, 100),  # up to 17 significant digits
    st.sampled_from([60.3, 68.1, 5e-324, 100.0]),
)
STEPS = (
    ev.Step("s1", min_score=60, max_attempts=2),
    ev.Step("s2", requires_correction=True, due_after_enrollment=timedelta(hours=50)),
    ev.Step("s3", mandatory=False, mandatory_replay=True, time_limit=timedelta(hours=2)),
)
SESSION = ev.PathSessionPublished("p1", "path", "Path", NOW - timedelta(days=20), NOW, STEPS)


@st.composite
def learner_events(draw: st.DrawFn) -> list[ev.Payload]:
    events: list[ev.Payload] = []
    for _ in range(draw(st.integers(0, 2))):
        events.append(ev.PathEnrolled("p1", "u1", draw(TIMES)))
    for _ in range(draw(st.integers(0, 1))):
        events.append(ev.PathUnenrolled("p1", "u1", draw(TIMES)))
    for n in range(draw(st.integers(0, 5))):
        ended = draw(TIMES)
        step_id = draw(st.sampled_from(["s1", "s2", "s3"]))
        started = ended - timedelta(hours=draw(st.integers(0, 3)))
        score = draw(st.none() | SCORES)
        attempt = ev.StepAttempted(
            "p1",
            "u1",
            step_id,
            f"a{n}",
            started,
            ended,
            draw(st.integers(0, 10_000)),
            score,
            draw(st.booleans()),
        )
        events.append(attempt)
        if draw(st.booleans()):
            events.append(attempt)  # a redelivery
        if step_id == "s2" and draw(st.booleans()):
            events.append(ev.StepCorrected("p1", "u1", "s2", f"a{n}", draw(SCORES), draw(TIMES)))
    return events


@settings(
    max_examples=profiles.examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(events=learner_events(), data=st.data())
def test_the_stats_are_the_same_for_every_arrival_order(
    events: list[ev.Payload], data: st.DataObject
) -> None:
    batches = arrival_batches(data, events)
    with memory_storage() as storage:
        for batch in batches:
            apply(storage, *(path_event(p) for p in batch))
        apply(storage, path_event(SESSION))
        folded = reduce(fold, events, LearnerState())  # type: ignore[arg-type]
        with read(storage) as c:
            if folded.enrolled_at is None and folded.unenrolled_at is None:
                # Attempts alone enroll nobody: the learner is unknown to the platform.
                with pytest.raises(NotFound, match="User 'u1' not found"):
                    queries.path_session_stats(c, "acme", "p1", "u1", NOW)
                return
            answer = queries.path_session_stats(c, "acme", "p1", "u1", NOW)
    assert answer == stats(SESSION, folded, NOW)
    assert answer.score == path_score(_best_scores(events))


def _best_scores(events: list[ev.Payload]) -> list[float]:
    """Each step's best graded score: an attempt's correction's (the latest, then the
    highest), else its own unless the step requires a correction; of an unenrolled learner,
    only attempts ended and corrections made by the unenrolment."""
    enrolled = max((e.enrolled_at for e in events if isinstance(e, ev.PathEnrolled)), default=None)
    unenrolled = max(
        (e.unenrolled_at for e in events if isinstance(e, ev.PathUnenrolled)), default=None
    )
    archive = unenrolled if unenrolled and not (enrolled and enrolled > unenrolled) else None
    attempts: dict[str, ev.StepAttempted] = {}
    corrections: dict[str, tuple[datetime, float]] = {}
    for e in events:
        if isinstance(e, ev.StepAttempted):
            attempts.setdefault(e.attempt_id, e)
        elif isinstance(e, ev.StepCorrected) and (archive is None or e.corrected_at <= archive):
            seen = (e.corrected_at, e.score)
            corrections[e.attempt_id] = max(corrections.get(e.attempt_id, seen), seen)
    best: dict[str, float] = {}
    for a in attempts.values():
        step = next(s for s in STEPS if s.step_id == a.step_id)
        if archive is not None and a.ended_at > archive:
            continue
        if a.attempt_id in corrections:
            score: float | None = corrections[a.attempt_id][1]
        else:
            score = None if step.requires_correction else a.score
        if score is not None:
            best[a.step_id] = max(best.get(a.step_id, score), score)
    return list(best.values())
