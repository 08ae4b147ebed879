"""`service.domain.frozen`: the same frozen dataclass as `dataclass(frozen=True, slots=True)`,
whichever `__init__` it ends up with."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.frozen import frozen


@frozen
class Trip:
    trip_id: str
    km: float
    note: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PlainTrip:
    trip_id: str
    km: float
    note: str | None = None


@frozen(order=True)
class Moment:
    day: int
    event_id: str


@frozen
class Checked:
    count: int

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("negative")


@given(st.text(), st.floats(allow_nan=False), st.none() | st.text())
def test_made_as_the_dataclass_would_make_it(trip_id: str, km: float, note: str | None) -> None:
    made, plain = Trip(trip_id, km, note), PlainTrip(trip_id, km, note)
    assert dataclasses.astuple(made) == dataclasses.astuple(plain)
    assert made == Trip(trip_id, km, note=note)
    assert hash(made) == hash(Trip(trip_id, km, note))
    assert repr(made) == repr(plain).replace("PlainTrip", "Trip")


def test_defaults_and_keywords_as_declared() -> None:
    assert Trip("t", 1.0) == Trip(km=1.0, trip_id="t", note=None)
    assert str(inspect.signature(Trip)) == str(inspect.signature(PlainTrip))
    with pytest.raises(TypeError):
        Trip("t")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Trip("t", 1.0, None, "more")  # type: ignore[call-arg]


def test_frozen_slotted_ordered_and_replaceable() -> None:
    trip = Trip("t", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trip.km = 2.0  # type: ignore[misc]
    assert not hasattr(trip, "__dict__")
    assert dataclasses.replace(trip, km=2.0) == Trip("t", 2.0)
    assert pickle.loads(pickle.dumps(trip)) == trip
    assert sorted([Moment(2, "a"), Moment(1, "b"), Moment(1, "a")]) == [
        Moment(1, "a"),
        Moment(1, "b"),
        Moment(2, "a"),
    ]


def test_a_post_init_still_runs() -> None:
    assert Checked(1).count == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
