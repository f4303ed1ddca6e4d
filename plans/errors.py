"""The one error type of the catalog mathematics: `CatalogError`, a `ValueError` naming the field at fault.

`param` is the field's path as the API spells it (``charges[0].tiers[2].up_to``), `message` says what to
change, and `code` is a stable machine-readable reason. The HTTP layer maps it to an ``invalid_request_error``
(SPEC §3) without parsing the message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


class CatalogError(ValueError):
    """Invalid catalog, pricing or calendar input: `param` is the field path, `message` what to do."""

    def __init__(self, message: str, *, param: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __repr__(self) -> str:
        return f"CatalogError(param={self.param!r}, code={self.code!r}, message={self.message!r})"


def join_path(prefix: str, name: str) -> str:
    """Append a field name (``tiers[0]``, ``up_to``) to a parameter path, e.g. ``charges[1]`` + ``tiers``."""
    if not prefix:
        return name
    if name.startswith("["):
        return f"{prefix}{name}"
    return f"{prefix}.{name}"


def parse_choice(enum_type: type[E], value: object, *, param: str) -> E:
    """Return the member of `enum_type` whose value is `value`; raise a CatalogError listing the choices."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        for member in enum_type:
            if member.value == value:
                return member
    choices = ", ".join(repr(member.value) for member in enum_type)
    raise CatalogError(f"{param} must be one of {choices}; got {value!r}", param=param)
