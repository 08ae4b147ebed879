"""Tasks: the task state machine's state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, select

from service.adapters.sql import key_lookups, upsert
from service.adapters.tables import tasks
from service.app.ports import TaskKey
from service.domain.events import TaskStatus, TaskType
from service.domain.tasks import Task


def task_from_row(row: Row[Any]) -> Task:
    return Task(
        task_id=row.task_id,
        type=TaskType(row.type),
        status=TaskStatus(row.status),
        nb_items=row.nb_items,
        nb_remaining_items=row.nb_remaining_items,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
        failure_reason=row.failure_reason,
    )


class SqlTaskStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, keys: Iterable[TaskKey]) -> dict[TaskKey, Task]:
        found: dict[TaskKey, Task] = {}
        for condition in key_lookups((tasks.c.tenant_id, tasks.c.task_id), keys):
            rows = self._c.execute(select(tasks).where(condition))
            found.update({(row.tenant_id, row.task_id): task_from_row(row) for row in rows})
        return found

    def in_progress(self, tenant_id: str, task_type: TaskType) -> dict[TaskKey, Task]:
        rows = self._c.execute(
            select(tasks).where(
                tasks.c.tenant_id == tenant_id,
                tasks.c.type == task_type.value,
                tasks.c.status == TaskStatus.IN_PROGRESS.value,
            )
        )
        return {(row.tenant_id, row.task_id): task_from_row(row) for row in rows}

    def save(self, changed: Mapping[TaskKey, Task]) -> None:
        rows = [
            {
                "tenant_id": tenant,
                "task_id": task.task_id,
                "type": task.type.value,
                "status": task.status.value,
                "nb_items": task.nb_items,
                "nb_remaining_items": task.nb_remaining_items,
                "created_at": task.created_at,
                "started_at": task.started_at,
                "completed_at": task.completed_at,
                "failed_at": task.failed_at,
                "failure_reason": task.failure_reason,
            }
            for (tenant, _), task in sorted(changed.items())
        ]
        values = [c.name for c in tasks.c if not c.primary_key]
        upsert(self._c, tasks, rows, keys=["tenant_id", "task_id"], replace=values)
