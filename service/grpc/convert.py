"""Domain answers -> protobuf responses (the API's one conversion boundary)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from service.app.queries import ChallengeProgress, ChallengeRanking, MonthRanking
from service.domain.challenges import Entry, ProgressLine
from service.domain.events import TaskStatus
from service.domain.paths import PathStats
from service.domain.ranking import Profile
from service.domain.standings import Placed, metres_to_km
from service.domain.tasks import Task
from service.gen.podium.v1 import challenges_pb2, paths_pb2, tasks_pb2
from service.gen.podium.v1 import driver_ranking_pb2 as ranking_pb2


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def month_ranking_message(ranking: MonthRanking) -> ranking_pb2.MonthRanking:
    """Entries are added in place: building each apart and copying it into the list costs
    twice as much for a 10,000-driver month."""
    standings = ranking.standings
    message = ranking_pb2.MonthRanking(
        monthNumber=ranking.month.number,
        year=ranking.month.year,
        driverRankedNumber=len(standings.ranked),
    )
    add_ranked = message.driverRanked.add
    for placed in standings.ranked:
        driver = placed.entrant
        add_ranked(
            userId=driver.profile.user_id,
            firstname=driver.profile.firstname,
            lastname=driver.profile.lastname,
            pseudo=driver.profile.pseudo,
            rank=placed.rank,
            score=placed.score_hundredths / 100,
            distance=metres_to_km(driver.tally.metres),
            tripNumber=driver.tally.trips,
        )
    add_unranked = message.driverNotRanked.add
    for driver in standings.not_ranked:
        add_unranked(
            userId=driver.profile.user_id,
            firstname=driver.profile.firstname,
            lastname=driver.profile.lastname,
            pseudo=driver.profile.pseudo,
            distance=metres_to_km(driver.tally.metres),
            tripNumber=driver.tally.trips,
        )
    return message


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


def _profile(profiles: dict[str, Profile], user_id: str) -> Profile:
    return profiles.get(user_id, Profile(user_id))


def challenge_ranking_response(
    answer: ChallengeRanking,
) -> challenges_pb2.GetChallengeRankingResponse:
    challenge, standings = answer.challenge, answer.standings

    def ranked(placed: Placed[Entry]) -> challenges_pb2.ChallengeRankedUser:
        entry, who = placed.entrant, _profile(answer.profiles, placed.entrant.user_id)
        return challenges_pb2.ChallengeRankedUser(
            username=entry.user_id,
            firstname=who.firstname,
            lastname=who.lastname,
            pseudo=who.pseudo,
            registerDate=timestamp(entry.registered_at),
            numberTrips=entry.during.trips,
            distance=metres_to_km(entry.during.metres),
            rank=placed.rank,
            score=placed.score_hundredths / 100,
        )

    def unranked(entry: Entry) -> challenges_pb2.ChallengeUnrankedUser:
        who = _profile(answer.profiles, entry.user_id)
        return challenges_pb2.ChallengeUnrankedUser(
            username=entry.user_id,
            firstname=who.firstname,
            lastname=who.lastname,
            pseudo=who.pseudo,
            registerDate=timestamp(entry.registered_at),
            numberTrips=entry.during.trips,
            distance=metres_to_km(entry.during.metres),
        )

    return challenges_pb2.GetChallengeRankingResponse(
        challengeId=challenge.challenge_id,
        group=answer.group,
        theme=f"CHALLENGE_THEME_{challenge.theme.name}",
        startDate=timestamp(challenge.start_at),
        endDate=timestamp(challenge.end_at),
        registeredUsers=answer.registered,
        rankedUsers=len(standings.ranked),
        users=[ranked(p) for p in standings.ranked],
        usersNotRanked=[unranked(e) for e in standings.not_ranked],
    )


def challenge_progress_response(
    answer: ChallengeProgress,
) -> challenges_pb2.GetChallengeProgressResponse:
    progress = answer.progress

    def line(item: ProgressLine) -> challenges_pb2.UserRankedWithProgress:
        entry, who = item.entry, _profile(answer.profiles, item.entry.user_id)
        return challenges_pb2.UserRankedWithProgress(
            username=entry.user_id,
            firstname=who.firstname,
            lastname=who.lastname,
            registerDate=timestamp(entry.registered_at),
            numberTrips=entry.during.trips,
            distance=metres_to_km(entry.during.metres),
            rank=item.rank,
            score=item.score_hundredths / 100,
            scoreBefore=item.score_before_hundredths / 100,
            scoreEvolution=item.evolution_hundredths / 100,
        )

    return challenges_pb2.GetChallengeProgressResponse(
        challengeId=answer.challenge.challenge_id,
        group=answer.group,
        registeredUsers=progress.registered_users,
        rankedUsers=progress.ranked_users,
        usersWithDataBefore=progress.users_with_data_before,
        totalDistance=metres_to_km(progress.total_metres),
        totalNumberTrips=progress.total_trips,
        users=[line(item) for item in progress.users],
    )


def path_stats_response(answer: PathStats) -> paths_pb2.GetPathSessionStatsResponse:
    response = paths_pb2.GetPathSessionStatsResponse(
        progress=answer.progress,
        globalTime=answer.global_time_ms,
        score=answer.score,
        status=f"PATH_STATUS_{answer.status.name}",
        detailedStatus=paths_pb2.DetailedStatus(
            type=f"DETAILED_STATUS_TYPE_{answer.detailed_type.name}",
            reason=(
                f"DETAILED_STATUS_REASON_{answer.detailed_reason.name}"
                if answer.detailed_reason
                else "DETAILED_STATUS_REASON_UNSPECIFIED"
            ),
        ),
        result=f"PATH_RESULT_{answer.result.name}" if answer.result else "PATH_RESULT_UNSPECIFIED",
    )
    if answer.completed_at is not None:
        response.completedAt.CopyFrom(timestamp(answer.completed_at))
    if answer.archived_at is not None:
        response.archivedAt.CopyFrom(timestamp(answer.archived_at))
    return response
