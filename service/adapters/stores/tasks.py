"""Tasks: each task's facts (docs/rules.md#tasks), and the pauses of each tenant and type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from service.adapters.sql import key_lookups, upsert
from service.adapters.tables import task_pauses, task_progress, tasks
from service.app.ports import TaskKey, TaskTypeKey
from service.domain.events import TaskType
from service.domain.tasks import Creation, Report, TaskFacts
from service.domain.versions import Version


def facts_from_row(row: Row[Any], progress: tuple[Report, ...]) -> TaskFacts:
    creation = None
    if row.type is not None:
        creation = Creation(
            TaskType(row.type),
            row.nb_items,
            row.created_at,
            Version(row.created_version_at, row.created_version_event),
        )
    return TaskFacts(
        task_id=row.task_id,
        creation=creation,
        started_at=row.started_at,
        progress=progress,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
        failure_reason=row.failure_reason,
        canceled_at=row.canceled_at,
    )


def _row(tenant_id: str, facts: TaskFacts) -> dict[str, Any]:
    creation = facts.creation
    return {
        "tenant_id": tenant_id,
        "task_id": facts.task_id,
        "type": None if creation is None else creation.type.value,
        "nb_items": None if creation is None else creation.nb_items,
        "created_at": None if creation is None else creation.created_at,
        "created_version_at": None if creation is None else creation.version.at,
        "created_version_event": None if creation is None else creation.version.event_id,
        "started_at": facts.started_at,
        "completed_at": facts.completed_at,
        "failed_at": facts.failed_at,
        "failure_reason": facts.failure_reason,
        "canceled_at": facts.canceled_at,
    }


_VALUES = [c.name for c in tasks.c if not c.primary_key]


class SqlTaskStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, keys: Iterable[TaskKey]) -> dict[TaskKey, TaskFacts]:
        key_list = list(keys)
        progress = progress_of(self._c, key_list)
        found: dict[TaskKey, TaskFacts] = {}
        for condition in key_lookups((tasks.c.tenant_id, tasks.c.task_id), key_list):
            for row in self._c.execute(select(tasks).where(condition)):
                key = (row.tenant_id, row.task_id)
                found[key] = facts_from_row(row, progress.get(key, ()))
        return found

    def save(self, facts: Mapping[TaskKey, TaskFacts]) -> None:
        """Replace the tasks' rows, their progress reports included."""
        rows = [_row(tenant, f) for (tenant, _), f in sorted(facts.items())]
        upsert(self._c, tasks, rows, keys=["tenant_id", "task_id"], replace=_VALUES)
        p = task_progress
        for condition in key_lookups((p.c.tenant_id, p.c.task_id), sorted(facts)):
            self._c.execute(delete(p).where(condition))
        reports = [
            {
                "tenant_id": tenant,
                "task_id": f.task_id,
                "reported_at": r.at,
                "remaining": r.remaining,
            }
            for (tenant, _), f in sorted(facts.items())
            for r in f.progress
        ]
        upsert(self._c, p, reports, keys=["tenant_id", "task_id", "reported_at"])

    def add_pauses(self, pauses: Iterable[tuple[str, TaskType, datetime]]) -> None:
        rows = [
            {"tenant_id": tenant, "type": task_type.value, "paused_at": at}
            for tenant, task_type, at in sorted(set(pauses))
        ]
        upsert(self._c, task_pauses, rows, keys=["tenant_id", "type", "paused_at"])

    def pauses(self, keys: Iterable[TaskTypeKey]) -> dict[TaskTypeKey, list[datetime]]:
        found: defaultdict[TaskTypeKey, list[datetime]] = defaultdict(list)
        p = task_pauses
        for tenant, task_type in sorted(set(keys)):
            query = (
                select(p.c.paused_at)
                .where(p.c.tenant_id == tenant, p.c.type == task_type.value)
                .order_by(p.c.paused_at)
            )
            found[(tenant, task_type)].extend(self._c.execute(query).scalars())
        return {key: times for key, times in found.items() if times}


def progress_of(
    connection: Connection, keys: Iterable[TaskKey]
) -> dict[TaskKey, tuple[Report, ...]]:
    """The progress reports of these tasks, oldest first."""
    p = task_progress
    found: defaultdict[TaskKey, list[Report]] = defaultdict(list)
    for condition in key_lookups((p.c.tenant_id, p.c.task_id), keys):
        query = select(p.c.tenant_id, p.c.task_id, p.c.reported_at, p.c.remaining).where(condition)
        for tenant, task_id, at, remaining in connection.execute(query):
            found[(tenant, task_id)].append(Report(at, remaining))
    return {key: tuple(sorted(reports)) for key, reports in found.items()}
