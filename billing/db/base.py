"""The declarative base shared by every table, with constraint names fixed so migrations are reproducible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        dict[str, str]: JSONB,
    }


def id_column(**kwargs: Any) -> Mapped[str]:
    """The primary key: a prefixed random id (billing.ids)."""
    return mapped_column(String(40), primary_key=True, **kwargs)


def seq_column() -> Mapped[int]:
    """Insertion order, for cursor lists: "newest first" means highest seq first, whatever clock made the row."""
    return mapped_column(BigInteger, Identity(always=True), unique=True, nullable=False)
