"""Task events through the ingest use case, GetTask through the query, on the fakes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from service.app import queries
from service.domain import events as ev
from service.domain.errors import NotFound
from service.domain.events import TaskStatus, TaskType
from tests.builders import T0, apply, meta, read
from tests.fakes import FakePorts

TRIPS = TaskType.PUSH_FAILED_TRIPS


def event(payload: ev.Payload, tenant: str = "acme", at: datetime = T0) -> ev.Event:
    return ev.Event(meta(tenant, at=at), payload)


def test_a_task_goes_from_pending_to_completed(ports: FakePorts) -> None:
    apply(ports, event(ev.TaskCreated("k1", TRIPS, 321, T0)))
    with read(ports) as reading:
        assert queries.get_task(reading, "acme", "k1").status is TaskStatus.PENDING
    apply(ports, event(ev.TaskStarted("k1", T0)), event(ev.TaskProgressed("k1", 12)))
    with read(ports) as reading:
        running = queries.get_task(reading, "acme", "k1")
    assert (running.status, running.nb_items, running.nb_remaining_items) == (
        TaskStatus.IN_PROGRESS,
        321,
        12,
    )
    done_at = T0 + timedelta(minutes=5)
    apply(ports, event(ev.TaskCompleted("k1", done_at)), event(ev.TaskProgressed("k1", 3)))
    with read(ports) as reading:
        done = queries.get_task(reading, "acme", "k1")
        kept = [(e.kind, e.reason) for e in reversed(reading.ignored_events(None, None, None))]
    assert (done.status, done.nb_remaining_items, done.completed_at) == (
        TaskStatus.COMPLETED,
        0,
        done_at,
    )
    assert [k for k, _ in kept] == ["terminal_state"]


def test_a_pause_cancels_the_tasks_of_its_tenant_and_type_that_had_started_by_then(
    ports: FakePorts,
) -> None:
    paused = T0 + timedelta(minutes=30)
    apply(
        ports,
        event(ev.TaskCreated("k1", TRIPS, 5, T0)),
        event(ev.TaskStarted("k1", T0)),
        event(ev.TaskCreated("k2", TRIPS, 5, T0)),
        event(ev.TaskCreated("k3", TaskType.PUSH_FAILED_CRASHES, 5, T0)),
        event(ev.TaskStarted("k3", T0)),
        event(ev.TaskCreated("k1", TRIPS, 5, T0), tenant="other"),
        event(ev.TaskStarted("k1", T0), tenant="other"),
    )
    outcome = apply(
        ports,
        event(ev.PushServicePaused(TRIPS), at=paused),
        event(ev.TaskStarted("k2", paused + timedelta(minutes=15))),
    )
    with read(ports) as reading:
        statuses = {k: queries.get_task(reading, "acme", k).status for k in ("k1", "k2", "k3")}
        other = queries.get_task(reading, "other", "k1").status
    assert statuses == {
        "k1": TaskStatus.CANCELED,
        "k2": TaskStatus.IN_PROGRESS,
        "k3": TaskStatus.IN_PROGRESS,
    }
    assert other is TaskStatus.IN_PROGRESS
    assert outcome.ignored == ()


def test_a_pause_folded_before_the_tasks_it_cancels_cancels_them_all_the_same(
    ports: FakePorts,
) -> None:
    paused = T0 + timedelta(minutes=30)
    apply(ports, event(ev.PushServicePaused(TRIPS), at=paused))
    apply(ports, event(ev.TaskCreated("k1", TRIPS, 5, T0)), event(ev.TaskStarted("k1", T0)))
    apply(ports, event(ev.PushServicePaused(TRIPS), at=paused))  # re-sent: changes nothing
    apply(
        ports,
        event(ev.TaskCreated("k2", TRIPS, 5, T0)),
        event(ev.TaskStarted("k2", paused + timedelta(minutes=1))),
    )
    with read(ports) as reading:
        assert queries.get_task(reading, "acme", "k1").status is TaskStatus.CANCELED
        assert queries.get_task(reading, "acme", "k2").status is TaskStatus.IN_PROGRESS


def test_events_before_their_task_wait_for_it_and_count_once_it_comes(
    ports: FakePorts,
) -> None:
    early = apply(ports, event(ev.TaskStarted("late", T0)), event(ev.TaskProgressed("late", 3)))
    assert early.ignored == ()
    with read(ports) as reading, pytest.raises(NotFound):
        queries.get_task(reading, "acme", "late")
    apply(ports, event(ev.TaskCreated("late", TRIPS, 5, T0)))
    with read(ports) as reading:
        task = queries.get_task(reading, "acme", "late")
    assert (task.status, task.nb_remaining_items) == (TaskStatus.IN_PROGRESS, 3)


def test_another_tenants_task_is_not_found(ports: FakePorts) -> None:
    apply(ports, event(ev.TaskCreated("k1", TRIPS, 5, T0), tenant="other"))
    with read(ports) as reading, pytest.raises(NotFound) as missing:
        queries.get_task(reading, "acme", "k1")
    assert missing.value.reason == "task_not_found"
