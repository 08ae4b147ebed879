from __future__ import annotations

from collections.abc import Callable

from service.grpc.answers import Assembled, Memo, ResponseCache


class Ticking:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_served_while_its_state_version_holds() -> None:
    cache: ResponseCache[bytes] = ResponseCache(fresh_enough=0.0)
    cache.put("ranking", 3, b"answer")
    assert cache.get("ranking", 3) == b"answer"
    assert cache.get("ranking", 4) is None


def test_a_very_young_answer_is_served_even_after_the_state_moved() -> None:
    cache: ResponseCache[bytes] = ResponseCache(fresh_enough=60.0)
    cache.put("ranking", 3, b"answer")
    assert cache.get("ranking", 4) == b"answer"


def test_an_older_answer_is_rebuilt_once_the_state_moved() -> None:
    clock = Ticking()
    cache: ResponseCache[bytes] = ResponseCache(fresh_enough=0.01, clock=clock)
    cache.put("ranking", 3, b"answer")
    clock.now += 0.02
    assert cache.get("ranking", 4) is None
    assert cache.get("ranking", 3) == b"answer"


def test_the_least_recently_used_answers_leave_first() -> None:
    cache: ResponseCache[bytes] = ResponseCache(max_entries=2, fresh_enough=0.0)
    cache.put("a", 1, b"a")
    cache.put("b", 1, b"b")
    assert cache.get("a", 1) == b"a"
    cache.put("c", 1, b"c")
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (b"a", None, b"c")


def test_a_recent_answer_of_any_version_can_stand_in_while_the_next_is_built() -> None:
    cache: ResponseCache[bytes] = ResponseCache()
    cache.put("ranking", 3, b"answer")
    assert cache.recent("ranking", max_age=60.0) == b"answer"
    assert cache.recent("ranking", max_age=0.0) is None
    assert cache.recent("other", max_age=60.0) is None


def test_a_memo_loads_once_per_key_and_forgets_the_oldest_keys() -> None:
    loads: list[str] = []
    memo: Memo[str] = Memo(max_entries=2)

    def loader(value: str) -> Callable[[], str]:
        def load() -> str:
            loads.append(value)
            return value

        return load

    assert memo.get(("acme", 1), loader("v1")) == "v1"
    assert memo.get(("acme", 1), loader("again")) == "v1"
    assert memo.get(("acme", 2), loader("v2")) == "v2"
    memo.get(("beta", 1), loader("b1"))
    assert memo.get(("acme", 1), loader("v1 reloaded")) == "v1 reloaded"
    assert loads == ["v1", "v2", "b1", "v1 reloaded"]


def test_a_cheap_answer_is_rebuilt_as_soon_as_the_state_moves() -> None:
    clock = Ticking()
    cache: ResponseCache[bytes] = ResponseCache(fresh_enough=60.0, clock=clock)
    cache.put("probe", 3, b"cheap", build_seconds=0.001)
    cache.put("big", 3, b"expensive", build_seconds=30.0)
    clock.now += 0.01
    assert cache.get("probe", 4) is None
    assert cache.get("big", 4) == b"expensive"


def test_a_response_is_joined_once_while_its_parts_are_the_same_answers() -> None:
    assembled, joins = Assembled(), []
    current, previous = bytes(range(200)), b"previous month"

    def join() -> bytes:
        joins.append(1)
        return current + previous

    first = assembled.get("ranking", (current, previous), join)
    again = assembled.get("ranking", (current, previous), join)

    assert again is first
    assert len(joins) == 1


def test_a_new_answer_among_the_parts_joins_the_response_anew() -> None:
    assembled = Assembled()
    older, newer = bytes(range(200)), bytes(range(200))  # equal figures, another build
    assembled.get("ranking", (older,), lambda: b"from the older build")

    assert assembled.get("ranking", (newer,), lambda: b"from the newer build") == (
        b"from the newer build"
    )
