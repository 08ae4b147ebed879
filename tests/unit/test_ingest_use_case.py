"""One consumed batch through `apply_batch`, on the fakes: one transaction, offsets fenced,
tenants locked, versions moved for what changed, nothing kept by a dry run."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import get_args

import pytest

from service.app.ingest import FAMILIES, Batch, apply_batch
from service.app.ports import OffsetMoved
from service.app.shards import Buckets, Locks
from service.app.state_versions import month_key, profiles_key, shard_key, tenant_key
from service.domain import events as ev
from service.domain.ranking import Month
from tests.builders import RULES, T0, received, trip, user
from tests.fakes import FakePorts, State

TRIPS = ("podium.trips", 0)


def test_a_batch_commits_its_state_and_its_offsets_together(ports: FakePorts) -> None:
    batch = Batch(received=received([trip("t1", "ann")]), offsets={TRIPS: (None, 8)})
    applied = apply_batch(ports.unit_of_work, batch, rules=RULES, consumer_group="g", now=T0)
    assert (applied.folded, ports.commits) == (1, 1)
    assert list(ports.state.trips) == [("acme", "t1")]
    with ports.read() as read:
        assert read.stored_offsets("g") == {TRIPS: 8}


def test_a_dry_run_folds_the_batch_and_keeps_nothing(ports: FakePorts) -> None:
    batch = Batch(received=received([user("ann"), trip("t1", "ann")]), offsets={TRIPS: (None, 8)})
    applied = apply_batch(
        ports.unit_of_work, batch, rules=RULES, consumer_group="g", now=T0, dry_run=True
    )
    assert applied.folded == 2
    assert (ports.state, ports.commits) == (State(), 0)


def test_a_batch_whose_partition_another_consumer_moved_writes_nothing(ports: FakePorts) -> None:
    first = Batch(received=received([trip("t1", "ann")]), offsets={TRIPS: (None, 8)})
    apply_batch(ports.unit_of_work, first, rules=RULES, consumer_group="g", now=T0)
    before = ports.state
    stale = Batch(received=received([trip("t2", "ann")]), offsets={TRIPS: (5, 9)})
    with pytest.raises(OffsetMoved):
        apply_batch(ports.unit_of_work, stale, rules=RULES, consumer_group="g", now=T0)
    assert ports.state is before


def test_a_batch_locks_its_tenants_and_moves_the_versions_of_what_it_changed(
    ports: FakePorts,
) -> None:
    """A tenant with a catalog event is held exclusively and moves its own versions; the
    others are held shared with their drivers' buckets and move those buckets' shards."""
    events = [
        user("ann", tenant="beta"),
        trip("t0", "ann", tenant="beta"),
        trip("t1", "ann"),
        trip("t2", "bob", tenant="gamma"),
        trip("t3", "cid", tenant="gamma"),
    ]
    buckets = Buckets(16)
    apply_batch(
        ports.unit_of_work,
        Batch(received=received(events)),
        rules=RULES,
        consumer_group="g",
        now=T0,
        buckets=buckets,
    )
    ann, bob, cid = (buckets.of(u) for u in ("ann", "bob", "cid"))
    assert len({ann, bob, cid}) == 3  # the test's drivers fall in buckets of their own
    assert ports.locked == [("acme", "beta", "gamma")]
    assert ports.locks == [Locks({"beta"}, {"acme": {ann}, "gamma": {bob, cid}})]
    november = Month(2026, 11)
    beta_at, beta_trip_at, t1_at, _, t3_at = (e.meta.arrived_at for e in events)
    in_acme, in_beta = month_key("acme", november), month_key("beta", november)
    in_gamma = month_key("gamma", november)
    with ports.read() as read:
        assert read.state_versions() == {
            tenant_key("acme"): (1, t1_at),
            shard_key(tenant_key("acme"), ann): (1, t1_at),
            tenant_key("beta"): (1, beta_trip_at),
            profiles_key("beta"): (1, beta_at),
            tenant_key("gamma"): (2, t3_at),
            shard_key(tenant_key("gamma"), bob): (1, t3_at),
            shard_key(tenant_key("gamma"), cid): (1, t3_at),
            in_acme: (1, t1_at),
            shard_key(in_acme, ann): (1, t1_at),
            in_beta: (1, beta_trip_at),
            shard_key(in_beta, ann): (1, beta_trip_at),
            in_gamma: (2, t3_at),
            shard_key(in_gamma, bob): (1, t3_at),
            shard_key(in_gamma, cid): (1, t3_at),
        }


def test_every_kind_of_event_has_its_family() -> None:
    kinds = {
        kind for family in FAMILIES for kind in (family if isinstance(family, tuple) else (family,))
    }
    assert kinds == set(get_args(ev.Payload))
    assert sum(len(f) if isinstance(f, tuple) else 1 for f in FAMILIES) == len(kinds)


def test_a_record_off_its_users_bucket_is_told_once(
    ports: FakePorts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The lock buckets follow the producers' partitions, or consumers wait for each other:
    a record on another partition than its user's bucket says so, once per process."""
    monkeypatch.setattr("service.app.ingest._OFF_BUCKETS_WARNED", [])
    buckets = Buckets(16)
    on, off = (trip("t1", "ann"), trip("t2", "bob"))
    placed = [
        replace(item, record=replace(item.record, partition=partition))
        for item, partition in zip(
            received([on, off]), [buckets.of("ann"), (buckets.of("bob") + 1) % 16], strict=True
        )
    ]
    fold = functools.partial(
        apply_batch, ports.unit_of_work, rules=RULES, consumer_group="g", now=T0, buckets=buckets
    )
    with caplog.at_level("WARNING", logger="service.app.ingest"):
        fold(Batch(received=placed[:1]))
        assert caplog.records == []
        fold(Batch(received=placed))
        fold(Batch(received=placed))
    [warning] = caplog.records
    assert "is on partition" in warning.getMessage()
    assert "PODIUM_LOCK_PARTITIONER" in warning.getMessage()
