"""The one way a test waits for something that happens elsewhere (a fold, a process, a
metric, a broker): `eventually(probe, check)` asks again until the answer holds, and fails
the test, saying what it waited for and what it saw last, when it does not in time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import grpc

T = TypeVar("T")


class _Nothing:
    def __repr__(self) -> str:
        return "nothing (every probe failed)"


_NOTHING = _Nothing()


def _truthy(answer: object) -> bool:
    return bool(answer)


def _shown(value: object, limit: int = 2_000) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], object] = ...,
    *,
    within: float = ...,
    every: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
    unless: Callable[[], str | None] | None = ...,
    what: str = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    check: Callable[[T], object] = ...,
    *,
    within: float = ...,
    every: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
    unless: Callable[[], str | None] | None = ...,
    what: str = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    check: Callable[[Any], object] = _truthy,
    *,
    within: float = 30.0,
    every: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (grpc.aio.AioRpcError,),
    unless: Callable[[], str | None] | None = None,
    what: str = "",
) -> object:
    """The first answer of `probe` (a function or a coroutine function) that `check` holds
    for (without `check`, the first true one), asked every `every` seconds; `AssertionError`
    after `within` seconds.

    A probe raising one of `tolerate` (by default a failed gRPC call) counts as an answer
    not there yet (the state is still on its way: an API not serving, a row not written);
    the last such failure is chained to the final error. `unless` is asked after each miss:
    a reason it gives (a process that exited, with its log) fails the wait at once rather
    than at the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: object = _NOTHING
    failure: BaseException | None = None
    while True:
        try:
            answer = probe()
            if inspect.isawaitable(answer):
                answer = await answer
        except tolerate as error:
            failure = error
        else:
            if check(answer):
                return answer
            last, failure = answer, None
        if unless is not None and (reason := unless()) is not None:
            raise AssertionError(f"{what or 'the wait'} cannot end: {reason}") from failure
        if loop.time() >= deadline:
            seen = _shown(failure if failure is not None else last)
            raise AssertionError(
                f"{what or 'the condition'} did not hold within {within} s; last seen: {seen}"
            ) from failure
        await asyncio.sleep(every)
