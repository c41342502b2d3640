"""Checks on the text inside decoded requests that apply to every RPC."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.errors import FieldViolation, InvalidArgumentError


def nul_field(message: Message, prefix: str = "") -> str | None:
    """The path of the first string field (at any depth) holding a NUL character, else None.

    PostgreSQL cannot store NUL in text, and no legitimate value carries one."""
    for field, value in message.ListFields():
        path = prefix + field.name
        items = value if field.is_repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            if any("\x00" in item for item in items):
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                items = [v for v in value.values() if isinstance(v, Message)]
            for item in items:
                found = nul_field(item, path + ".")
                if found:
                    return found
    return None


def reject_nul(message: Message) -> None:
    """Raises INVALID_ARGUMENT (INVALID_CHARACTER) naming a field that holds a NUL."""
    path = nul_field(message)
    if path is not None:
        raise InvalidArgumentError(
            "a field contains a NUL character",
            reason="INVALID_CHARACTER",
            violations=[FieldViolation(path, "must not contain NUL characters")],
        )
