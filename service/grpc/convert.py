"""Domain answers -> protobuf responses (the API's one conversion boundary)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from service.app.queries import DriverRanking, MonthRanking
from service.domain.events import TaskStatus
from service.domain.ranking import DriverMonth
from service.domain.standings import Placed, metres_to_km
from service.domain.tasks import Task
from service.gen.podium.v1 import driver_ranking_pb2 as ranking_pb2
from service.gen.podium.v1 import tasks_pb2


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def driver_ranking_response(answer: DriverRanking) -> ranking_pb2.GetDriverRankingResponse:
    return ranking_pb2.GetDriverRankingResponse(
        type=f"RANKING_TYPE_{answer.kind.name}",
        currentMonth=_month(answer.current),
        previousMonth=_month(answer.previous),
    )


def _month(ranking: MonthRanking) -> ranking_pb2.MonthRanking:
    standings = ranking.standings
    return ranking_pb2.MonthRanking(
        monthNumber=ranking.month.number,
        year=ranking.month.year,
        driverRankedNumber=len(standings.ranked),
        driverRanked=[_ranked(p) for p in standings.ranked],
        driverNotRanked=[_unranked(d) for d in standings.not_ranked],
    )


def _ranked(placed: Placed[DriverMonth]) -> ranking_pb2.RankedDriver:
    driver = placed.entrant
    return ranking_pb2.RankedDriver(
        userId=driver.profile.user_id,
        firstname=driver.profile.firstname,
        lastname=driver.profile.lastname,
        pseudo=driver.profile.pseudo,
        rank=placed.rank,
        score=placed.score_hundredths / 100,
        distance=metres_to_km(driver.totals.metres),
        tripNumber=driver.totals.trips,
    )


def _unranked(driver: DriverMonth) -> ranking_pb2.UnrankedDriver:
    return ranking_pb2.UnrankedDriver(
        userId=driver.profile.user_id,
        firstname=driver.profile.firstname,
        lastname=driver.profile.lastname,
        pseudo=driver.profile.pseudo,
        distance=metres_to_km(driver.totals.metres),
        tripNumber=driver.totals.trips,
    )


def task_response(task: Task) -> tasks_pb2.GetTaskResponse:
    response = tasks_pb2.GetTaskResponse(
        taskId=task.task_id,
        createdAt=timestamp(task.created_at),
        type=f"TASK_TYPE_{task.type.name}",
        status=f"TASK_STATUS_{task.status.name}",
        nbItems=task.nb_items,
        nbRemainingItems=task.nb_remaining_items,
    )
    if task.status is TaskStatus.COMPLETED and task.completed_at is not None:
        response.completedAt.CopyFrom(timestamp(task.completed_at))
    return response
