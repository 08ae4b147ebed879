"""Fold path events: session publications, and each learner's enrollment, attempts and
corrections (through the same `fold` the rules define, so any order gives the same state)."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import LearnerKey, UnitOfWork
from service.app.records import Received, version_of
from service.domain import events as ev
from service.domain.paths import Attempt, Correction, LearnerState, fold, merge_correction
from service.domain.versions import newest, replacing

LEARNER_EVENTS = (ev.PathEnrolled, ev.PathUnenrolled, ev.StepAttempted, ev.StepCorrected)


def fold_path_sessions(uow: UnitOfWork, items: Sequence[Received]) -> None:
    """Replace each session by its newest publication (by occurred_at, then event_id)."""
    candidates = newest(
        ((i.event.meta.tenant_id, p.session_id), version_of(i), p)
        for i in items
        if isinstance(p := i.event.payload, ev.PathSessionPublished)
    )
    stored = uow.paths.session_versions(candidates)
    uow.paths.replace_sessions(
        [
            (tenant, session, version)
            for (tenant, _), version, session in replacing(candidates, stored)
        ]
    )


def fold_learners(uow: UnitOfWork, items: Sequence[Received]) -> None:
    enrollment_keys: set[LearnerKey] = set()
    correction_keys: set[tuple[str, str, str, str]] = set()
    for item in items:
        payload = item.event.payload
        assert isinstance(payload, LEARNER_EVENTS)
        key = (item.event.meta.tenant_id, payload.session_id, payload.user_id)
        if isinstance(payload, ev.PathEnrolled | ev.PathUnenrolled):
            enrollment_keys.add(key)
        elif isinstance(payload, ev.StepCorrected):
            correction_keys.add((*key, payload.attempt_id))
    enrollments = {
        key: LearnerState(enrolled, unenrolled)
        for key, (enrolled, unenrolled) in uow.paths.enrollments(enrollment_keys).items()
    }
    corrections = uow.paths.corrections(correction_keys)
    attempts: list[tuple[LearnerKey, Attempt]] = []
    for item in items:
        payload = item.event.payload
        assert isinstance(payload, LEARNER_EVENTS)
        key = (item.event.meta.tenant_id, payload.session_id, payload.user_id)
        if isinstance(payload, ev.PathEnrolled | ev.PathUnenrolled):
            enrollments[key] = fold(enrollments.get(key, LearnerState()), payload)
        elif isinstance(payload, ev.StepAttempted):
            attempts.append((key, Attempt.from_event(payload)))
        else:
            _merge(corrections, key, payload)
    uow.paths.put_enrollments({k: (s.enrolled_at, s.unenrolled_at) for k, s in enrollments.items()})
    uow.paths.add_attempts(attempts)
    uow.paths.put_corrections([((t, s, u), c) for (t, s, u, _), c in sorted(corrections.items())])


def _merge(
    corrections: dict[tuple[str, str, str, str], Correction],
    key: LearnerKey,
    event: ev.StepCorrected,
) -> None:
    correction_key = (*key, event.attempt_id)
    new = Correction(event.step_id, event.attempt_id, event.score, event.corrected_at)
    current = corrections.get(correction_key)
    merged = merge_correction((current,) if current else (), new)
    corrections[correction_key] = merged[0]
