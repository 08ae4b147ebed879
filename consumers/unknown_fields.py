"""Fields a JSON record carries that Podium's contracts lack: taken out before json_format
reads the rest, as binary protobuf sets them aside, so that a producer that adds a field
before Podium knows it keeps folding (docs/events.md, "Evolving the events"); and named, so
that the consumer loop can count and report them.

A field's path runs from the envelope down, by the JSON names of the fields Podium knows and
the unknown one as the record spells it (`schemaVersion`, `tripCompleted.vehicleId`,
`pathSessionPublished.steps.hint`); a repeated message's items share one path.

Binary records are not looked into: protobuf's Python API shows a message's unknown fields
only message by message (`UnknownFieldSet`), and visiting every nested message of an
envelope costs several times what parsing it does.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

WELL_KNOWN = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
"""Google's messages: proto3 JSON writes them as strings, and they never grow a field."""


def field_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


@functools.cache
def _json_keys(descriptor: Descriptor) -> dict[str, tuple[str, Descriptor | None, bool]]:
    """Each key json_format reads as a field of the message (its JSON name or its name in
    the .proto file) -> the field's JSON name, its message type when it is one of Podium's
    (whose keys are looked at in turn), and whether it is repeated."""
    keys: dict[str, tuple[str, Descriptor | None, bool]] = {}
    for field in descriptor.fields:
        nested = _podiums_message(field)
        known = (field.json_name, nested, field.is_repeated)
        keys[field.name] = keys[field.json_name] = known
    return keys


def _podiums_message(field: FieldDescriptor) -> Descriptor | None:
    message = field.message_type
    if message is None or message.full_name in WELL_KNOWN:
        return None
    return message


def drop_from_json(document: object, descriptor: Descriptor) -> list[str]:
    """Take the members that name no field out of a JSON envelope, at any depth, and return
    their paths. Only what json_format would read as a message is looked into: a value of
    another type is left for json_format to refuse."""
    unknown: list[str] = []
    if type(document) is dict:
        _drop(document, descriptor, "", unknown)
    return unknown


def _drop(members: dict[str, Any], descriptor: Descriptor, parent: str, unknown: list[str]) -> None:
    keys = _json_keys(descriptor)
    for key in list(members):
        known = keys.get(key)
        if known is None:
            unknown.append(field_path(parent, key))
            del members[key]
            continue
        json_name, nested, repeated = known
        if nested is None:
            continue
        value, path = members[key], field_path(parent, json_name)
        if not repeated and type(value) is dict:
            _drop(value, nested, path, unknown)
        elif repeated and type(value) is list:
            for item in value:
                if type(item) is dict:
                    _drop(item, nested, path, unknown)
