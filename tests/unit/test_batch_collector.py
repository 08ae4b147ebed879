"""The cyclic collector while batches are folded: off with a batch in hand, the young
generation collected once per batch and the older ones on CPython's schedule, on again when
nothing is in hand, and left alone if it was off already."""

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


@pytest.mark.usefixtures("thresholds")
def test_each_batch_collects_the_young_and_the_older_generations_on_their_thresholds() -> None:
    collector = BatchCollector()
    collector.pause()
    before = collections()
    for _ in range(2):
        collector.batch_done()
    assert [a - b for a, b in zip(collections(), before, strict=True)] == [2, 1, 0]
    for _ in range(4):
        collector.batch_done()
    assert [a - b for a, b in zip(collections(), before, strict=True)] == [6, 2, 1]
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
