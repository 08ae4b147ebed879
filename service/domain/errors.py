"""What can go wrong for a caller, in the product's words (docs/rules.md#errors).

Each error names its `reason` (the `messageKey` of the public API the family is modelled on)
and its numeric `code` where that API has one; `service.grpc.errors` is the one place that
turns them into gRPC statuses.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class PodiumError(Exception):
    reason: str = "internal"
    code: int | None = None
    field: str | None = None
    """The request field a refusal of the caller's argument is about (a field violation of
    `google.rpc.BadRequest`), as the request message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = {}
        """More for the caller, beside the reason and the code."""


class InternalError(PodiumError):
    """Anything unexpected. The caller gets a generic message and an error id, which the log
    has beside the whole story; nothing of the failure itself (a statement, a host) leaks."""

    def __init__(self, error_id: str) -> None:
        super().__init__(f"Internal error (error id {error_id})")
        self.metadata["error_id"] = error_id


class StorageDown(PodiumError):
    """The database failed the answer's statements (unreachable, a statement timeout): the
    same call later may well succeed. Like an internal error, its id is in the log beside the
    database's own message, which the caller never sees."""

    reason = "storage_unavailable"

    def __init__(self, error_id: str, retry_after: timedelta) -> None:
        super().__init__(f"Storage is unavailable, please retry later (error id {error_id})")
        self.metadata["error_id"] = error_id
        self.retry_after = retry_after


class Unauthenticated(PodiumError):
    reason = "invalid_api_key"
    code = 1

    def __init__(self) -> None:
        super().__init__("Invalid API key")


class FeatureDisabled(PodiumError):
    """The key lacks the scope of the query family."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"{scope.capitalize()} feature is disabled for your account")
        self.reason = f"{scope}_feature_disabled"
        self.code = 2 if scope == "ranking" else None


class InvalidRankType(PodiumError):
    reason = "invalid_rank_type"
    code = 3
    field = "type"

    def __init__(self) -> None:
        super().__init__("Invalid rank type")


class InvalidGroupLabel(PodiumError):
    reason = "invalid_group_label"
    code = 4

    def __init__(self, group: str, field: str = "group_label") -> None:
        """`field`: `group_label` in driver rankings, `group` in challenges."""
        super().__init__(f"Invalid group label: {shortened(group)}")
        self.field = field


class StateNotReady(PodiumError):
    """The first catch-up after start has not finished: answers would be incomplete."""

    reason = "ranking_not_available"
    code = 5

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("Ranking is not yet available, please retry later")
        self.retry_after = retry_after


class ProgressNotAvailable(PodiumError):
    """The challenge has not finished; progress is available from its end."""

    reason = "progress_not_available"

    def __init__(self, available_at: datetime, now: datetime) -> None:
        super().__init__(f"Progress is not available before {available_at.isoformat()}")
        self.available_at = available_at
        self.retry_after = max(available_at - now, timedelta(0))
        self.metadata["retry_after"] = available_at.isoformat().replace("+00:00", "Z")


class NotApplicableForChallenge(PodiumError):
    reason = "not_applicable_for_challenge"

    def __init__(self) -> None:
        super().__init__("Progress is not applicable for a distance challenge")


class NotFound(PodiumError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def challenge_not_found(challenge_id: str) -> NotFound:
    return NotFound("challenge_not_found", f"Challenge {shortened(challenge_id)} not found")


def task_not_found(task_id: str) -> NotFound:
    return NotFound("task_not_found", f"Task {shortened(task_id)} not found")


def path_session_not_found(session_id: str) -> NotFound:
    return NotFound("path_session_not_found", f"Path session {shortened(session_id)} not found")


def user_not_found(user: str) -> NotFound:
    return NotFound("user_not_found", f"User {shortened(user)} not found")


def user_not_enrolled(user: str, session_id: str) -> NotFound:
    return NotFound(
        "user_not_enrolled",
        f"User {shortened(user)} is not enrolled in path session {shortened(session_id)}",
    )


def driver_not_found(user_id: str) -> NotFound:
    return NotFound("driver_not_found", f"Driver {shortened(user_id)} not found in this ranking")


def user_not_registered(user_id: str, challenge_id: str) -> NotFound:
    return NotFound(
        "user_not_registered",
        f"User {shortened(user_id)} is not registered in challenge {shortened(challenge_id)}"
        " (or its group)",
    )


class InvalidArgument(PodiumError):
    """A request field out of its range; `metadata.field` names it."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.metadata["field"] = field


def invalid_month(year: int, number: int, why: str) -> InvalidArgument:
    return InvalidArgument("invalid_month", "month", f"Invalid month {year}-{number:02d}: {why}")


def invalid_page_size(size: int, most: int) -> InvalidArgument:
    return InvalidArgument(
        "invalid_page_size", "page_size", f"Invalid page size {size}: 0 (default) to {most}"
    )


def invalid_page_token(why: str) -> InvalidArgument:
    return InvalidArgument("invalid_page_token", "page_token", f"Invalid page token: {why}")


def invalid_neighbors(neighbors: int, most: int) -> InvalidArgument:
    return InvalidArgument(
        "invalid_neighbors", "neighbors", f"Invalid neighbors {neighbors}: 0 to {most}"
    )


def invalid_top(top: int, most: int) -> InvalidArgument:
    return InvalidArgument("invalid_top", "top", f"Invalid top {top}: 1 to {most}")


class TooManyWatchers(PodiumError):
    """This instance already streams to as many watchers as it may."""

    reason = "too_many_watchers"

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("Too many watchers on this instance, please retry later")
        self.retry_after = retry_after


class InvalidId(PodiumError):
    """An id longer than its bound (or holding a NUL): no such id can be stored, so it is
    refused before any look-up, and only its start is echoed."""

    reason = "invalid_id"

    def __init__(self, field: str, value: str, problem: str) -> None:
        super().__init__(f"Invalid {field}: {shortened(value)} {problem}")
        self.field = field
        self.metadata["field"] = field


class RequestTooLarge(PodiumError):
    reason = "request_too_large"

    def __init__(self, what: str, size: int, max_bytes: int) -> None:
        super().__init__(f"Request too large: {what} of {size:,} bytes, at most {max_bytes:,}")
        self.metadata["max_bytes"] = str(max_bytes)


class TooManyCalls(PodiumError):
    """This instance already runs as many calls as it may."""

    reason = "too_many_calls"

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("Too many calls at once, please retry later")
        self.retry_after = retry_after


class RateLimited(PodiumError):
    """The key is over its rate of calls a second."""

    reason = "rate_limited"

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("Too many calls for this API key, please retry later")
        self.retry_after = retry_after


ECHOED_CHARACTERS = 40
"""How much of a refused value a message quotes."""


def shortened(value: str) -> str:
    """`value` quoted, cut to its first characters with its length when it is long."""
    if len(value) <= ECHOED_CHARACTERS:
        return repr(value)
    return f"{value[:ECHOED_CHARACTERS]!r}... ({len(value):,} characters)"
