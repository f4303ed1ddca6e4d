"""How jobs and their results are written into Redis: MessagePack (msgspec), never pickle.

arq pickles by default, and unpickling runs code: anyone able to write to the queue's Redis keys could make every
worker execute what they like. MessagePack decodes to plain data only (strings, numbers, lists, maps), so whatever
reaches Redis, a worker at worst fails to decode a job. Our jobs take and return plain data; an exception that
ends a job is stored as its text.
"""

from __future__ import annotations

from typing import Any

import msgspec


def _plain(value: Any) -> Any:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise NotImplementedError(f"a job argument or result must be plain data, not {type(value).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_plain)
_decoder = msgspec.msgpack.Decoder()


def serialize(value: Any) -> bytes:
    """arq's job_serializer: a job (function name, arguments, times) or a job's result, as MessagePack."""
    return _encoder.encode(value)


def deserialize(data: bytes) -> Any:
    """arq's job_deserializer: plain data only; anything else (a pickle, say) is a decoding error, never run."""
    return _decoder.decode(data)
