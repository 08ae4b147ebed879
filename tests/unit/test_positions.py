"""`consumers.positions`, the one owner of the partitions' positions: what each move does, and
that nothing else can write a position."""

from __future__ import annotations

import dataclasses

import pytest
from aiokafka import TopicPartition

from consumers.positions import Positions, Status

P0 = TopicPartition("podium.trips", 0)


def resolved(stored: int | None = 40, fetch_from: int = 40) -> Positions:
    positions = Positions()
    positions.assign([P0])
    positions.resolve(P0, stored, fetch_from)
    return positions


def test_a_position_is_read_only_outside_positions() -> None:
    position = resolved()[P0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        position.fetched = 99  # type: ignore[misc]


def test_fetching_moves_the_next_offset_expected_and_leaves_the_rest() -> None:
    positions = resolved()
    positions.fetched_to(P0, 55)
    position = positions[P0]
    assert (position.fetched, position.stored, position.consumed) == (55, 40, 40)
    assert position.in_hand


def test_a_skip_only_moves_forward_and_counts_as_consumed_without_being_stored() -> None:
    positions = resolved()
    positions.skipped_to(P0, 60)
    positions.skipped_to(P0, 50)
    position = positions[P0]
    assert (position.skipped_to, position.consumed, position.stored) == (60, 60, 40)


def test_a_commit_stores_the_next_offset() -> None:
    positions = resolved()
    positions.fetched_to(P0, 70)
    positions.committed(P0, 70)
    assert (positions[P0].stored, positions[P0].in_hand) == (70, False)


def test_a_stall_stops_the_partition_at_the_stored_offset_in_a_new_epoch() -> None:
    positions = resolved()
    epoch = positions[P0].epoch
    positions.fetched_to(P0, 70)
    positions.stall(P0, "records at offset 40 cannot be read", 38)
    position = positions[P0]
    assert (position.status, position.stored, position.why_stalled) == (
        Status.STALLED,
        38,
        "records at offset 40 cannot be read",
    )
    assert position.epoch != epoch
    assert not positions.is_current(P0, epoch)
    assert positions.with_status(Status.STALLED) == [P0]


def test_moves_of_a_partition_no_longer_owned_change_nothing() -> None:
    positions = resolved()
    positions.revoke([P0])
    positions.fetched_to(P0, 70)
    positions.skipped_to(P0, 70)
    positions.committed(P0, 70)
    positions.stall(P0, "gone", 1)
    assert P0 not in positions
    assert positions.owned() == []
