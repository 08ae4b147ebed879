"""The task state machine (docs/rules.md#tasks): what a task's events say, and its status.

A task's events fold into `TaskFacts` (the first creation, the earliest start, the progress
reports with their times, the earliest completion and failure), so the facts are the same
whatever order the events arrive in, events for a task that is not created yet included.
`task_of` reads the task from its facts and its tenant's pauses of the task's type:

- PENDING once created, IN_PROGRESS once started;
- the earliest terminal moment wins, each at its own time: `completed_at` (COMPLETED),
  `failed_at` (FAILED), or the first pause at or after the start (CANCELED). A pause cancels
  a task that had started by then and was not terminal; a task started after it goes on.
  COMPLETED, CANCELED and FAILED are terminal: an event dated after the terminal moment
  changes nothing (a start after it is no start, a report after it no progress);
- `nbRemainingItems`: the lowest count reported (by the end, for a terminal task) once the
  task started, never above `nbItems` (a count above it is ignored), 0 once completed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from service.domain import events as ev
from service.domain.events import TaskStatus
from service.domain.versions import Version

TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED})

PerTaskEvent = (
    ev.TaskCreated | ev.TaskStarted | ev.TaskProgressed | ev.TaskCompleted | ev.TaskFailed
)


@dataclass(frozen=True, slots=True)
class Creation:
    type: ev.TaskType
    nb_items: int
    created_at: datetime
    version: Version
    """A task created twice keeps the creation of the oldest version."""


@dataclass(frozen=True, slots=True, order=True)
class Report:
    """A `task_progressed`: the items left, at its envelope's `occurred_at` (it has no time of
    its own)."""

    at: datetime
    remaining: int


@dataclass(frozen=True, slots=True)
class TaskFacts:
    task_id: str
    creation: Creation | None = None
    started_at: datetime | None = None
    progress: tuple[Report, ...] = ()
    """The reports that can still matter, oldest first, each lower than every earlier one
    (`with_report`): the lowest count reported by any moment is the last of them by then."""
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    failure_reason: str = ""
    canceled_at: datetime | None = None
    """Tasks canceled before pauses were kept (schema 0004): when they were canceled."""


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
    ended_at: datetime | None = None
    """The terminal moment (of a COMPLETED, CANCELED or FAILED task)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str
    """Stable, for metrics: already_exists, terminal_state, not_pending, progress_rising,
    progress_above_total."""
    reason: str


def fold(facts: TaskFacts, event: PerTaskEvent, version: Version) -> TaskFacts:
    """The facts once `event` (of `version`) is known; folding the same events in another
    order, or one of them twice, gives the same facts."""
    if isinstance(event, ev.TaskCreated):
        creation = Creation(event.type, event.nb_items, event.created_at, version)
        kept = facts.creation
        return replace(facts, creation=creation if kept is None else min(kept, creation, key=_v))
    if isinstance(event, ev.TaskStarted):
        return replace(facts, started_at=_earliest(facts.started_at, event.started_at))
    if isinstance(event, ev.TaskProgressed):
        report = Report(version.at, event.nb_remaining_items)
        return replace(facts, progress=with_report(facts.progress, report))
    if isinstance(event, ev.TaskCompleted):
        return replace(facts, completed_at=_earliest(facts.completed_at, event.completed_at))
    failure = (event.failed_at, event.reason)
    if facts.failed_at is None or failure < (facts.failed_at, facts.failure_reason):
        return replace(facts, failed_at=event.failed_at, failure_reason=event.reason)
    return facts


def task_of(facts: TaskFacts, pauses: Iterable[datetime]) -> Task | None:
    """The task its facts describe, with the pauses of its tenant and type; None until it is
    created (its other events wait for the creation)."""
    creation = facts.creation
    if creation is None:
        return None
    status, ended_at = _terminal(facts, pauses)
    started_at = _by(facts.started_at, ended_at)
    if status is None:
        status = TaskStatus.PENDING if started_at is None else TaskStatus.IN_PROGRESS
    remaining = creation.nb_items
    if status is TaskStatus.COMPLETED:
        remaining = 0
    elif started_at is not None:
        lowest = _lowest_by(facts.progress, ended_at)
        if lowest is not None and lowest <= creation.nb_items:
            remaining = lowest
    return Task(
        task_id=facts.task_id,
        type=creation.type,
        status=status,
        nb_items=creation.nb_items,
        nb_remaining_items=remaining,
        created_at=creation.created_at,
        started_at=started_at,
        completed_at=ended_at if status is TaskStatus.COMPLETED else None,
        failed_at=ended_at if status is TaskStatus.FAILED else None,
        failure_reason=facts.failure_reason if status is TaskStatus.FAILED else "",
        ended_at=ended_at,
    )


def with_report(reports: tuple[Report, ...], new: Report) -> tuple[Report, ...]:
    """`reports` with `new`, keeping only the reports that can still matter: by time, each
    lower than every earlier one (a report no lower than an earlier one never is the lowest by
    any moment). The same whatever order the reports come in."""
    kept: list[Report] = []
    for report in sorted((*reports, new)):
        if not kept or report.remaining < kept[-1].remaining:
            kept.append(report)
    return tuple(kept)


def _lowest_by(reports: tuple[Report, ...], moment: datetime | None) -> int | None:
    """The lowest count reported at or before `moment` (None: ever)."""
    lowest = None
    for report in reports:
        if moment is not None and report.at > moment:
            break
        lowest = report.remaining
    return lowest


def _by(moment: datetime | None, ended_at: datetime | None) -> datetime | None:
    """`moment` if it came by the task's end (an event dated after it changes nothing)."""
    if moment is None or (ended_at is not None and moment > ended_at):
        return None
    return moment


# Terminal moments that fall at the same time: completing or failing first (the task was
# terminal at that moment, so a pause then does not cancel it).
_TIE_ORDER = {TaskStatus.COMPLETED: 0, TaskStatus.FAILED: 1, TaskStatus.CANCELED: 2}


def _terminal(
    facts: TaskFacts, pauses: Iterable[datetime]
) -> tuple[TaskStatus | None, datetime | None]:
    moments: list[tuple[datetime, TaskStatus]] = []
    if facts.completed_at is not None:
        moments.append((facts.completed_at, TaskStatus.COMPLETED))
    if facts.failed_at is not None:
        moments.append((facts.failed_at, TaskStatus.FAILED))
    if facts.canceled_at is not None:
        moments.append((facts.canceled_at, TaskStatus.CANCELED))
    if facts.started_at is not None:
        started = facts.started_at
        paused = min((p for p in pauses if p >= started), default=None)
        if paused is not None:
            moments.append((paused, TaskStatus.CANCELED))
    if not moments:
        return None, None
    at, status = min(moments, key=lambda m: (m[0], _TIE_ORDER[m[1]]))
    return status, at


def ignored(before: Task | None, after: Task | None, event: PerTaskEvent) -> Ignored | None:
    """Why a valid event changed nothing of a task that exists, for operators; None when it
    changed the task, or when it waits for the task's creation."""
    if before is None or after != before:
        return None
    if isinstance(event, ev.TaskCreated):
        return Ignored("already_exists", f"task {event.task_id!r} already exists")
    if before.status in TERMINAL:
        ended = "" if before.ended_at is None else f" since {before.ended_at.isoformat()}"
        return Ignored("terminal_state", f"task is {before.status.name}{ended}, a terminal state")
    if isinstance(event, ev.TaskStarted):
        return Ignored("not_pending", "the task had started already")
    if isinstance(event, ev.TaskProgressed):
        remaining = event.nb_remaining_items
        if remaining > before.nb_items:
            return Ignored(
                "progress_above_total",
                f"nb_remaining_items {remaining} is above nb_items {before.nb_items}",
            )
        if remaining > before.nb_remaining_items:
            return Ignored(
                "progress_rising",
                f"nb_remaining_items would rise from {before.nb_remaining_items} to {remaining}",
            )
    return None


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None else min(current, new)


def _v(creation: Creation) -> Version:
    return creation.version
