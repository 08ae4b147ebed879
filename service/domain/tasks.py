"""The task state machine (docs/rules.md#tasks), as one explicit transition table.

PENDING on task_created, IN_PROGRESS on task_started, nbRemainingItems from task_progressed
(never above nbItems, never rising), COMPLETED (nothing remaining) on task_completed, FAILED on
task_failed, CANCELED for IN_PROGRESS tasks of a paused type. COMPLETED, CANCELED and FAILED
are terminal. An event the table does not allow is ignored, with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from service.domain import events as ev
from service.domain.events import TaskStatus

TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED})

PerTaskEvent = (
    ev.TaskCreated | ev.TaskStarted | ev.TaskProgressed | ev.TaskCompleted | ev.TaskFailed
)


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    type: ev.TaskType
    status: TaskStatus
    nb_items: int
    nb_remaining_items: int
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    failure_reason: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    task: Task


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str
    """Stable, for metrics: unknown_task, already_exists, terminal_state, not_pending,
    not_started, progress_rising, progress_above_total."""
    reason: str


Outcome = Applied | Ignored


def _create(task: Task | None, e: ev.TaskCreated) -> Outcome:
    if task is not None:
        return Ignored("already_exists", f"task {e.task_id!r} already exists")
    if e.nb_items < 0:
        return Ignored("invalid_count", f"nb_items {e.nb_items} is negative")
    return Applied(
        Task(e.task_id, e.type, TaskStatus.PENDING, e.nb_items, e.nb_items, e.created_at)
    )


def _start(task: Task, e: ev.TaskStarted) -> Outcome:
    if task.status is not TaskStatus.PENDING:
        return Ignored("not_pending", f"task is {task.status.name}, only a PENDING task starts")
    return Applied(replace(task, status=TaskStatus.IN_PROGRESS, started_at=e.started_at))


def _progress(task: Task, e: ev.TaskProgressed) -> Outcome:
    remaining = e.nb_remaining_items
    if task.status is not TaskStatus.IN_PROGRESS:
        return Ignored("not_started", f"task is {task.status.name}, progress needs IN_PROGRESS")
    if remaining < 0 or remaining > task.nb_items:
        return Ignored(
            "progress_above_total", f"nb_remaining_items {remaining} is outside 0..{task.nb_items}"
        )
    if remaining > task.nb_remaining_items:
        return Ignored(
            "progress_rising",
            f"nb_remaining_items would rise from {task.nb_remaining_items} to {remaining}",
        )
    return Applied(replace(task, nb_remaining_items=remaining))


def _complete(task: Task, e: ev.TaskCompleted) -> Outcome:
    return Applied(
        replace(
            task, status=TaskStatus.COMPLETED, nb_remaining_items=0, completed_at=e.completed_at
        )
    )


def _fail(task: Task, e: ev.TaskFailed) -> Outcome:
    return Applied(
        replace(task, status=TaskStatus.FAILED, failed_at=e.failed_at, failure_reason=e.reason)
    )


Transition = Callable[[Task, "PerTaskEvent"], Outcome]

# (status, event) -> transition. A pair that is not here is ignored (see `apply`).
TRANSITIONS: dict[tuple[TaskStatus, type], Transition] = {
    (TaskStatus.PENDING, ev.TaskStarted): _start,  # type: ignore[dict-item]
    (TaskStatus.PENDING, ev.TaskCompleted): _complete,  # type: ignore[dict-item]
    (TaskStatus.PENDING, ev.TaskFailed): _fail,  # type: ignore[dict-item]
    (TaskStatus.PENDING, ev.TaskProgressed): _progress,  # type: ignore[dict-item]
    (TaskStatus.IN_PROGRESS, ev.TaskStarted): _start,  # type: ignore[dict-item]
    (TaskStatus.IN_PROGRESS, ev.TaskProgressed): _progress,  # type: ignore[dict-item]
    (TaskStatus.IN_PROGRESS, ev.TaskCompleted): _complete,  # type: ignore[dict-item]
    (TaskStatus.IN_PROGRESS, ev.TaskFailed): _fail,  # type: ignore[dict-item]
}


def apply(task: Task | None, event: PerTaskEvent) -> Outcome:
    """The task once `event` is folded, or why the event changes nothing."""
    if isinstance(event, ev.TaskCreated):
        return _create(task, event)
    if task is None:
        return Ignored("unknown_task", f"no task {event.task_id!r} was created")
    if task.status in TERMINAL:
        return Ignored("terminal_state", f"task is {task.status.name}, a terminal state")
    transition = TRANSITIONS.get((task.status, type(event)))
    if transition is None:  # pragma: no cover - every live pair is in the table
        return Ignored(
            "not_allowed", f"{type(event).__name__} is not allowed in {task.status.name}"
        )
    return transition(task, event)


def cancel_paused(tasks: Iterable[Task], paused: ev.PushServicePaused) -> tuple[Task, ...]:
    """The IN_PROGRESS tasks of the paused type, CANCELED; others are left out."""
    cancelled = [
        replace(t, status=TaskStatus.CANCELED)
        for t in tasks
        if t.type is paused.type and t.status is TaskStatus.IN_PROGRESS
    ]
    return tuple(sorted(cancelled, key=lambda t: t.task_id))
