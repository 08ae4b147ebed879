"""A task's answer does not depend on the order its events, its tenant's pauses and other
tasks' events arrive in: events before their task's creation included (docs/rules.md#tasks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import queries
from service.domain import events as ev
from service.domain.errors import NotFound
from service.domain.tasks import Task, TaskFacts, fold, task_of
from service.domain.versions import Version
from tests import profiles
from tests.builders import apply, arrival_batches, memory_storage, meta, read

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)
MINUTES = st.integers(0, 90).map(lambda m: AT + timedelta(minutes=m))
TASKS = ["k1", "k2"]
TYPES = list(ev.TaskType)


@st.composite
def streams(draw: st.DrawFn) -> list[ev.Event]:
    events: list[ev.Event] = []
    for task_id in TASKS:
        if draw(st.booleans()):
            created = ev.TaskCreated(task_id, draw(st.sampled_from(TYPES)), 10, AT)
            events.append(ev.Event(meta(at=AT), created))
        for _ in range(draw(st.integers(0, 5))):
            payload: ev.Payload = draw(
                st.one_of(
                    st.builds(ev.TaskStarted, st.just(task_id), MINUTES),
                    st.builds(ev.TaskProgressed, st.just(task_id), st.integers(0, 12)),
                    st.builds(ev.TaskCompleted, st.just(task_id), MINUTES),
                    st.builds(ev.TaskFailed, st.just(task_id), MINUTES, st.just("broke")),
                )
            )
            # Its envelope's time is a report's own: reports after the end change nothing.
            events.append(ev.Event(meta(at=draw(MINUTES)), payload))
    for _ in range(draw(st.integers(0, 3))):
        paused = ev.PushServicePaused(draw(st.sampled_from(TYPES)))
        events.append(ev.Event(meta(at=draw(MINUTES)), paused))
    return events


def recomputed(events: list[ev.Event], task_id: str) -> Task | None:
    """The reference: the task from all its events and its tenant's pauses at once."""
    mine = [e for e in events if getattr(e.payload, "task_id", None) == task_id]
    facts = reduce(
        lambda f, e: fold(f, e.payload, Version(e.meta.occurred_at, e.meta.event_id)),  # type: ignore[arg-type]
        mine,
        TaskFacts(task_id),
    )
    if facts.creation is None:
        return None
    pauses = [
        e.meta.occurred_at
        for e in events
        if isinstance(e.payload, ev.PushServicePaused) and e.payload.type is facts.creation.type
    ]
    return task_of(facts, pauses)


@settings(
    max_examples=profiles.examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(events=streams(), data=st.data())
def test_a_task_is_the_same_whatever_order_its_events_and_the_pauses_arrive_in(
    events: list[ev.Event], data: st.DataObject
) -> None:
    batches = arrival_batches(data, events)
    with memory_storage() as storage:
        for batch in batches:
            apply(storage, *batch)
        for batch in batches[:1]:
            apply(storage, *batch)  # a redelivery changes nothing
        with read(storage) as reading:
            for task_id in TASKS:
                expected = recomputed(events, task_id)
                try:
                    found: Task | None = queries.get_task(reading, "acme", task_id)
                except NotFound:
                    found = None
                assert found == expected
