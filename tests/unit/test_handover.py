"""The group member's options and the predecessor it removes at start (consumers/handover.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from consumers.handover import _take_over, client_id, member_options, predecessors
from service.config import Settings, SettingsError

ID = "c0202043-ec82-448c-be6b-a112d542d839"


def test_without_an_instance_name_the_member_keeps_aiokafkas_client_id_and_removes_no_one() -> None:
    settings = Settings()
    assert client_id(settings) is None
    assert "client_id" not in member_options(settings)


def test_an_instance_name_is_the_client_id_and_heartbeats_are_half_a_second_apart() -> None:
    settings = Settings.from_env(
        {"PODIUM_INSTANCE_ID": "podium-consumers-1", "PODIUM_SESSION_TIMEOUT_SECONDS": "4.5"}
    )
    assert member_options(settings) == {
        "client_id": "podium-podium-consumers-1",
        "session_timeout_ms": 4500,
        "heartbeat_interval_ms": 500,
    }


def test_a_session_shorter_than_three_heartbeats_sets_them_to_a_third_of_it() -> None:
    settings = Settings.from_env({"PODIUM_SESSION_TIMEOUT_SECONDS": "1.2"})
    assert member_options(settings)["heartbeat_interval_ms"] == 400


def test_the_session_defaults_to_the_least_kafka_accepts_by_default() -> None:
    assert member_options(Settings())["session_timeout_ms"] == 6000


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_a_session_that_is_not_a_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="PODIUM_SESSION_TIMEOUT_SECONDS"):
        Settings.from_env({"PODIUM_SESSION_TIMEOUT_SECONDS": raw})


def test_predecessors_are_the_members_under_the_same_name_by_client_id_or_member_id() -> None:
    members = [
        (f"podium-a-{ID}", ""),  # Tansu: no client id reported, the member id made from it
        (f"podium-ab-{ID}", ""),  # other instances whose names start alike
        (f"podium-a-b-{ID}", ""),
        ("podium-a-0f3e", ""),  # not a member id a broker made
        ("m-1", "podium-a"),  # Kafka: the client id reported
        ("m-2", "podium-b"),
        (f"podium-a-{ID}x", "podium-b"),  # the reported client id wins over the member id
    ]
    assert predecessors(members, "podium-a") == [f"podium-a-{ID}", "m-1"]
    assert predecessors(members, "podium-c") == []


class FakeAdmin:
    """The admin client's three calls `_take_over` makes, over one described group."""

    def __init__(self, state: str, members: list[tuple[str, str]]) -> None:
        self.group = (0, "g", state, "consumer", "", [(m, c, "", b"", b"") for m, c in members])
        self.left: list[str] = []

    async def find_coordinator(self, group: str) -> int:
        return 1

    async def describe_consumer_groups(
        self, groups: list[str], **coordinator: int
    ) -> list[SimpleNamespace]:
        return [SimpleNamespace(groups=[self.group])]

    async def _send_request_to_node(self, node: int, request: object) -> SimpleNamespace:
        self.left.append(request._member_id)  # type: ignore[attr-defined]
        return SimpleNamespace(error_code=0)


async def test_the_predecessor_is_removed_from_a_group_at_rest_only() -> None:
    members = [(f"podium-a-{ID}", ""), (f"podium-b-{ID}", "")]
    stable = FakeAdmin("Stable", members)
    group, removed = await _take_over(stable, "g", "podium-a")
    assert removed == stable.left == [f"podium-a-{ID}"]
    assert group.others == 1
    rebalancing = FakeAdmin("CompletingRebalance", members)
    group, removed = await _take_over(rebalancing, "g", "podium-a")
    assert removed == rebalancing.left == []
    assert group.others == 2
    nameless = FakeAdmin("Stable", members)
    assert (await _take_over(nameless, "g", None))[1] == []
