"""Path sessions and each learner's facts: enrollment times, attempts, corrections."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from service.adapters.sql import key_lookups, upsert
from service.adapters.tables import (
    from_micros,
    path_learners,
    path_sessions,
    step_attempts,
    step_corrections,
    to_micros,
)
from service.app.ports import CorrectionKey, LearnerKey, SessionKey
from service.domain.events import PathSessionPublished, Step
from service.domain.paths import Attempt, Correction
from service.domain.versions import Version


def steps_to_json(steps: Sequence[Step]) -> str:
    def micros(moment: datetime | None) -> int | None:
        return None if moment is None else to_micros(moment)

    def span(duration: timedelta | None) -> int | None:
        return None if duration is None else duration // timedelta(microseconds=1)

    return json.dumps(
        [
            {
                "step_id": s.step_id,
                "mandatory": s.mandatory,
                "due_at": micros(s.due_at),
                "due_after_enrollment": span(s.due_after_enrollment),
                "min_score": s.min_score,
                "max_attempts": s.max_attempts,
                "time_limit": span(s.time_limit),
                "requires_correction": s.requires_correction,
                "mandatory_replay": s.mandatory_replay,
            }
            for s in steps
        ]
    )


def steps_from_json(raw: str) -> tuple[Step, ...]:
    def moment(value: int | None) -> datetime | None:
        return None if value is None else from_micros(value)

    def span(value: int | None) -> timedelta | None:
        return None if value is None else timedelta(microseconds=value)

    return tuple(
        Step(
            step_id=s["step_id"],
            mandatory=s["mandatory"],
            due_at=moment(s["due_at"]),
            due_after_enrollment=span(s["due_after_enrollment"]),
            min_score=s["min_score"],
            max_attempts=s["max_attempts"],
            time_limit=span(s["time_limit"]),
            requires_correction=s["requires_correction"],
            mandatory_replay=s["mandatory_replay"],
        )
        for s in json.loads(raw)
    )


def session_from_row(row: Any) -> PathSessionPublished:
    return PathSessionPublished(
        row.session_id,
        row.path_id,
        row.name,
        row.starts_at,
        row.ends_at,
        steps_from_json(row.steps),
    )


class SqlPathStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def session_versions(self, keys: Iterable[SessionKey]) -> dict[SessionKey, Version]:
        found: dict[SessionKey, Version] = {}
        columns = (path_sessions.c.tenant_id, path_sessions.c.session_id)
        for condition in key_lookups(columns, keys):
            rows = self._c.execute(
                select(*columns, path_sessions.c.version_at, path_sessions.c.version_event).where(
                    condition
                )
            )
            found.update({(t, s): Version(at, e) for t, s, at, e in rows})
        return found

    def replace_sessions(
        self, sessions: Sequence[tuple[str, PathSessionPublished, Version]]
    ) -> None:
        rows = [
            {
                "tenant_id": tenant,
                "session_id": s.session_id,
                "path_id": s.path_id,
                "name": s.name,
                "starts_at": s.starts_at,
                "ends_at": s.ends_at,
                "steps": steps_to_json(s.steps),
                "version_at": v.at,
                "version_event": v.event_id,
            }
            for tenant, s, v in sessions
        ]
        values = [c.name for c in path_sessions.c if not c.primary_key]
        upsert(self._c, path_sessions, rows, keys=["tenant_id", "session_id"], replace=values)

    def enrollments(
        self, keys: Iterable[LearnerKey]
    ) -> dict[LearnerKey, tuple[datetime | None, datetime | None]]:
        found: dict[LearnerKey, tuple[datetime | None, datetime | None]] = {}
        columns = (path_learners.c.tenant_id, path_learners.c.session_id, path_learners.c.user_id)
        for condition in key_lookups(columns, keys):
            rows = self._c.execute(
                select(*columns, path_learners.c.enrolled_at, path_learners.c.unenrolled_at).where(
                    condition
                )
            )
            found.update({(t, s, u): (e, x) for t, s, u, e, x in rows})
        return found

    def put_enrollments(
        self, learners: Mapping[LearnerKey, tuple[datetime | None, datetime | None]]
    ) -> None:
        rows = [
            {"tenant_id": t, "session_id": s, "user_id": u, "enrolled_at": e, "unenrolled_at": x}
            for (t, s, u), (e, x) in sorted(learners.items())
        ]
        upsert(
            self._c,
            path_learners,
            rows,
            keys=["tenant_id", "session_id", "user_id"],
            replace=["enrolled_at", "unenrolled_at"],
        )

    def add_attempts(self, attempts: Sequence[tuple[LearnerKey, Attempt]]) -> None:
        """Record attempts once each (a re-sent attempt changes nothing)."""
        rows = [
            {
                "tenant_id": t,
                "session_id": s,
                "user_id": u,
                "attempt_id": a.attempt_id,
                "step_id": a.step_id,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "time_spent_ms": a.time_spent_ms,
                "score": a.score,
                "outside_path": a.outside_path,
            }
            for (t, s, u), a in attempts
        ]
        upsert(
            self._c, step_attempts, rows, keys=["tenant_id", "session_id", "user_id", "attempt_id"]
        )

    def corrections(self, keys: Iterable[CorrectionKey]) -> dict[CorrectionKey, Correction]:
        found: dict[CorrectionKey, Correction] = {}
        t = step_corrections
        columns = (t.c.tenant_id, t.c.session_id, t.c.user_id, t.c.attempt_id)
        for condition in key_lookups(columns, keys):
            for row in self._c.execute(select(t).where(condition)):
                key = (row.tenant_id, row.session_id, row.user_id, row.attempt_id)
                found[key] = Correction(row.step_id, row.attempt_id, row.score, row.corrected_at)
        return found

    def put_corrections(self, corrections: Sequence[tuple[LearnerKey, Correction]]) -> None:
        rows = [
            {
                "tenant_id": t,
                "session_id": s,
                "user_id": u,
                "attempt_id": c.attempt_id,
                "step_id": c.step_id,
                "score": c.score,
                "corrected_at": c.corrected_at,
            }
            for (t, s, u), c in corrections
        ]
        upsert(
            self._c,
            step_corrections,
            rows,
            keys=["tenant_id", "session_id", "user_id", "attempt_id"],
            replace=["step_id", "score", "corrected_at"],
        )


def attempt_from_row(row: Any) -> Attempt:
    return Attempt(
        row.step_id,
        row.attempt_id,
        row.started_at,
        row.ended_at,
        row.time_spent_ms,
        row.score,
        row.outside_path,
    )
