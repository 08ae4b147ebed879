"""Fold task events into each task's facts, and pauses into their tenant and type's pauses
(docs/rules.md#tasks). A pause's moment is its envelope's `occurred_at`."""

from __future__ import annotations

from collections.abc import Sequence

from service.app.ports import TaskKey, UnitOfWork
from service.app.records import IgnoredEvent, Received, version_of
from service.domain import events as ev
from service.domain.tasks import PerTaskEvent, TaskFacts, fold, ignored, task_of

PER_TASK_EVENTS = (
    ev.TaskCreated,
    ev.TaskStarted,
    ev.TaskProgressed,
    ev.TaskCompleted,
    ev.TaskFailed,
)
TASK_EVENTS = (*PER_TASK_EVENTS, ev.PushServicePaused)


def fold_tasks(uow: UnitOfWork, items: Sequence[Received]) -> list[IgnoredEvent]:
    """Fold the batch's task events; return the valid ones that changed nothing of an
    existing task (kept for operators)."""
    uow.tasks.add_pauses(
        {
            (i.event.meta.tenant_id, i.event.payload.type, i.event.meta.occurred_at)
            for i in items
            if isinstance(i.event.payload, ev.PushServicePaused)
        }
    )
    per_task = [i for i in items if isinstance(i.event.payload, PER_TASK_EVENTS)]
    keys = {_key(i) for i in per_task}
    stored = uow.tasks.load(keys)
    current = {key: stored.get(key, TaskFacts(key[1])) for key in keys}
    steps: list[tuple[Received, TaskFacts, TaskFacts]] = []
    for item in per_task:
        key = _key(item)
        before = current[key]
        current[key] = fold(before, _payload(item), version_of(item))
        steps.append((item, before, current[key]))
    uow.tasks.save({key: facts for key, facts in current.items() if facts != stored.get(key)})
    return _ignored(uow, steps)


def _ignored(
    uow: UnitOfWork, steps: Sequence[tuple[Received, TaskFacts, TaskFacts]]
) -> list[IgnoredEvent]:
    created = [(i.event.meta.tenant_id, after.creation) for i, _, after in steps]
    pauses = uow.tasks.pauses({(tenant, c.type) for tenant, c in created if c is not None})
    found: list[IgnoredEvent] = []
    for item, before, after in steps:
        meta, creation = item.event.meta, after.creation
        if creation is None:
            continue  # waits for its task
        of_type = pauses.get((meta.tenant_id, creation.type), [])
        why = ignored(task_of(before, of_type), task_of(after, of_type), _payload(item))
        if why is not None:
            found.append(
                IgnoredEvent(item.record, meta.tenant_id, meta.event_id, why.kind, why.reason)
            )
    return found


def _payload(item: Received) -> PerTaskEvent:
    payload = item.event.payload
    assert isinstance(payload, PER_TASK_EVENTS)
    return payload


def _key(item: Received) -> TaskKey:
    return (item.event.meta.tenant_id, _payload(item).task_id)
