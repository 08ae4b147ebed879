"""The task state machine (docs/rules.md#tasks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.domain import events as ev
from service.domain.events import TaskStatus, TaskType
from service.domain.tasks import Applied, Ignored, PerTaskEvent, Task, apply, cancel_paused

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)
TRIPS, CRASHES = TaskType.PUSH_FAILED_TRIPS, TaskType.PUSH_FAILED_CRASHES

EVENTS: dict[str, PerTaskEvent] = {
    "created": ev.TaskCreated("k", TRIPS, 10, AT),
    "started": ev.TaskStarted("k", AT),
    "progressed": ev.TaskProgressed("k", 4),
    "completed": ev.TaskCompleted("k", AT),
    "failed": ev.TaskFailed("k", AT, "boom"),
}


def task(status: TaskStatus, remaining: int = 10) -> Task:
    return Task("k", TRIPS, status, 10, remaining, AT)


# Every status (None: no such task) x every event: the status after, or the ignored kind.
MATRIX: dict[tuple[TaskStatus | None, str], TaskStatus | str] = {
    (None, "created"): TaskStatus.PENDING,
    (None, "started"): "unknown_task",
    (None, "progressed"): "unknown_task",
    (None, "completed"): "unknown_task",
    (None, "failed"): "unknown_task",
    (TaskStatus.PENDING, "created"): "already_exists",
    (TaskStatus.PENDING, "started"): TaskStatus.IN_PROGRESS,
    (TaskStatus.PENDING, "progressed"): "not_started",
    (TaskStatus.PENDING, "completed"): TaskStatus.COMPLETED,
    (TaskStatus.PENDING, "failed"): TaskStatus.FAILED,
    (TaskStatus.IN_PROGRESS, "created"): "already_exists",
    (TaskStatus.IN_PROGRESS, "started"): "not_pending",
    (TaskStatus.IN_PROGRESS, "progressed"): TaskStatus.IN_PROGRESS,
    (TaskStatus.IN_PROGRESS, "completed"): TaskStatus.COMPLETED,
    (TaskStatus.IN_PROGRESS, "failed"): TaskStatus.FAILED,
    **{
        (terminal, name): ("already_exists" if name == "created" else "terminal_state")
        for terminal in (TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED)
        for name in EVENTS
    },
}


@pytest.mark.parametrize(
    ("status", "event", "expected"),
    [(s, e, x) for (s, e), x in MATRIX.items()],
    ids=[f"{s.name if s else 'unknown'}-{e}" for (s, e) in MATRIX],
)
def test_the_transition_matrix(status: TaskStatus | None, event: str, expected: object) -> None:
    outcome = apply(None if status is None else task(status), EVENTS[event])
    if isinstance(expected, TaskStatus):
        assert isinstance(outcome, Applied)
        assert outcome.task.status is expected
    else:
        assert isinstance(outcome, Ignored)
        assert outcome.kind == expected


def test_a_created_task_is_pending_with_every_item_remaining() -> None:
    outcome = apply(None, EVENTS["created"])
    assert isinstance(outcome, Applied)
    assert outcome.task == Task("k", TRIPS, TaskStatus.PENDING, 10, 10, AT)


def test_remaining_items_never_rise_nor_exceed_the_total() -> None:
    running = task(TaskStatus.IN_PROGRESS, remaining=5)
    rising = apply(running, ev.TaskProgressed("k", 6))
    above = apply(running, ev.TaskProgressed("k", 11))
    same = apply(running, ev.TaskProgressed("k", 5))
    assert isinstance(rising, Ignored)
    assert rising.kind == "progress_rising"
    assert isinstance(above, Ignored)
    assert above.kind == "progress_above_total"
    assert same == Applied(running)


def test_completion_zeroes_the_remaining_items_and_dates_it() -> None:
    outcome = apply(task(TaskStatus.IN_PROGRESS, remaining=3), ev.TaskCompleted("k", AT))
    assert isinstance(outcome, Applied)
    assert (outcome.task.nb_remaining_items, outcome.task.completed_at) == (0, AT)


def test_a_pause_cancels_only_in_progress_tasks_of_its_type() -> None:
    tasks = [
        Task("b", TRIPS, TaskStatus.IN_PROGRESS, 3, 2, AT),
        Task("a", TRIPS, TaskStatus.IN_PROGRESS, 3, 1, AT),
        Task("c", TRIPS, TaskStatus.PENDING, 3, 3, AT),
        Task("d", CRASHES, TaskStatus.IN_PROGRESS, 3, 3, AT),
        Task("e", TRIPS, TaskStatus.COMPLETED, 3, 0, AT),
    ]
    cancelled = cancel_paused(tasks, ev.PushServicePaused(TRIPS))
    assert [(t.task_id, t.status) for t in cancelled] == [
        ("a", TaskStatus.CANCELED),
        ("b", TaskStatus.CANCELED),
    ]
