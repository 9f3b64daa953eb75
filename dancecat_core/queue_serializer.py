"""A JSON serializer for huey: the queue carries plain values, never pickles.

huey pickles its messages by default, so anyone who can write one row into the queue
(the embedded SQLite file, or Redis) could make a worker run any code while unpickling.
DanceCat's tasks take only ids, so the messages need nothing pickle can do: this serializer
writes JSON of plain values (text, numbers, booleans, null, lists, objects, and datetimes
tagged as ISO text) and reads JSON only. A tampered row can at worst name a registered task
with wrong arguments, which fails that task; bytes that are not such JSON fail to decode,
and huey logs the error and drops the row.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer

_MESSAGE = "$huey_message"
_DATETIME = "$datetime"


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Message):
        return {_MESSAGE: {field: _encode(getattr(value, field)) for field in Message._fields}}
    if isinstance(value, dt.datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _encode(item) for key, item in value.items()}
    raise TypeError(f"a queue message may carry only plain values, not {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {_DATETIME}:
        return dt.datetime.fromisoformat(value[_DATETIME])
    if set(value) == {_MESSAGE}:
        fields = _decode(value[_MESSAGE])
        if not isinstance(fields, dict) or not set(fields) <= set(Message._fields):
            raise ValueError("a queue message has unknown fields")
        if fields.get("args") is not None:
            fields["args"] = tuple(fields["args"])
        return Message(**fields)
    return {key: _decode(item) for key, item in value.items()}


class JsonSerializer(Serializer):
    """huey's ``Serializer`` with JSON of plain values in place of pickle."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":")).encode("utf-8")

    def _deserialize(self, data: bytes) -> Any:
        return _decode(json.loads(data))
