"""Write-side stores, one per kind of state; each wraps the unit of work's connection."""

from service.adapters.stores.operations import DeadLetterStore, OffsetStore, VersionStore
from service.adapters.stores.trips import DriverMonthStore, TripStore
from service.adapters.stores.users import UserStore

__all__ = [
    "DeadLetterStore",
    "DriverMonthStore",
    "OffsetStore",
    "TripStore",
    "UserStore",
    "VersionStore",
]
