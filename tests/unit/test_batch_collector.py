"""The cyclic collector while batches are folded: off with a batch in hand, the young
generation collected after a batch once every few seconds and the older ones on CPython's
schedule, on again when nothing is in hand, and left alone if it was off already."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from consumers.collector import BatchCollector


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(1_000_000, 2, 3)
    gc.collect()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.enable()


def collections() -> list[int]:
    return [generation["collections"] for generation in gc.get_stats()]


@pytest.mark.usefixtures("thresholds")
def test_a_batch_in_hand_turns_automatic_collection_off_until_nothing_is_in_hand() -> None:
    collector = BatchCollector()
    collector.pause()
    assert not gc.isenabled()
    collector.pause()  # the next batch fetched while this one is applied
    collector.batch_done()
    assert not gc.isenabled()
    collector.resume()
    assert gc.isenabled()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.usefixtures("thresholds")
def test_the_young_generation_once_an_interval_the_older_on_their_thresholds() -> None:
    clock = Clock()
    collector = BatchCollector(every_seconds=5.0, clock=clock)
    collector.pause()
    before = collections()
    for _ in range(3):  # batches within the interval: nothing collected
        clock.now += 1.0
        collector.batch_done()
    assert collections() == before
    for _ in range(6):  # each batch after the interval: the young, then the older on schedule
        clock.now += 5.0
        collector.batch_done()
        clock.now += 1.0
        collector.batch_done()
    assert [a - b for a, b in zip(collections(), before, strict=True)] == [6, 2, 1]
    collector.resume()


@pytest.mark.usefixtures("thresholds")
def test_the_interval_counts_from_when_automatic_collection_was_turned_off() -> None:
    clock = Clock()
    collector = BatchCollector(every_seconds=5.0, clock=clock)
    clock.now += 60.0  # idle, collected automatically meanwhile
    collector.pause()
    before = collections()
    clock.now += 1.0
    collector.batch_done()
    assert collections() == before
    clock.now += 4.0
    collector.batch_done()
    assert collections()[0] == before[0] + 1
    collector.resume()


@pytest.mark.usefixtures("thresholds")
def test_a_collector_turned_off_elsewhere_is_left_off_and_not_collected() -> None:
    gc.disable()
    collector = BatchCollector()
    collector.pause()
    before = collections()
    collector.batch_done()
    collector.resume()
    assert not gc.isenabled()
    assert collections() == before
