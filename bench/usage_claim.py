"""Where the dedupe claim of usage ingestion spends its time (issue 16 item 2): the claim statement of
billing.usage.ingest (5,000 new sorted keys, ON CONFLICT DO NOTHING, RETURNING) against variants, on tables of
`usage_event_keys`'s shape already holding 500,000 keys, each claim in its own transaction, the variants
interleaved round by round so that a shared machine's load falls on all of them alike.

    .venv/bin/python -m bench.usage_claim [--rounds 10]

Variants: the claim as it is (btree on received_at); received_at as a BRIN index; the claim without ORDER BY;
a plain INSERT … RETURNING (no ON CONFLICT: what the speculative insertion costs); key columns in the "C"
collation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass

import asyncpg

from bench.common import record, servers
from billing.usage.ingest import CLAIM

KEYS = 5_000
PRELOAD = 500_000
MERCHANT = "mer_0123456789abcdef"
UNORDERED = """
INSERT INTO {table} (merchant_id, event_id)
SELECT $1, event_id FROM unnest($2::text[]) AS ids(event_id)
ON CONFLICT DO NOTHING
RETURNING event_id
"""
ANTI_JOIN = """
INSERT INTO {table} (merchant_id, event_id)
SELECT $1, event_id FROM unnest($2::text[]) WITH ORDINALITY AS ids(event_id, position)
WHERE NOT EXISTS (SELECT 1 FROM {table} k WHERE k.merchant_id = $1 AND k.event_id = ids.event_id)
ORDER BY position
RETURNING event_id
"""
PLAIN = """
INSERT INTO {table} (merchant_id, event_id)
SELECT $1, event_id FROM unnest($2::text[]) AS ids(event_id)
RETURNING event_id
"""


@dataclass(frozen=True)
class Variant:
    name: str
    received_at_index: str
    collation: str
    statement: str


VARIANTS = (
    Variant("the claim as it is (btree on received_at)", "btree", "", CLAIM),
    Variant("received_at as BRIN", "brin", "", CLAIM),
    Variant("no ORDER BY position", "btree", "", UNORDERED),
    Variant('key columns COLLATE "C"', "btree", ' COLLATE "C"', CLAIM),
    Variant("plain INSERT of the keys not there yet (NOT EXISTS), no ON CONFLICT", "btree", "", ANTI_JOIN),
    Variant("plain INSERT, no ON CONFLICT (not race-safe)", "btree", "", PLAIN),
)


async def run(dsn: str, rounds: int) -> dict[str, list[float]]:
    connection = await asyncpg.connect(dsn)
    tables = {}
    try:
        for n, variant in enumerate(VARIANTS):
            table = f"claim_bench_{n}"
            tables[variant.name] = table
            await connection.execute(
                f"CREATE TABLE {table} (merchant_id text{variant.collation} NOT NULL, event_id text"
                f"{variant.collation} NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (merchant_id, event_id))"
            )
            await connection.execute(
                f"CREATE INDEX ON {table} USING {variant.received_at_index} (received_at)"
            )
            await connection.execute(
                f"INSERT INTO {table} (merchant_id, event_id) "
                f"SELECT '{MERCHANT}', 'pre' || g FROM generate_series(1, {PRELOAD}) g"
            )
            await connection.execute(f"VACUUM ANALYZE {table}")
        times: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
        batch = 0
        for round_ in range(rounds):
            order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                ids = sorted(f"evt_{batch}_{i:05d}" for i in range(KEYS))
                batch += 1
                sql = variant.statement.replace("usage_event_keys", "{table}").format(
                    table=tables[variant.name]
                )
                started = time.perf_counter()
                async with connection.transaction():
                    claimed = await connection.fetch(sql, MERCHANT, ids)
                times[variant.name].append((time.perf_counter() - started) * 1000)
                assert len(claimed) == KEYS
        return times
    finally:
        for table in tables.values():
            await connection.execute(f"DROP TABLE IF EXISTS {table}")
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    load = os.getloadavg()
    with servers() as (database_url, _):
        times = asyncio.run(run(database_url.replace("postgresql+asyncpg://", "postgresql://"), args.rounds))
    base = statistics.median(times[VARIANTS[0].name])
    lines = [
        f"- One claim of {KEYS:,} new sorted keys into a table already holding {PRELOAD:,}, its own "
        f"transaction (commit included), {args.rounds} rounds interleaved; median ms (relative to the claim):",
        *(
            f"  - {name}: **{statistics.median(ts):.1f} ms** ({statistics.median(ts) / base:.2f})"
            for name, ts in times.items()
        ),
        f"- Load average before the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (shared machine)",
    ]
    record("Usage dedupe claim", lines)


if __name__ == "__main__":
    main()
