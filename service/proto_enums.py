"""The one bridge between the protos' shared enums (`podium.v1` common.proto, used by the events
and the API alike) and the domain's: explicit tables, never by number or by name. The API's
conversion (`service.grpc.convert`) and the events' decoding (`consumers.decode`) both read
them, and a test checks each covers its proto enum both ways."""

from __future__ import annotations

from collections.abc import Mapping

from podium.v1 import common_pb2

from service.domain import events as ev

RANKING_TYPES: Mapping[ev.ScoreKind, common_pb2.RankingType] = {
    ev.ScoreKind.SAFETY: common_pb2.RANKING_TYPE_SAFETY,
    ev.ScoreKind.ECO_DRIVING: common_pb2.RANKING_TYPE_ECO_DRIVING,
    ev.ScoreKind.DISTRACTION: common_pb2.RANKING_TYPE_DISTRACTION,
    ev.ScoreKind.SPEEDING: common_pb2.RANKING_TYPE_SPEEDING,
}
CHALLENGE_THEMES: Mapping[ev.ChallengeTheme, common_pb2.ChallengeTheme] = {
    ev.ChallengeTheme.SAFETY: common_pb2.CHALLENGE_THEME_SAFETY,
    ev.ChallengeTheme.ECO_DRIVING: common_pb2.CHALLENGE_THEME_ECO_DRIVING,
    ev.ChallengeTheme.DISTRACTION: common_pb2.CHALLENGE_THEME_DISTRACTION,
    ev.ChallengeTheme.SPEEDING: common_pb2.CHALLENGE_THEME_SPEEDING,
    ev.ChallengeTheme.DISTANCE: common_pb2.CHALLENGE_THEME_DISTANCE,
}
TASK_TYPES: Mapping[ev.TaskType, common_pb2.TaskType] = {
    ev.TaskType.PUSH_FAILED_TRIPS: common_pb2.TASK_TYPE_PUSH_FAILED_TRIPS,
    ev.TaskType.PUSH_FAILED_CRASHES: common_pb2.TASK_TYPE_PUSH_FAILED_CRASHES,
}
THEME_OF: Mapping[int, ev.ChallengeTheme] = {int(n): t for t, n in CHALLENGE_THEMES.items()}
TASK_TYPE_OF: Mapping[int, ev.TaskType] = {int(n): t for t, n in TASK_TYPES.items()}
