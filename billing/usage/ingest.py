"""Ingesting usage events: validate each event, then write the valid ones exactly once per (merchant, event id).

`ingest_usage_events` is the use case. Its cost is flat in round trips whatever the batch size: one query
resolves every customer (ids and external_ids, with their test clocks' time), one resolves every meter; the
events are checked in plain Python; then ONE statement claims the valid events' ids in `usage_event_keys` (a plain
INSERT of the ids not there yet, returning the ids it claimed) and one COPY puts the rows whose id was claimed into
`usage_events`. It runs in the caller's transaction (the request's), so the events are
visible, and billable, the moment the request commits, and not at all if it does not.

Exactly once under races: the primary key of `usage_event_keys` makes a second transaction inserting the same
key wait for the first one. The claim inserts, in a savepoint, only the ids no committed key holds (NOT EXISTS):
if a concurrent batch commits one of them meanwhile, the insert fails on the primary key, the savepoint is rolled
back and the ids are claimed again key by key with ON CONFLICT DO NOTHING, which skips the key (first committed)
or takes it (first rolled back). The plain insert is the common case: ON CONFLICT's speculative insertion cost
two thirds more per key (bench/usage_claim.py). Keys are claimed in event id order, so two batches sharing ids in
different orders cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Aggregation
from billing.clock import SYSTEM_CLOCK, Clock
from billing.usage.schemas import MAX_EVENT_ID_LENGTH, UsageEventBatch, UsageEventError, UsageEventIn
from plans.usage import MAX_EVENT_AGE

# An event may be this old on its customer's clock; the dedupe keys are kept longer than that (maintenance.py),
# so a late retry of an accepted event is always recognized.
# Clients' clocks drift: a little future is tolerated, more is a bug in the sender.
MAX_EVENT_FUTURE = timedelta(minutes=5)
MAX_KEY_LENGTH = 256
MAX_TIMESTAMP_LENGTH = 64
MAX_VALUE_TEXT_LENGTH = 64
# Quantities are bounded so that any aggregate of them stays priceable in integer minor units.
MAX_VALUE = Decimal(10) ** 15
MAX_VALUE_DECIMALS = 12
_MAX_INT_VALUE = int(MAX_VALUE)

_VALUE_AGGREGATIONS = frozenset(
    {Aggregation.SUM.value, Aggregation.MAX.value, Aggregation.LAST.value, Aggregation.AVG.value}
)
_UNIQUE_COUNT = Aggregation.UNIQUE_COUNT.value
_EMPTY_PROPERTIES = "{}"
_INVALID = object()
MAX_PROPERTIES_BYTES = 8192
MAX_PROPERTY_NUMBER_EXPONENT = 1000

EVENT_COLUMNS = (
    "merchant_id",
    "event_id",
    "customer_id",
    "meter_id",
    "timestamp",
    "value",
    "properties",
    "received_at",
)
# Keys are claimed in the order of the ids array, which the caller sorts (see the module's docstring). CLAIM_NEW
# is the common case; CLAIM, the fallback when a concurrent batch committed one of the ids meanwhile.
CLAIM_NEW = """
INSERT INTO usage_event_keys (merchant_id, event_id)
SELECT $1, event_id FROM unnest($2::text[]) WITH ORDINALITY AS ids(event_id, position)
WHERE NOT EXISTS (SELECT 1 FROM usage_event_keys k WHERE k.merchant_id = $1 AND k.event_id = ids.event_id)
ORDER BY position
RETURNING event_id
"""
CLAIM = """
INSERT INTO usage_event_keys (merchant_id, event_id)
SELECT $1, event_id FROM unnest($2::text[]) WITH ORDINALITY AS ids(event_id, position) ORDER BY position
ON CONFLICT DO NOTHING
RETURNING event_id
"""
_CUSTOMERS = """
SELECT c.id, c.external_id, c.test_clock_id, t.frozen_time
FROM customers c LEFT JOIN test_clocks t ON t.id = c.test_clock_id
WHERE c.merchant_id = $1 AND c.deleted_at IS NULL AND (c.id = ANY($2::text[]) OR c.external_id = ANY($2::text[]))
"""
_METERS = (
    "SELECT id, code, aggregation, property FROM meters WHERE merchant_id = $1 AND code = ANY($2::text[])"
)


@dataclass(frozen=True, slots=True)
class CustomerRef:
    id: str
    # The test clock's frozen time for a test-clock customer: its events live in that time.
    clock_now: datetime | None


@dataclass(frozen=True, slots=True)
class MeterRef:
    id: str
    code: str
    aggregation: str
    property: str | None


class EventRejected(Exception):
    """One event is refused; the others of its request go on."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


Row = tuple[str, str, str, datetime, Decimal | None, str, datetime]


@dataclass
class Checked:
    rows: list[Row] = field(default_factory=list)
    errors: list[UsageEventError] = field(default_factory=list)
    duplicates_in_request: int = 0


async def ingest_usage_events(
    session: AsyncSession,
    merchant_id: str,
    events: Sequence[UsageEventIn],
    *,
    param_prefix: str = "events",
    clock: Clock = SYSTEM_CLOCK,
) -> UsageEventBatch:
    """Accept the valid events of `events` once each (per merchant and id), report the others by index.

    `param_prefix` names the events in error params ("events[3].value"); "" for a single event ("value").
    `clock` is the real-time clock for customers without a test clock."""
    connection = await _driver_connection(session)
    customers = await resolve_customers(connection, merchant_id, _keys(e.customer for e in events))
    meters = await resolve_meters(connection, merchant_id, _keys(e.meter for e in events))
    checked = check_events(events, customers, meters, wall_now=clock.now(), param_prefix=param_prefix)
    inserted = await write_events(connection, merchant_id, checked.rows) if checked.rows else 0
    return UsageEventBatch(
        accepted=inserted,
        duplicates=checked.duplicates_in_request + len(checked.rows) - inserted,
        errors=checked.errors,
    )


async def _driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction (SQLAlchemy has no COPY)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


def _keys(values: Iterable[Any]) -> list[str]:
    return list({v for v in values if isinstance(v, str) and 0 < len(v) <= MAX_KEY_LENGTH})


async def resolve_customers(connection: Any, merchant_id: str, keys: list[str]) -> dict[str, CustomerRef]:
    """Each key (a cus_ id or an external_id) of a live customer of this merchant → the customer. An id wins
    over an equal external_id of another customer."""
    if not keys:
        return {}
    by_external: dict[str, CustomerRef] = {}
    by_id: dict[str, CustomerRef] = {}
    for record in await connection.fetch(_CUSTOMERS, merchant_id, keys):
        customer = CustomerRef(id=record["id"], clock_now=record["frozen_time"])
        by_id[customer.id] = customer
        if record["external_id"] is not None:
            by_external[record["external_id"]] = customer
    return by_external | by_id


async def resolve_meters(connection: Any, merchant_id: str, codes: list[str]) -> dict[str, MeterRef]:
    """Meter code → meter, archived ones included (subscriptions already charging for them go on)."""
    if not codes:
        return {}
    return {
        record["code"]: MeterRef(
            id=record["id"],
            code=record["code"],
            aggregation=record["aggregation"],
            property=record["property"],
        )
        for record in await connection.fetch(_METERS, merchant_id, codes)
    }


def check_events(
    events: Sequence[UsageEventIn],
    customers: dict[str, CustomerRef],
    meters: dict[str, MeterRef],
    *,
    wall_now: datetime,
    param_prefix: str = "events",
) -> Checked:
    """Validate every event; valid ones become staging rows, the first of each id only (a later copy of an
    id in the same request is a duplicate, like a copy in an earlier request)."""
    checked = Checked()
    rows = checked.rows
    seen: set[str] = set()
    for index, event in enumerate(events):
        try:
            row = check_event(event, customers, meters, wall_now)
        except EventRejected as rejected:
            param = f"{param_prefix}[{index}].{rejected.field}" if param_prefix else rejected.field
            checked.errors.append(
                UsageEventError(index=index, code=rejected.code, message=rejected.message, param=param)
            )
            continue
        if row[0] in seen:
            checked.duplicates_in_request += 1
            continue
        seen.add(row[0])
        rows.append(row)
    return checked


def check_event(
    event: UsageEventIn, customers: dict[str, CustomerRef], meters: dict[str, MeterRef], wall_now: datetime
) -> Row:
    """The staging row of one valid event, or EventRejected naming the first problem found."""
    event_id = _event_id(event.id)
    customer = _customer(event.customer, customers)
    meter = _meter(event.meter, meters)
    now = customer.clock_now or wall_now
    timestamp = _timestamp(event.timestamp, now)
    value = _value(event.value, meter)
    properties = _properties(event.properties, meter)
    return (event_id, customer.id, meter.id, timestamp, value, properties, now)


def _event_id(value: Any) -> str:
    if value is None:
        raise EventRejected(
            "missing_id", "id is required: your own unique id for this event, used to drop duplicates.", "id"
        )
    if not isinstance(value, str) or not 0 < len(value) <= MAX_EVENT_ID_LENGTH:
        raise EventRejected(
            "invalid_id",
            f"id must be a string of 1 to {MAX_EVENT_ID_LENGTH} characters, unique per event in your account.",
            "id",
        )
    return value


def _customer(value: Any, customers: dict[str, CustomerRef]) -> CustomerRef:
    if value is None:
        raise EventRejected(
            "missing_customer",
            "customer is required: the customer's id (cus_...) or your external_id.",
            "customer",
        )
    if not isinstance(value, str):
        raise EventRejected(
            "invalid_customer",
            "customer must be a string: the customer's id (cus_...) or external_id.",
            "customer",
        )
    customer = customers.get(value)
    if customer is None:
        raise EventRejected(
            "unknown_customer",
            f"No customer with id or external_id '{value[:MAX_KEY_LENGTH]}' in this account. Create the "
            "customer first (POST /v1/customers), or check the API key's account.",
            "customer",
        )
    return customer


def _meter(value: Any, meters: dict[str, MeterRef]) -> MeterRef:
    if value is None:
        raise EventRejected(
            "missing_meter", "meter is required: the code of the meter this usage counts for.", "meter"
        )
    if not isinstance(value, str):
        raise EventRejected("invalid_meter", "meter must be a string: a meter's code.", "meter")
    meter = meters.get(value)
    if meter is None:
        raise EventRejected(
            "unknown_meter",
            f"No meter with code '{value[:MAX_KEY_LENGTH]}' in this account. Create it first (POST /v1/meters) "
            "or check the code's spelling.",
            "meter",
        )
    return meter


def _timestamp(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    timestamp: datetime | None = None
    if isinstance(value, str) and len(value) <= MAX_TIMESTAMP_LENGTH:
        try:
            timestamp = datetime.fromisoformat(value)
        except ValueError:
            timestamp = None
    if timestamp is None or timestamp.tzinfo is None:
        raise EventRejected(
            "invalid_timestamp",
            "timestamp must be an RFC 3339 date-time with an offset, e.g. '2026-11-25T10:00:00Z'; omit it to "
            "use the current time.",
            "timestamp",
        )
    if timestamp < now - MAX_EVENT_AGE:
        raise EventRejected(
            "timestamp_too_old",
            f"timestamp {_iso(timestamp)} is more than 35 days before now ({_iso(now)}): usage that old is not "
            "accepted any more. Report usage within 35 days of when it happened.",
            "timestamp",
        )
    if timestamp > now + MAX_EVENT_FUTURE:
        raise EventRejected(
            "timestamp_in_future",
            f"timestamp {_iso(timestamp)} is more than 5 minutes after now ({_iso(now)}): send usage once it "
            "happened, and check the sender's clock. A test-clock customer's now is its clock's time.",
            "timestamp",
        )
    return timestamp


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _value(value: Any, meter: MeterRef) -> Decimal | None:
    if value is None:
        if meter.aggregation in _VALUE_AGGREGATIONS:
            raise EventRejected(
                "missing_value",
                f"value is required for meter '{meter.code}', which aggregates with "
                f"{meter.aggregation}: send the quantity as a number.",
                "value",
            )
        return None
    if type(value) is int and 0 <= value < _MAX_INT_VALUE:  # the common case, without Decimal arithmetic
        return Decimal(value)
    number: Decimal | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str) and len(value) <= MAX_VALUE_TEXT_LENGTH:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        raise EventRejected(
            "invalid_value",
            "value must be a finite number, or a decimal number as a string (e.g. 12 or '0.125').",
            "value",
        )
    exponent = number.as_tuple().exponent
    if number < 0 or number >= MAX_VALUE or (isinstance(exponent, int) and exponent < -MAX_VALUE_DECIMALS):
        raise EventRejected(
            "invalid_value",
            f"value must be zero or more, below 10^15, with at most {MAX_VALUE_DECIMALS} decimal places.",
            "value",
        )
    return number


def _check_number(literal: str) -> None:
    """A number inside properties must fit PostgreSQL's numeric (jsonb stores numbers as numeric)."""
    if not -MAX_PROPERTY_NUMBER_EXPONENT < Decimal(literal).adjusted() < MAX_PROPERTY_NUMBER_EXPONENT:
        raise ValueError("number out of range")


_properties_decoder = msgspec.json.Decoder(float_hook=_check_number)


def _properties(raw: msgspec.Raw, meter: MeterRef) -> str:
    """The properties as JSON text for the jsonb column, after checking that PostgreSQL will take them (an
    object, UTF-8, numbers in range), so one odd event cannot fail its whole batch."""
    text = bytes(raw)
    if len(text) > MAX_PROPERTIES_BYTES:
        raise EventRejected(
            "invalid_properties",
            f"properties take at most {MAX_PROPERTIES_BYTES:,} bytes of JSON per event; keep only what you "
            "count or filter on.",
            "properties",
        )
    decoded: Any = None
    if text:
        try:
            decoded = _properties_decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            decoded = _INVALID
    if decoded is None:
        decoded, text = {}, b""
    if not isinstance(decoded, dict):
        raise EventRejected(
            "invalid_properties",
            'properties must be an object of your attributes, e.g. {"region": "eu"}, with numbers of at most '
            f"{MAX_PROPERTY_NUMBER_EXPONENT} digits.",
            "properties",
        )
    if (
        meter.aggregation == _UNIQUE_COUNT
        and meter.property is not None
        and decoded.get(meter.property) is None
    ):
        raise EventRejected(
            "missing_property",
            f"properties.{meter.property} is required: this meter counts the distinct values of that property.",
            "properties",
        )
    return text.decode() if text else _EMPTY_PROPERTIES


async def claim_keys(connection: Any, merchant_id: str, ids: list[str]) -> set[str]:
    """The ids of `ids` (sorted) that this transaction claims: those no other transaction holds (see the module's
    docstring for the race)."""
    try:
        async with connection.transaction():  # a savepoint in the request's transaction
            return {record[0] for record in await connection.fetch(CLAIM_NEW, merchant_id, ids)}
    except asyncpg.UniqueViolationError:
        return {record[0] for record in await connection.fetch(CLAIM, merchant_id, ids)}


async def write_events(connection: Any, merchant_id: str, rows: list[Row]) -> int:
    """Claim the rows' ids, COPY the rows whose id was claimed straight into usage_events; the number inserted.
    (A COPY into a staging table and one INSERT … SELECT joining it to the claimed ids wrote every row twice: it
    cost a third more time per batch.)"""
    claimed = await claim_keys(connection, merchant_id, sorted(row[0] for row in rows))
    if not claimed:
        return 0
    records = [(merchant_id, *row) for row in rows if row[0] in claimed]
    await connection.copy_records_to_table("usage_events", records=records, columns=EVENT_COLUMNS)
    return len(records)
