"""What every /v1 request's text must be before any route reads it: UTF-8, JSON nested no deeper than
MAX_JSON_DEPTH, and free of NUL characters. Each refusal is a 400 that says what to fix, instead of a decoder's
exception deep inside the framework (a RecursionError or UnicodeDecodeError there is a 500 with a traceback).

The depth is measured on the raw bytes, without decoding, in passes that each run in C over the body once:
escaped backslashes and escaped quotes are dropped (so every remaining quote opens or closes a string), every
byte but quotes and brackets is deleted, what lies between quotes (string contents) is dropped, and the running
depth is a prefix sum over the brackets left. A body with fewer brackets than the limit is not scanned at all.
(A regular expression cutting the strings out of the whole body cost 36 ms on a 5,000-event usage batch of
800 kB; these passes cost about 4.)
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from billing.errors import InvalidRequest

# Our deepest documented body (a plan's charges with their tiers) nests 4 levels; usage event properties and
# metadata are flat. 32 leaves room without letting a body reach a recursion limit anywhere downstream.
MAX_JSON_DEPTH = 32

_NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')
_DEPTH_STEP = [0] * 256
for _opening in b"[{":
    _DEPTH_STEP[_opening] = 1
for _closing in b"]}":
    _DEPTH_STEP[_closing] = -1


def json_depth(body: bytes) -> int:
    """How deeply `body`'s arrays and objects nest (brackets inside strings do not count)."""
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    # JSON escapes are read in pairs from the left, which is what dropping each pair of backslashes first does;
    # after that, every backslash before a quote escapes it inside a string.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    quotes_and_brackets = unescaped.translate(None, _NOT_QUOTES_OR_BRACKETS)
    # Usually no string holds a bracket: then every string is an adjacent pair of quotes here, and dropping those
    # pairs leaves the brackets alone; otherwise split the strings out exactly.
    brackets = quotes_and_brackets.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(quotes_and_brackets.split(b'"')[::2])
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_request_text(scope: Mapping[str, Any], body: bytes) -> None:
    """Raise InvalidRequest unless the request's path, query and body are text every route can take."""
    query = unquote_to_bytes(scope.get("query_string", b""))
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The query string is not valid UTF-8 once percent-decoded. Encode parameters as UTF-8.",
            code="query_invalid_utf8",
        ) from None
    if body:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(
                f"The request body is not valid UTF-8 (byte {exc.start}). Send JSON encoded as UTF-8, with "
                "Content-Type: application/json.",
                code="body_invalid_utf8",
            ) from None
        if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_depth(body) > MAX_JSON_DEPTH:
            raise InvalidRequest(
                f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep. No parameter "
                "of this API needs that; send the documented shape (see /schema/openapi.json).",
                code="body_too_deep",
            )
    in_body = False
    if b"\\u0000" in body or b"\x00" in body:
        try:
            in_body = _contains_nul(msgspec.json.decode(body))
        except msgspec.DecodeError:
            in_body = False  # not JSON: the route's own validation answers
    if "\x00" in scope.get("path", "") or b"\x00" in query or in_body:
        raise InvalidRequest(
            "The request contains a NUL character (\\u0000), which no field accepts. Remove it.",
            code="nul_character",
        )
