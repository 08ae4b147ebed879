"""Any request to any method, with any metadata, answers one of the codes of the product's
error table (docs/rules.md#errors), never UNKNOWN nor INTERNAL, always with Podium's
`ErrorInfo`, and never with an internal detail (a traceback, a statement, a type name) or
a whole huge value in its message.

Requests are generated from the methods' descriptors: random strings (huge ones and NUL
characters included), enum numbers (unknown ones included), nested messages; metadata
missing, garbage, huge or a real key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2

from service.domain.auth import ApiKey
from tests import profiles
from tests.api import KEY, NOW, TENANT, api, guard

PARTIAL_KEY = "pod_fedcba9876543210_" + "p" * 43
"""A key with the ranking and tasks scopes only."""

ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
GRPCS_OWN_REFUSALS = ("received metadata size exceeds", "Received message larger than max")
LEAKS = ("Traceback", "Exception", "Error(", "sqlalchemy", "psycopg", 'File "', "SELECT ")

METHODS: list[MethodDescriptor] = [
    method
    for module in (driver_ranking_pb2, challenges_pb2, tasks_pb2, paths_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def find(key: str) -> ApiKey | None:
    scopes = {KEY: {"ranking", "challenges", "tasks", "paths"}, PARTIAL_KEY: {"ranking", "tasks"}}
    found = scopes.get(key)
    return None if found is None else ApiKey(key[4:20], TENANT, frozenset(found), NOW)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """The API on an event loop of its own thread, so the test can call it synchronously."""
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()
    port: list[int] = []

    async def serve() -> None:
        async with api(gate=guard(find)) as bound:
            port.append(bound)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"127.0.0.1:{port[0]}"
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


TEXTS = st.one_of(
    st.text(max_size=30),
    st.text(min_size=150, max_size=400),
    st.text(max_size=10).map(lambda s: s + "\x00" + s),
    st.integers(1_000, 40_000).map(lambda n: "x" * n),
    st.sampled_from(["", "c1", "north", "t1", "ann@example.com"]),
)


def field_values(field: Any, depth: int) -> st.SearchStrategy[Any]:
    """Values for one field (a `FieldDescriptor`)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        one: st.SearchStrategy[Any] = TEXTS
    elif kind == FieldDescriptor.TYPE_ENUM:
        one = st.one_of(
            st.sampled_from([v.number for v in field.enum_type.values]),
            st.integers(-(2**31), 2**31 - 1),
        )
    elif kind == FieldDescriptor.TYPE_BOOL:
        one = st.booleans()
    elif kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        one = st.integers(-(2**31), 2**31 - 1)
    elif kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        one = st.integers(-(2**63), 2**63 - 1)
    elif kind == FieldDescriptor.TYPE_UINT32:
        one = st.integers(0, 2**32 - 1)
    elif kind == FieldDescriptor.TYPE_UINT64:
        one = st.integers(0, 2**64 - 1)
    elif kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        one = st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    elif kind == FieldDescriptor.TYPE_MESSAGE and depth < 3:
        one = messages(field.message_type, depth + 1)
    else:
        raise AssertionError(f"no values for {field.full_name}")
    if field.is_repeated:
        return st.lists(one, max_size=3)
    return one


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    fields = {f.name: field_values(f, depth) for f in descriptor.fields}

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            target: Any = getattr(message, name)
            if isinstance(value, Message):
                target.CopyFrom(value)
            elif isinstance(value, list):
                target.extend(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
KEYS = st.one_of(
    st.none(),
    st.sampled_from([KEY, PARTIAL_KEY, "", "pod_", KEY.upper()]),
    ASCII,
    st.from_regex(r"pod_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", fullmatch=True),
    st.integers(1_000, 100_000).map(lambda n: "pod_" + "k" * n),
)
EXTRA = st.lists(st.tuples(st.from_regex(r"x-[a-z0-9-]{1,20}", fullmatch=True), ASCII), max_size=3)


@st.composite
def calls(draw: st.DrawFn) -> tuple[MethodDescriptor, Message, list[tuple[str, str]]]:
    method = draw(st.sampled_from(METHODS))
    request = draw(messages(method.input_type))
    key = draw(KEYS)
    metadata = draw(EXTRA)
    if key is not None:
        metadata.append(("x-api-key", key))
    return method, request, metadata


def first_answer(
    channel: grpc.Channel,
    method: MethodDescriptor,
    path: str,
    request: Message,
    metadata: list[tuple[str, str]],
) -> None:
    """Call the method; of a stream (a watch), take the first message and hang up."""
    data, sent = request.SerializeToString(), tuple(metadata)
    if not method.server_streaming:
        unary: Any = channel.unary_unary(path)
        unary(data, metadata=sent, timeout=10)
        return
    streaming: Any = channel.unary_stream(path)
    stream = streaming(data, metadata=sent, timeout=10)
    next(stream)
    stream.cancel()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # huge reprs
@settings(
    max_examples=profiles.examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(call=calls())
def test_any_request_answers_a_known_code_with_podiums_details_and_no_internals(
    address: str, call: tuple[MethodDescriptor, Message, list[tuple[str, str]]]
) -> None:
    method, request, metadata = call
    path = f"/{method.containing_service.full_name}/{method.name}"
    with grpc.insecure_channel(address) as channel:
        try:
            first_answer(channel, method, path, request, metadata)
        except grpc.RpcError as error:
            failed: Any = error
        else:
            return
    code, message = failed.code(), failed.details() or ""
    assert code in ANSWERS, (code, message)
    assert not any(leak in message for leak in LEAKS), message
    assert len(message) < 300, message[:300]
    status = rpc_status.from_call(failed)
    if status is None and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert message.startswith(GRPCS_OWN_REFUSALS), message  # beyond gRPC's own caps
        return
    assert status is not None, (code, message)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "podium"
    assert info.reason
