"""The task rules (docs/rules.md#tasks): facts folded in any order, the status read from them
and from the tenant's pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.events import TaskStatus, TaskType
from service.domain.tasks import PerTaskEvent, Task, TaskFacts, fold, ignored, task_of
from service.domain.versions import Version

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TRIPS = TaskType.PUSH_FAILED_TRIPS


def folded(*events: PerTaskEvent) -> TaskFacts:
    return reduce(
        lambda facts, pair: fold(facts, pair[1], Version(AT, f"e{pair[0]}")),
        enumerate(events),
        TaskFacts("k"),
    )


def task(*events: PerTaskEvent, pauses: tuple[datetime, ...] = ()) -> Task | None:
    return task_of(folded(*events), pauses)


CREATED = ev.TaskCreated("k", TRIPS, 10, AT)
STARTED = ev.TaskStarted("k", AT + 10 * MIN)


def status(*events: PerTaskEvent, pauses: tuple[datetime, ...] = ()) -> TaskStatus | None:
    found = task(*events, pauses=pauses)
    return None if found is None else found.status


def test_a_created_task_is_pending_with_every_item_remaining() -> None:
    assert task(CREATED) == Task("k", TRIPS, TaskStatus.PENDING, 10, 10, AT)


def test_a_started_task_is_in_progress_and_its_remaining_items_only_go_down() -> None:
    running = task(CREATED, STARTED, ev.TaskProgressed("k", 4), ev.TaskProgressed("k", 6))
    assert running is not None
    assert (running.status, running.nb_remaining_items) == (TaskStatus.IN_PROGRESS, 4)
    assert running.started_at == AT + 10 * MIN


def test_a_count_above_the_total_is_ignored() -> None:
    running = task(CREATED, STARTED, ev.TaskProgressed("k", 11))
    assert running is not None
    assert running.nb_remaining_items == 10


def test_completion_zeroes_the_remaining_items_and_dates_it() -> None:
    done = task(CREATED, STARTED, ev.TaskProgressed("k", 3), ev.TaskCompleted("k", AT + 20 * MIN))
    assert done is not None
    assert (done.status, done.nb_remaining_items, done.completed_at) == (
        TaskStatus.COMPLETED,
        0,
        AT + 20 * MIN,
    )


def test_a_pending_task_may_complete_or_fail_without_starting() -> None:
    assert status(CREATED, ev.TaskCompleted("k", AT + MIN)) is TaskStatus.COMPLETED
    failed = task(CREATED, ev.TaskFailed("k", AT + MIN, "quota"))
    assert failed is not None
    assert (failed.status, failed.failure_reason, failed.nb_remaining_items) == (
        TaskStatus.FAILED,
        "quota",
        10,
    )


def test_the_earliest_terminal_moment_wins_whatever_arrives_first() -> None:
    completed, failed = ev.TaskCompleted("k", AT + 30 * MIN), ev.TaskFailed("k", AT + 20 * MIN)
    assert status(CREATED, STARTED, completed, failed) is TaskStatus.FAILED
    assert status(CREATED, STARTED, failed, completed) is TaskStatus.FAILED


def test_a_pause_cancels_a_task_started_before_it_and_not_terminal_then() -> None:
    pause = AT + 30 * MIN
    assert status(CREATED, STARTED, pauses=(pause,)) is TaskStatus.CANCELED
    assert status(CREATED, ev.TaskStarted("k", pause), pauses=(pause,)) is TaskStatus.CANCELED
    late_completion = ev.TaskCompleted("k", AT + 40 * MIN)
    assert status(CREATED, STARTED, late_completion, pauses=(pause,)) is TaskStatus.CANCELED


def test_a_pause_spares_a_task_that_started_after_it_or_was_done_before_it() -> None:
    pause = AT + 5 * MIN
    assert status(CREATED, STARTED, pauses=(pause,)) is TaskStatus.IN_PROGRESS
    assert status(CREATED, pauses=(pause,)) is TaskStatus.PENDING
    done = ev.TaskCompleted("k", AT + 20 * MIN)
    assert status(CREATED, STARTED, done, pauses=(AT + 20 * MIN,)) is TaskStatus.COMPLETED


def test_a_resent_pause_changes_nothing() -> None:
    pause = AT + 30 * MIN
    once = task(CREATED, STARTED, pauses=(pause,))
    assert task(CREATED, STARTED, pauses=(pause, pause)) == once


def test_events_before_their_task_wait_for_it() -> None:
    early = folded(STARTED, ev.TaskProgressed("k", 7))
    assert task_of(early, ()) is None
    running = task_of(fold(early, CREATED, Version(AT, "late")), ())
    assert running is not None
    assert (running.status, running.nb_remaining_items) == (TaskStatus.IN_PROGRESS, 7)


def test_a_task_created_twice_keeps_the_creation_of_the_older_version() -> None:
    facts = fold(TaskFacts("k"), ev.TaskCreated("k", TRIPS, 20, AT), Version(AT + MIN, "b"))
    facts = fold(facts, CREATED, Version(AT, "a"))
    found = task_of(facts, ())
    assert found is not None
    assert found.nb_items == 10


Dated = tuple[PerTaskEvent, datetime]


def dated(*events: Dated) -> TaskFacts:
    """The facts of `events`, each with its envelope's `occurred_at` (a report's own time)."""
    return reduce(
        lambda facts, pair: fold(facts, pair[1][0], Version(pair[1][1], f"e{pair[0]}")),
        enumerate(events),
        TaskFacts("k"),
    )


FAILED = ev.TaskFailed("k", AT + 20 * MIN, "quota")


def test_a_report_dated_after_the_task_ended_changes_nothing_whatever_came_first() -> None:
    late: Dated = (ev.TaskProgressed("k", 4), AT + 30 * MIN)
    in_order: list[Dated] = [(CREATED, AT), (STARTED, AT), (FAILED, AT), late]
    for events in (in_order, [late, *in_order[:3]]):
        failed = task_of(dated(*events), ())
        assert failed is not None
        assert (failed.status, failed.nb_remaining_items) == (TaskStatus.FAILED, 10)


def test_a_report_dated_before_the_end_counts_whenever_it_comes() -> None:
    early = (ev.TaskProgressed("k", 4), AT + 15 * MIN)
    failed = task_of(dated((CREATED, AT), (STARTED, AT), (FAILED, AT), early), ())
    assert failed is not None
    assert (failed.status, failed.nb_remaining_items) == (TaskStatus.FAILED, 4)


def test_the_lowest_count_by_the_end_is_kept_and_reports_after_it_are_not() -> None:
    reports: list[Dated] = [
        (ev.TaskProgressed("k", n), AT + m * MIN) for n, m in [(8, 12), (6, 19), (2, 21)]
    ]
    failed = task_of(dated((CREATED, AT), (STARTED, AT), *reports, (FAILED, AT)), ())
    assert failed is not None
    assert failed.nb_remaining_items == 6


def test_a_task_that_failed_before_it_started_takes_no_later_start_or_progress() -> None:
    early_failure = ev.TaskFailed("k", AT + 5 * MIN, "quota")
    late: list[Dated] = [(STARTED, AT), (ev.TaskProgressed("k", 3), AT + 12 * MIN)]
    failed = task_of(dated((CREATED, AT), *late, (early_failure, AT)), ())
    assert failed is not None
    assert (failed.status, failed.started_at, failed.nb_remaining_items) == (
        TaskStatus.FAILED,
        None,
        10,
    )


def test_a_canceled_task_takes_no_report_dated_after_its_pause() -> None:
    pause = AT + 30 * MIN
    reports = [(ev.TaskProgressed("k", 7), AT + 29 * MIN), (ev.TaskProgressed("k", 1), pause + MIN)]
    canceled = task_of(dated((CREATED, AT), (STARTED, AT), *reports), (pause,))
    assert canceled is not None
    assert (canceled.status, canceled.nb_remaining_items) == (TaskStatus.CANCELED, 7)


def test_an_event_dated_after_the_end_is_ignored_as_terminal_saying_since_when() -> None:
    before = task_of(dated((CREATED, AT), (STARTED, AT), (FAILED, AT)), ())
    after = task_of(
        dated((CREATED, AT), (STARTED, AT), (FAILED, AT), (ev.TaskProgressed("k", 1), AT + HOUR)),
        (),
    )
    assert before == after
    why = ignored(before, after, ev.TaskProgressed("k", 1))
    assert why is not None
    assert (why.kind, why.reason) == (
        "terminal_state",
        "task is FAILED since 2026-11-20T09:20:00+00:00, a terminal state",
    )


def test_events_that_change_nothing_say_why() -> None:
    running = task(CREATED, STARTED, ev.TaskProgressed("k", 5))
    done = task(CREATED, STARTED, ev.TaskCompleted("k", AT + MIN))

    def why(before: Task | None, event: PerTaskEvent) -> str | None:
        outcome = ignored(before, before, event)
        return None if outcome is None else outcome.kind

    assert why(running, CREATED) == "already_exists"
    assert why(running, STARTED) == "not_pending"
    assert why(running, ev.TaskProgressed("k", 6)) == "progress_rising"
    assert why(running, ev.TaskProgressed("k", 11)) == "progress_above_total"
    assert why(running, ev.TaskProgressed("k", 5)) is None  # the same count is accepted
    assert why(done, ev.TaskFailed("k", AT + 2 * MIN)) == "terminal_state"
    assert why(None, STARTED) is None  # waits for its task
    assert ignored(running, done, ev.TaskCompleted("k", AT + MIN)) is None


minutes = st.integers(min_value=0, max_value=60).map(lambda m: AT + m * MIN)
task_events = st.lists(
    st.one_of(
        st.builds(
            ev.TaskCreated, st.just("k"), st.sampled_from(TaskType), st.integers(0, 20), minutes
        ),
        st.builds(ev.TaskStarted, st.just("k"), minutes),
        st.builds(ev.TaskProgressed, st.just("k"), st.integers(0, 25)),
        st.builds(ev.TaskCompleted, st.just("k"), minutes),
        st.builds(ev.TaskFailed, st.just("k"), minutes, st.sampled_from(["", "quota"])),
    ),
    max_size=8,
)


@given(events=task_events, pauses=st.lists(minutes, max_size=3), data=st.data())
def test_the_task_is_the_same_whatever_order_its_events_and_pauses_come_in(
    events: list[PerTaskEvent], pauses: list[datetime], data: st.DataObject
) -> None:
    versioned = [(event, Version(data.draw(minutes), f"e{i}")) for i, event in enumerate(events)]
    shuffled = data.draw(st.permutations(versioned))
    in_order = reduce(lambda f, p: fold(f, *p), versioned, TaskFacts("k"))
    any_order = reduce(lambda f, p: fold(f, *p), shuffled, TaskFacts("k"))
    again = reduce(lambda f, p: fold(f, *p), shuffled + shuffled, TaskFacts("k"))
    assert any_order == in_order == again
    assert task_of(any_order, data.draw(st.permutations(pauses))) == task_of(in_order, pauses)
