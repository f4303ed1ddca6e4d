"""At every commit on an engine, check that each event (outbox row) the committing transaction wrote is about a
row that same transaction wrote.

The proof is PostgreSQL's `xmin`, the id of the transaction that inserted or last updated a row version, read
just before COMMIT on the committing connection itself. A row version this transaction can see whose `xmin` is
still in progress can only have been written by this very transaction: another transaction's uncommitted rows
are invisible. Checking at commit time rather than after the fact
- sees rows written in a savepoint of the transaction (their `xmin` is the savepoint's own subtransaction id,
  which after the commit can no longer be told apart from another transaction's id), and
- checks every event, not only the last one about each object (a payment's `payment.created` is committed with
  its pending row; a later transaction settles the row and writes `payment.succeeded`).

Some events are notices about a moment rather than changes of their object (a trial ends in three days): the
transaction that writes them only locks the object's row (`SELECT ... FOR UPDATE`, which sets `xmax` to the
locker). Those are recorded as LOCKED when the row's `xmax` is the id of the (sub)transaction that wrote the
event, and the walk accepts LOCKED only for the types it lists as notices.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.db.base import Base


class Verdict(enum.Enum):
    WRITTEN = "the object's row was written by the event's transaction"
    LOCKED = "the object's row was only locked by the event's transaction"
    GONE = "the object has no row when the event's transaction commits"
    APART = "the object's row was last written by another transaction"


@dataclass(frozen=True)
class Audited:
    event_id: str
    type: str
    object_id: str
    verdict: Verdict


# xid (32 bits) -> xid8 (pg_xact_status takes xid8): the full id nearest to the current transaction's, which
# this transaction's own ids (its savepoints' come after it) always are.
_XID8 = """(CASE WHEN (((c.top >> 32) << 32) | ({x})::text::bigint) - c.top > 2147483648
                 THEN (((c.top >> 32) << 32) | ({x})::text::bigint) - 4294967296
                 WHEN c.top - (((c.top >> 32) << 32) | ({x})::text::bigint) > 2147483648
                 THEN (((c.top >> 32) << 32) | ({x})::text::bigint) + 4294967296
                 ELSE ((c.top >> 32) << 32) | ({x})::text::bigint END)::text::xid8"""
_MINE = "(({x})::text <> '0' AND pg_xact_status(" + _XID8 + ") = 'in progress')"

_EVENTS_OF_THIS_TRANSACTION = f"""
WITH c AS (SELECT pg_current_xact_id_if_assigned()::text::bigint AS top)
SELECT e.id, e.type, e.object_id, e.xmin::text AS xmin
FROM events e, c
WHERE c.top IS NOT NULL AND e.merchant_id = :merchant AND e.seq > :floor AND {_MINE.format(x="e.xmin")}
ORDER BY e.seq
"""


def _tables_with_ids() -> list[str]:
    import billing.api.app
    import billing.worker.settings  # noqa: F401 - with the app, defines every table

    return [
        t.name
        for t in Base.metadata.sorted_tables
        if "id" in t.c and t.c["id"].primary_key and isinstance(t.c["id"].type, String)
    ]


def _object_row_sql() -> str:
    """The object's row, whatever table holds it: its xmax, and whether its xmin is this transaction."""
    selects = [
        f'SELECT {_MINE.format(x="t.xmin")} AS written, t.xmax::text AS xmax FROM "{table}" t, c WHERE t.id = :id'
        for table in _tables_with_ids()
    ]
    return "WITH c AS (SELECT pg_current_xact_id_if_assigned()::text::bigint AS top) " + " UNION ALL ".join(
        selects
    )


@dataclass
class CommitAudit:
    """Install with `with CommitAudit(engine, merchant_id, floor):`; read `audited` (in commit order)."""

    engine: AsyncEngine
    merchant_id: str
    floor: int = 0
    audited: dict[str, Audited] = field(default_factory=dict)
    _object_sql: Any = None

    def __enter__(self) -> CommitAudit:
        self._object_sql = text(_object_row_sql())
        event.listen(self.engine.sync_engine, "commit", self._on_commit)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine.sync_engine, "commit", self._on_commit)

    def _on_commit(self, conn: Connection) -> None:
        mine = conn.execute(
            text(_EVENTS_OF_THIS_TRANSACTION), {"merchant": self.merchant_id, "floor": self.floor}
        ).all()
        for row in mine:
            if row.id in self.audited:
                continue
            found = conn.execute(self._object_sql, {"id": row.object_id}).all()
            if not found:
                verdict = Verdict.GONE
            elif found[0].written:
                verdict = Verdict.WRITTEN
            elif found[0].xmax == row.xmin:
                verdict = Verdict.LOCKED
            else:
                verdict = Verdict.APART
            self.audited[row.id] = Audited(row.id, row.type, row.object_id, verdict)
