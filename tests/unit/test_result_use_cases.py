"""The results use cases on the in-memory ports (docs/rules.md#results-out): which windows a
round records, in how many transactions, and what the relay's marks leave to send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.app.results import mark_sent, record_all_results, record_results, unsent_results
from service.domain.events import ScoreKind
from service.domain.ranking import Month
from service.domain.results import MonthWindow, result_event_id
from service.result_events import encode
from tests.builders import RULES, apply, trip, user
from tests.fakes import FakePorts

OCTOBER = Month(2026, 10)
IN_OCTOBER = datetime(2026, 10, 20, 12, tzinfo=UTC)
OCTOBER_FREEZES = datetime(2026, 11, 2, tzinfo=UTC)
BEFORE = OCTOBER_FREEZES - timedelta(hours=1)


def october_trips(ports: FakePorts, tenant: str) -> None:
    apply(ports, user("ann", "west", tenant=tenant, at=IN_OCTOBER))
    apply(ports, trip(f"{tenant}-1", "ann", tenant=tenant, ended_at=IN_OCTOBER))


def test_each_result_is_written_in_a_transaction_of_its_own_holding_its_tenant(
    ports: FakePorts,
) -> None:
    october_trips(ports, "acme")
    commits, ports.locked = ports.commits, []

    assert record_all_results(ports.results_work, RULES, OCTOBER_FREEZES, encode) == 4

    assert ports.commits - commits == 4
    assert ports.locked == [("acme",)] * 4
    assert len(unsent_results(ports.results_work, 100)) == 4


def test_a_tenants_own_arrivals_freeze_its_months_not_another_tenants(
    ports: FakePorts,
) -> None:
    october_trips(ports, "acme")
    october_trips(ports, "globex")
    apply(ports, user("bob", tenant="acme", at=OCTOBER_FREEZES + timedelta(minutes=5)))

    record_all_results(ports.results_work, RULES, BEFORE, encode)

    windows = {MonthWindow("acme", OCTOBER, kind) for kind in ScoreKind}
    assert set(ports.state.results) == {result_event_id(w) for w in windows}


def test_a_month_without_a_trip_of_the_tenant_gives_no_result(ports: FakePorts) -> None:
    apply(ports, user("ann", "west", at=IN_OCTOBER))

    assert record_results(ports.results_work, RULES, OCTOBER_FREEZES, encode) == []
    assert ports.state.results == {}


def test_a_marked_result_is_not_sent_again_and_a_recorded_one_not_recorded_again(
    ports: FakePorts,
) -> None:
    october_trips(ports, "acme")
    record_all_results(ports.results_work, RULES, OCTOBER_FREEZES, encode)
    first, *rest = unsent_results(ports.results_work, 100)

    mark_sent(ports.results_work, [first.id], OCTOBER_FREEZES + timedelta(minutes=1))

    assert unsent_results(ports.results_work, 100) == rest
    later = OCTOBER_FREEZES + timedelta(days=40)  # November froze too, without a trip
    assert record_all_results(ports.results_work, RULES, later, encode) == 0
    assert unsent_results(ports.results_work, 100) == rest
