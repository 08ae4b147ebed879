"""Hand-over: how soon a restarted consumer folds again, by what the group member is told.

A member killed (kill -9, an OOM kill, a lost node) stays in its consumer group until its
session expires; the replacement's join waits for it, and the broker then rebalances once more
(about 19 s with a 10 s session, measured: `make bench BENCH_ARGS='--section handover'`).
Two things shorten it:

- **A session chosen for it** (`PODIUM_SESSION_TIMEOUT_SECONDS`; heartbeats every half second,
  or every third of a shorter session, so that a member still running hears of a rebalance
  soon).
- **The predecessor removed at start.** A process given a stable name (`PODIUM_INSTANCE_ID`)
  joins under the client id `podium-NAME`; brokers name a member after its client id
  (`CLIENT_ID-UUID`) and describe it with it. Before joining, the process asks the group's
  coordinator to remove any member under its own name: the one its predecessor left behind
  (the name is unique among running members), unless the group is rebalancing. The join then
  waits for no one.

- **The join sent first** (`join`): `podium serve` sends its join request once its topics exist
  and its predecessor is removed, having loaded only the Kafka client and its settings; the
  rest of the process loads, and the schema, the topics and the database's connections are
  readied, while the broker holds the join (the local one for half the session, measured).

Kafka's own static membership (`group.instance.id`) is not used: on the local broker (Tansu)
a member joining with one waits longer than without (8 s instead of 5 s with a 10 s session,
measured), and aiokafka sends no LeaveGroup for a static member that stops, so a clean stop
would leave its partitions unfolded until the session ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

from consumers.assignment import Assignors, assignors, offered_to
from consumers.connection import kafka_options
from consumers.rebalance import Member
from consumers.topics import ensure_topics
from service.app.records import FAMILIES
from service.config import Settings
from service.logs import describe

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "podium-"
UUID_LENGTH = 36
REMOVABLE_STATE = "Stable"
"""A member is removed only from a group at rest. Removed while the group rebalances (killed
between its join and its sync, say), it may stay the leader the broker waits for: the local
broker then answered every later join with the same generation, led by the removed member,
and the group never formed again (seen once in twenty kills, tests/e2e/test_fault_tolerance.py).
Left in place, its session ends and the group forms without it."""
HEARTBEAT_MS = 500
"""Heartbeats at most this far apart (a third of the session when that is shorter): a member
learns that its group rebalances (another member left or joined) at its next heartbeat, and
until it rejoins the partitions moving to it are folded by no one (bench/RESULTS.md, issue
26: two members, one stopped). A heartbeat is one small request to the coordinator."""
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
REMOVE_TIMEOUT_SECONDS = 5.0
"""Reading the group and removing the predecessor is best effort: past this, the join goes
ahead (and waits for the predecessor's session as it would have)."""


def client_id(settings: Settings) -> str | None:
    """The client id the group member joins under: `podium-NAME` with an instance name,
    else aiokafka's own (shared by every client, so it names no one)."""
    return None if settings.instance_id is None else CLIENT_ID_PREFIX + settings.instance_id


def member_options(settings: Settings) -> dict[str, Any]:
    """The consumer group member's options beside the connection's: its client id, session
    and heartbeats (`HEARTBEAT_MS` apart, or a third of the session if shorter)."""
    session_ms = round(settings.session_timeout_seconds * 1000)
    options: dict[str, Any] = {
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": max(min(session_ms // 3, HEARTBEAT_MS), 1),
    }
    name = client_id(settings)
    if name is not None:
        options["client_id"] = name
    return options


def predecessors(members: Iterable[tuple[str, str]], name: str) -> list[str]:
    """The ids of the members (member id, client id) that joined under the client id `name`:
    by the client id the broker reports or, when it reports none (Tansu), by the member id it
    made from it (`name-UUID`)."""
    return [
        member
        for member, client in members
        if client == name or (not client and _made_from(member, name))
    ]


def _made_from(member: str, name: str) -> bool:
    """`member` is `name-UUID` (a member id `name-b-UUID` is another instance's, `name-b`)."""
    head, rest = member[: len(name) + 1], member[len(name) + 1 :]
    if head != name + "-" or len(rest) != UUID_LENGTH:
        return False
    try:
        uuid.UUID(rest)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Group:
    """The consumer group as a process found it before joining."""

    protocol: str
    """The assignor the group runs ('' when empty, or when the broker does not say: Tansu)."""
    others: int | None
    """Its members besides this process's predecessor (None: the group could not be read)."""


async def take_over(settings: Settings) -> Group:
    """Before joining: read the group and remove from it any member under this process's name
    (none without `PODIUM_INSTANCE_ID`). A failure is logged, never raised."""
    name = client_id(settings)
    group = settings.consumer_group
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    try:
        async with asyncio.timeout(REMOVE_TIMEOUT_SECONDS):
            await admin.start()
            found, removed = await _take_over(admin, group, name)
    except (KafkaError, TimeoutError, OSError) as error:
        log.warning(
            "could not read consumer group %s%s (%s)",
            group,
            ""
            if name is None
            else f": joining waits for the session of a member a previous {name} left",
            describe(error),
        )
        return Group("", None)
    finally:
        await admin.close()
    for member in removed:
        log.info(
            "removed member %s, left in consumer group %s by a previous %s",
            member,
            group,
            name,
            extra={"group": group, "member": member},
        )
    return found


async def _take_over(
    admin: AIOKafkaAdminClient, group: str, name: str | None
) -> tuple[Group, list[str]]:
    coordinator = await admin.find_coordinator(group)
    described = await admin.describe_consumer_groups([group], group_coordinator_id=coordinator)
    listed = [g for response in described for g in response.groups if g[1] == group]
    # Each described group: error, id, state, protocol type, protocol, members.
    state, protocol = (listed[0][2], listed[0][4]) if listed else ("", "")
    members = [(member[0], member[1]) for g in listed for member in g[5]]
    found = [] if name is None else predecessors(members, name)
    if found and state != REMOVABLE_STATE:
        log.info(
            "consumer group %s is rebalancing (%s): the member a previous %s left is not "
            "removed, joining waits for its session to expire",
            group,
            state,
            name,
        )
        found = []
    removed = []
    for member in found:
        answer = await admin._send_request_to_node(coordinator, LeaveGroupRequest(group, member))
        if answer.error_code == 0:
            removed.append(member)
        else:
            log.warning(
                "the coordinator refused to remove member %s: error %d", member, answer.error_code
            )
    return Group(protocol, len(members) - len(removed)), removed


def group_member(settings: Settings, offered: Assignors) -> AIOKafkaConsumer:
    """The group member. Offsets live in the database; Kafka's copy is only a mirror for lag
    tools. `auto_offset_reset="none"`: an offset outside the log is reported to the loop,
    which stops the partition and raises the alarm, instead of being silently moved.
    Partitions are handed out by number (`consumers.assignment`), by the assignors `offered`
    (round robin dropped once the group has chosen partition numbers: `offered_to`)."""
    made: list[AIOKafkaConsumer] = []
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        **member_options(settings),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="none",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        partition_assignment_strategy=offered_to(lambda: made[0], offered),
    )
    made.append(consumer)
    return consumer


async def join(settings: Settings) -> Member:
    """Join the consumer group as soon as a process can: its topics made, its predecessor
    removed (`take_over`), the member starting (`Member.join`: it returns at once). The
    broker holds the join for seconds (the local one for half the session), in which the
    process loads and checks the rest: `podium serve` calls this before it imports the
    database's, the API's and the fold's modules, so that they load while it waits
    (bench/RESULTS.md, issue 26)."""
    created = await ensure_topics(settings)
    group = await take_over(settings)
    member = Member(group_member(settings, assignors(group.protocol, group.others)), tuple(created))
    member.join([settings.topic(family) for family in FAMILIES])
    return member
