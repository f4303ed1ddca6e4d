"""Shapes shared by every resource: lists, deleted stubs, errors (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class ListResponse(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a cursor list, newest first. Pass the last id as `starting_after` to get the next page."""

    object: str = "list"
    data: list[T]
    has_more: bool
    url: str


class DeletedObject(msgspec.Struct, kw_only=True):
    id: str
    object: str
    deleted: bool = True


class ErrorDetail(msgspec.Struct, kw_only=True):
    type: str
    code: str
    message: str
    param: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    error: ErrorDetail


L = TypeVar("L", bound=ListResponse[Any])


def page(list_type: type[L], data: Sequence[Any], *, has_more: bool, url: str) -> L:
    """One page of a list, as the resource's own list type (`CustomerList`...), so OpenAPI names it well."""
    return list_type(data=list(data), has_more=has_more, url=url)
