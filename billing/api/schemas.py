"""Shapes shared by every resource: lists, deleted stubs, errors (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")
# The classes of error (SPEC §3): the `type` of billing.errors' exceptions.
ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "not_found",
    "conflict",
    "idempotency_error",
    "card_error",
    "rate_limit_error",
    "api_error",
]


class ListResponse(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a cursor list, newest first. Pass the last id as `starting_after` to get the next page."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    url: str


class DeletedObject(msgspec.Struct, kw_only=True):
    """The answer to deleting an object: its id, its object type and `deleted: true`."""

    id: str
    object: str
    deleted: bool = True


class ErrorDetail(msgspec.Struct, kw_only=True):
    """What went wrong: `type` is the class of error, `code` the exact reason, `message` says what to do, `param`
    names the parameter at fault."""

    type: ErrorType
    code: str
    message: str
    param: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: one `error` object."""

    error: ErrorDetail


L = TypeVar("L", bound=ListResponse[Any])


def page(list_type: type[L], data: Sequence[Any], *, has_more: bool, url: str) -> L:
    """One page of a list, as the resource's own list type (`CustomerList`...), so OpenAPI names it well."""
    return list_type(data=list(data), has_more=has_more, url=url)
