"""Every proto enum value maps to exactly one domain value and back: the tables in
`service.proto_enums` (the enums events and answers share) and `service.grpc.convert` are the
only bridge, and decoding reads the same ones."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import pytest
from google.protobuf.descriptor import EnumDescriptor
from podium.v1 import common_pb2, paths_pb2

from service import proto_enums
from service.domain.errors import InvalidRankType
from service.domain.events import ScoreKind
from service.grpc import convert

TABLES: list[tuple[Mapping[Any, int], EnumDescriptor]] = [
    (proto_enums.RANKING_TYPES, common_pb2.RankingType.DESCRIPTOR),
    (proto_enums.CHALLENGE_THEMES, common_pb2.ChallengeTheme.DESCRIPTOR),
    (proto_enums.TASK_TYPES, common_pb2.TaskType.DESCRIPTOR),
    (convert.TASK_STATUSES, common_pb2.TaskStatus.DESCRIPTOR),
    (convert.PATH_STATUSES, paths_pb2.PathStatus.DESCRIPTOR),
    (convert.PATH_RESULTS, paths_pb2.PathResult.DESCRIPTOR),
    (convert.DETAILED_TYPES, paths_pb2.DetailedStatusType.DESCRIPTOR),
    (convert.DETAILED_REASONS, paths_pb2.DetailedStatusReason.DESCRIPTOR),
]


@pytest.mark.parametrize(("table", "proto"), TABLES, ids=[p.name for _, p in TABLES])
def test_every_proto_value_but_unspecified_has_one_domain_value_and_back(
    table: Mapping[Any, int], proto: EnumDescriptor
) -> None:
    specified = {v.number for v in proto.values if v.number != 0}
    assert sorted(table.values()) == sorted(specified)
    domain: type[Enum] = type(next(iter(table)))
    assert set(table) == set(domain)
    names = {v.number: v.name for v in proto.values}
    for value, number in table.items():
        assert names[number].endswith(value.name)


def test_a_ranking_type_is_read_from_its_proto_value_and_unknown_ones_are_refused() -> None:
    assert convert.ranking_type(common_pb2.RANKING_TYPE_ECO_DRIVING) is ScoreKind.ECO_DRIVING
    for number in (common_pb2.RANKING_TYPE_UNSPECIFIED, 9):
        with pytest.raises(InvalidRankType):
            convert.ranking_type(number)
