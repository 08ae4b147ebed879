"""Fold task events through the task state machine."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import TaskKey, UnitOfWork
from service.app.records import IgnoredEvent, Received
from service.domain import events as ev
from service.domain.tasks import Ignored, PerTaskEvent, Task, apply, cancel_paused

PER_TASK_EVENTS = (
    ev.TaskCreated,
    ev.TaskStarted,
    ev.TaskProgressed,
    ev.TaskCompleted,
    ev.TaskFailed,
)
TASK_EVENTS = (*PER_TASK_EVENTS, ev.PushServicePaused)


def fold_tasks(uow: UnitOfWork, items: Sequence[Received]) -> list[IgnoredEvent]:
    """Apply each event in arrival order; return the events the machine ignored."""
    keys = {
        (i.event.meta.tenant_id, i.event.payload.task_id)
        for i in items
        if isinstance(i.event.payload, PER_TASK_EVENTS)
    }
    current: dict[TaskKey, Task] = uow.tasks.load(keys)
    changed: dict[TaskKey, Task] = {}
    ignored: list[IgnoredEvent] = []
    for item in items:
        meta, payload = item.event.meta, item.event.payload
        if isinstance(payload, ev.PushServicePaused):
            _cancel(uow, meta.tenant_id, payload, current, changed)
        elif isinstance(payload, PER_TASK_EVENTS):
            outcome = _apply(current, (meta.tenant_id, payload.task_id), payload)
            if isinstance(outcome, Ignored):
                ignored.append(
                    IgnoredEvent(
                        item.record, meta.tenant_id, meta.event_id, outcome.kind, outcome.reason
                    )
                )
            else:
                current[outcome[0]] = changed[outcome[0]] = outcome[1]
    uow.tasks.save(changed)
    return ignored


def _apply(
    current: dict[TaskKey, Task], key: TaskKey, payload: PerTaskEvent
) -> tuple[TaskKey, Task] | Ignored:
    outcome = apply(current.get(key), payload)
    return outcome if isinstance(outcome, Ignored) else (key, outcome.task)


def _cancel(
    uow: UnitOfWork,
    tenant_id: str,
    paused: ev.PushServicePaused,
    current: dict[TaskKey, Task],
    changed: dict[TaskKey, Task],
) -> None:
    """Cancel the tenant's IN_PROGRESS tasks of the type, stored or folded in this batch."""
    candidates = uow.tasks.in_progress(tenant_id, paused.type)
    candidates.update({k: t for k, t in current.items() if k[0] == tenant_id})
    for task in cancel_paused(candidates.values(), paused):
        key = (tenant_id, task.task_id)
        current[key] = changed[key] = task
