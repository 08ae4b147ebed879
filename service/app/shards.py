"""Which writers of one tenant may fold at once (docs/rules.md#writers-of-one-tenant).

State that spans users (profiles, challenges, path sessions) is changed only under the
tenant's exclusive lock. Everything else a batch reads and then writes belongs to one user (a
trip, a driver month, an entry, a learner) or one task; it is guarded by the lock of its
bucket, taken under the tenant's lock held shared. A key's bucket is the partition the
producers' partitioner (Kafka's default, murmur2, unless told otherwise) gives it among as many
partitions as the topics have, so a batch of a partition of a well-keyed topic locks that
partition's bucket alone, and two members folding different partitions never wait for each
other; a record keyed or partitioned otherwise still locks its key's own bucket, so
correctness never depends on the producers.

The state versions a per-user batch moves are sharded by the same buckets (a writer of a
bucket is alone in it): a shard's version moves on by exactly one per batch that changes it,
so a driver month stamped with its shard's next version is found by every reader that
remembers the shard's version it reflects (`stamp`, `shard_range`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from service.domain import events as ev

CATALOG_EVENTS = (ev.UserUpserted, ev.ChallengePublished, ev.PathSessionPublished)
"""Events whose fold spans users: their tenant's batch holds the tenant's lock exclusively."""

STAMP_SHARD_BITS = 40
"""A driver month's `changed_in` is its shard's version plus the shard shifted by this much:
the stamps of one shard are one range of the column's index."""

_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as an unsigned 32-bit
    int (the partitioner keeps its low 31 bits)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


BUCKET_CACHE = 1 << 17
"""Keys whose bucket is remembered: murmur2 in Python costs 3-4 us a key, more than the rest of
`locks_of`'s work on an event. A tenant of 100,000 drivers fits (about 19 MiB when full); at
65,536, a replay of 100,000 drivers missed on about two fifths of its look-ups (bench/RESULTS.md,
"Growth at 10x on SQLite")."""


@functools.lru_cache(maxsize=BUCKET_CACHE)
def bucket(key: str, buckets: int, partitioner: str = "murmur2") -> int:
    """The partition `partitioner` gives a record keyed `key` among `buckets` partitions:
    Kafka's default (murmur2: Java, aiokafka, `podium produce`) or librdkafka's (crc32: its
    `consistent_random`, confluent-kafka's default)."""
    if partitioner == "crc32":
        return zlib.crc32(key.encode()) % buckets
    return (murmur2(key.encode()) & 0x7FFFFFFF) % buckets


class Buckets(NamedTuple):
    """How many lock buckets a database's writers share, and the partitioner that puts a key
    in one: every writer uses the same (agreed in the database)."""

    number: int
    partitioner: str = "murmur2"

    def of(self, key: str) -> int:
        return bucket(key, self.number, self.partitioner)

    def __str__(self) -> str:
        return f"{self.number} {self.partitioner}"

    @classmethod
    def parse(cls, text: str) -> Buckets:
        number, _, partitioner = text.partition(" ")
        return cls(int(number), partitioner or "murmur2")


ONE_BUCKET = Buckets(1)
"""For a database with one writer."""


def stamp(shard: int, version: int) -> int:
    """A driver month's `changed_in`: changed by the batch that moved its shard to `version`."""
    return (shard << STAMP_SHARD_BITS) + version


def shard_range(shard: int, since: int) -> tuple[int, int]:
    """The stamps of the shard's changes after its version `since`: above the first, below
    the second."""
    return stamp(shard, since), stamp(shard + 1, 0)


@dataclass
class Locks:
    """What a batch locks: the tenants it holds exclusively, and for the others (held shared)
    the buckets it holds."""

    exclusive: set[str] = field(default_factory=set)
    buckets: dict[str, set[int]] = field(default_factory=dict)

    def shards(self, tenant: str) -> list[int]:
        """The buckets of a tenant held shared (none when held exclusively)."""
        return sorted(self.buckets.get(tenant, ()))


def locks_of(events: Iterable[ev.Event], buckets: Buckets) -> Locks:
    """The locks a batch of these events takes: its tenant exclusively when it holds a
    catalog event of the tenant, else the buckets of the users and tasks its events name.
    One pass over the batch, an event's owner read by its kind's field (`owner`)."""
    exclusive: set[str] = set()
    owners: dict[str, set[str]] = {}
    owner_fields = _OWNER_FIELDS
    for event in events:
        payload = event.payload
        kind = type(payload)
        field_name = owner_fields.get(kind, _UNKNOWN)
        if field_name is _UNKNOWN:
            field_name = owner_fields[kind] = _owner_field(kind)
        tenant = event.meta.tenant_id
        if field_name is _CATALOG:
            exclusive.add(tenant)
            continue
        keys = owners.get(tenant)
        if keys is None:
            keys = owners[tenant] = set()
        if field_name is not None:
            keys.add(getattr(payload, field_name))
    # A key's bucket once per batch, however many of its events the batch holds.
    held = {
        tenant: {buckets.of(key) for key in keys}
        for tenant, keys in owners.items()
        if tenant not in exclusive
    }
    return Locks(exclusive, held)


def owner(payload: object) -> str | None:
    """Whose state an event reads and writes: its user's, or its task's (None: a pause, which
    only adds a fact)."""
    user = getattr(payload, "user_id", None)
    if isinstance(user, str):
        return user
    task = getattr(payload, "task_id", None)
    return task if isinstance(task, str) else None


_CATALOG = "catalog"
_UNKNOWN = "unknown"
_OWNER_FIELDS: dict[type, str | None] = {kind: _CATALOG for kind in CATALOG_EVENTS}
"""By kind of event: the field naming its owner (`owner`: `user_id` or `task_id`; None for
none), or `_CATALOG` for the catalog's events, which lock their tenant. Filled as kinds are
met."""


def _owner_field(kind: type) -> str | None:
    """The field that names a kind's owner, read from the fields it declares (`owner` reads
    the same ones: `user_id`, else `task_id`), so it never depends on the first event seen."""
    declared = {f.name for f in fields(kind)}
    return next((name for name in ("user_id", "task_id") if name in declared), None)
