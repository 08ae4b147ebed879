"""`frozen`: a frozen, slotted dataclass whose construction costs half as much.

A frozen dataclass sets each field in `__init__` through `object.__setattr__` (its own
`__setattr__` refuses), looked up anew for every field: about 1.1 us for six fields, against
0.26 us for a mutable one. The ingest makes several such values per event (the record, the
event and its parts, the trip's facts, its change): 12 % of the CPU a trip took
(bench/RESULTS.md). `frozen` makes the same frozen dataclass and gives it an `__init__` that
sets each slot through the slot's own descriptor, bound once: the same object, as frozen and
as checked (mypy reads it as `dataclass(frozen=True)`), made in about half the time.

Used by the values made once per event or more on the ingest path (`service.domain.events`,
`service.domain.trips`, `service.app.records`, ...); elsewhere a plain frozen dataclass is as
good. Where the fast `__init__` cannot stand in for the generated one (a `__post_init__`, a
default factory, an init-only or keyword-only field), the generated one is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


@overload
def frozen(cls: type[T], /) -> type[T]: ...
@overload
def frozen(*, order: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def frozen(cls: type[T] | None = None, /, *, order: bool = False) -> Any:
    """`@dataclass(frozen=True, slots=True)` (with `order` if asked), constructed faster."""

    def make(cls: type[T]) -> type[T]:
        made = dataclasses.dataclass(frozen=True, slots=True, order=order)(cls)
        fast = _fast_init(made)
        if fast is not None:
            made.__init__ = fast  # type: ignore[method-assign]
        return made

    return make if cls is None else make(cls)


def _fast_init(cls: type[Any]) -> Callable[..., None] | None:
    """An `__init__` setting each field through its slot's descriptor, or None where the
    generated one must stay."""
    fields = dataclasses.fields(cls)
    if not fields or hasattr(cls, "__post_init__"):
        return None
    if any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING for f in fields):
        return None
    setters = [f"_set{n}" for n in range(len(fields))]
    scope: dict[str, Any] = {}
    parameters = []
    for n, field in enumerate(fields):
        if field.default is dataclasses.MISSING:
            parameters.append(field.name)
        else:
            scope[f"_default{n}"] = field.default
            parameters.append(f"{field.name}=_default{n}")
    body = "".join(f"        {s}(self, {f.name})\n" for s, f in zip(setters, fields, strict=True))
    source = (  # the setters are the closure's cells: read as fast as locals
        f"def make({', '.join(setters)}):\n"
        f"    def __init__(self, {', '.join(parameters)}):\n{body}"
        "    return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, scope, namespace)
    init: Callable[..., None] = namespace["make"](*(getattr(cls, f.name).__set__ for f in fields))
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)  # the generated one's
    return init
