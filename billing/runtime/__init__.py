"""Process runtime helpers: embedded PostgreSQL and Redis servers for `billing up` and the tests (SPEC §2)."""

from billing.runtime.embedded import (
    DEFAULT_DATABASE,
    DEFAULT_MAX_CONNECTIONS,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    ensure_database,
)

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_MAX_CONNECTIONS",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "ensure_database",
]
