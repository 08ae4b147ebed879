"""Limits of what one call may ask of an instance (docs/rules.md#limits): the size of its
request and metadata, how many calls run at once, and ids no longer than their bound. Each
refusal is a domain error turned into a status in `service.grpc.errors`. Health and
reflection stay free of them.

The per-key rate is checked with the key (`service.grpc.auth`), which comes before the count
of calls at once: a refused key waits out its delay without holding a call's place."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import Message

from service.domain.bounds import EMAIL_MAX_LENGTH, ID_MAX_BYTES, ID_MAX_LENGTH
from service.domain.errors import InvalidId, RequestTooLarge, TooManyCalls
from service.grpc.cache import CALL_DEADLINE
from service.grpc.errors import abort
from service.grpc.intercept import (
    Behaviour,
    Context,
    Continuation,
    Handler,
    around,
    is_query,
    is_streaming,
    refusal,
)

RETRY_WHEN_BUSY = timedelta(milliseconds=250)
"""The `RetryInfo` of `too_many_calls`: a call takes milliseconds, so a slot is soon free."""

METADATA_ENTRY_OVERHEAD = 32
"""What each metadata entry costs beside its name and value (HTTP/2's own accounting)."""

ID_FIELDS = {
    "group_label": ID_MAX_LENGTH,
    "group": ID_MAX_LENGTH,
    "challenge_id": ID_MAX_LENGTH,
    "task_id": ID_MAX_LENGTH,
    "session_id": ID_MAX_LENGTH,
    "user_id": ID_MAX_LENGTH,
    "user_email_or_id": EMAIL_MAX_LENGTH,
}
"""The request fields that name something stored, and their bound in characters (an email
may be longer than an id)."""


@dataclass(frozen=True, slots=True)
class Oversized:
    """Stands for a request message longer than allowed: it is never parsed."""

    size: int


def grpc_options(max_request_bytes: int) -> list[tuple[str, int]]:
    """gRPC's own limits, set well above ours so that ours answer first, with the reason
    `request_too_large`; beyond these gRPC refuses on its own (RESOURCE_EXHAUSTED too,
    without details) before anything is read into Python. They hold for health and
    reflection too, which ours leave alone: at least 1 MiB for a message and 64 KiB of
    metadata."""
    metadata = max(4 * max_request_bytes, 64 * 1024)
    return [
        ("grpc.max_receive_message_length", max(4 * max_request_bytes, 1 << 20)),
        ("grpc.max_metadata_size", metadata),
        ("grpc.absolute_max_metadata_size", metadata),
    ]


class MetadataSize(grpc.aio.ServerInterceptor):
    """The outermost interceptor: metadata over the limit is refused as the call comes in,
    before its key is looked at."""

    def __init__(self, max_request_bytes: int) -> None:
        self._max_bytes = max_request_bytes

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details):
            return handler
        size = sum(
            len(key) + len(value) + METADATA_ENTRY_OVERHEAD
            for key, value in details.invocation_metadata or ()
        )
        if size > self._max_bytes:
            return refusal(handler, RequestTooLarge("metadata", size, self._max_bytes))
        return handler


class CallLimits(grpc.aio.ServerInterceptor):
    """Counts an authenticated call against `max_calls` for as long as it runs, refuses an
    oversized request message (never parsed), and notes the call's deadline for the
    statements it will run. A stream (a watcher) is not counted: it runs for as long as its
    caller likes, and has a limit of its own (`service.grpc.watchers`)."""

    def __init__(self, max_calls: int, max_request_bytes: int) -> None:
        self._max_calls = max_calls
        self._max_bytes = max_request_bytes
        self._running = 0

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details):
            return handler
        parse: Any = handler.request_deserializer
        limit = self._max_bytes

        def sized(data: bytes) -> Any:
            return Oversized(len(data)) if len(data) > limit else parse(data)

        counted = not is_streaming(handler)
        return around(handler, lambda behaviour: self._limited(behaviour, counted), sized)

    def _limited(self, behaviour: Behaviour, counted: bool) -> Behaviour:
        async def limited(request: Any, context: Context) -> Any:
            if counted and self._running >= self._max_calls:
                await abort(context, TooManyCalls(RETRY_WHEN_BUSY))
            if isinstance(request, Oversized):
                await abort(context, RequestTooLarge("message", request.size, self._max_bytes))
            self._running += counted
            remaining = context.time_remaining()
            token = CALL_DEADLINE.set(
                None if remaining is None else asyncio.get_running_loop().time() + remaining
            )
            try:
                return await behaviour(request, context)
            finally:
                CALL_DEADLINE.reset(token)
                self._running -= counted

        return limited


class IdBounds(grpc.aio.ServerInterceptor):
    """Ids longer than their bound (or with a NUL) are `invalid_id`: nothing stored can have
    them, and echoing them whole would make the answer as large as the request. Runs after
    the key is checked."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details):
            return handler
        return around(handler, _checked_ids)


def _checked_ids(behaviour: Behaviour) -> Behaviour:
    async def checked(request: Any, context: Context) -> Any:
        if isinstance(request, Message):
            error = invalid_id(request)
            if error is not None:
                await abort(context, error)
        return await behaviour(request, context)

    return checked


def invalid_id(request: Message) -> InvalidId | None:
    """The first id field of `request` out of its bounds, as an error (None: all fine)."""
    for field in request.DESCRIPTOR.fields:
        bound = ID_FIELDS.get(field.name)
        if bound is None:
            continue
        value = getattr(request, field.name)
        if not isinstance(value, str):
            continue
        if len(value) > bound:
            return InvalidId(field.name, value, f"is longer than {bound} characters")
        if "\x00" in value:
            return InvalidId(field.name, value, "contains a NUL character")
        if bound == ID_MAX_LENGTH and len(value.encode("utf-8")) > ID_MAX_BYTES:
            return InvalidId(field.name, value, f"is longer than {ID_MAX_BYTES} bytes")
    return None
