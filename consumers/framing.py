"""The Schema Registry wire format, as Confluent's serializers write a value (the default of
the Java, Go and .NET clients and of confluent-kafka's Python `ProtobufSerializer`; Apicurio
writes it too in its Confluent-compatible mode):

    byte 0       magic byte 0
    bytes 1-4    the schema id, big-endian
    for protobuf the message-index list: zigzag varints, a count then the indexes of the
                 message in its .proto file (the single byte 0 stands for [0], the first
                 message); then the binary message
    for JSON     the JSON document (JSON Schema serializers)

Podium knows its schemas, so it never asks a registry what the id means: it takes the frame
off and reads the rest as its topic's envelope (docs/events.md, "Schema Registry"). Neither a
binary envelope nor a JSON document can start with byte 0, so a framed value is never
mistaken for one. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor

MAGIC = b"\x00"
"""The first byte of a framed value."""
HEADER_BYTES = 5
MAX_INDEXES = 100
"""Far more than any nesting of messages; a longer list is a broken frame."""


class FrameError(ValueError):
    """The value starts like a framed one but its frame is broken, or names another message."""


@dataclass(frozen=True, slots=True)
class Framed:
    schema_id: int
    rest: bytes
    """What follows the schema id: for protobuf the message-index list and the message,
    for JSON Schema the document."""


def unframe(value: bytes) -> Framed:
    """The schema id and what follows it, of a value that starts with MAGIC."""
    if len(value) < HEADER_BYTES:
        raise FrameError(
            f"Schema Registry framing (magic byte 0) needs a 4-byte schema id: the value has "
            f"{len(value)} byte(s)"
        )
    return Framed(int.from_bytes(value[1:HEADER_BYTES], "big"), value[HEADER_BYTES:])


def envelope_message(framed: Framed, envelope: Descriptor) -> bytes:
    """The binary message after the message-index list, once the list is seen to name the
    topic's envelope."""
    indexes, offset = _message_indexes(framed.rest)
    expected = envelope_indexes(envelope)
    if indexes != expected:
        raise FrameError(
            f"Schema Registry framing (schema id {framed.schema_id}): the message indexes "
            f"{indexes} name another message than the topic's envelope {envelope.name} "
            f"({expected} in {envelope.file.name})"
        )
    return framed.rest[offset:]


def envelope_indexes(envelope: Descriptor) -> list[int]:
    """The message-index list that names a top-level message: its place in its .proto file
    (our envelopes are each the first message of their file: [0])."""
    return [list(envelope.file.message_types_by_name).index(envelope.name)]


def _message_indexes(rest: bytes) -> tuple[list[int], int]:
    """The message-index list at the start of `rest`, and where the message begins."""
    count, offset = _zigzag(rest, 0)
    if count == 0:  # the shorthand for [0]
        return [0], offset
    if not 0 < count <= MAX_INDEXES:
        raise FrameError(f"Schema Registry framing: a message-index list of {count} entries")
    indexes = []
    for _ in range(count):
        index, offset = _zigzag(rest, offset)
        indexes.append(index)
    return indexes, offset


def _zigzag(data: bytes, offset: int) -> tuple[int, int]:
    """A zigzag varint at `offset`, and the offset after it."""
    value = shift = 0
    for position in range(offset, min(offset + 10, len(data))):
        byte = data[position]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), position + 1
    raise FrameError("Schema Registry framing: the message-index list is cut short or broken")
