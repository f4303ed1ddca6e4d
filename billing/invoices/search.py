"""Finding invoices: the filters the API's invoice list and the console's invoice review share, parsed from
query strings with errors that name the parameter, and the console's search (number, customer email or name),
sorting and counted pages.

Dates: `created[gte]`, `created[lte]`, `due_date[gte]`, `due_date[lte]` take an RFC 3339 instant
(`2027-03-01T00:00:00Z`) or a calendar date (`2027-03-01`, in UTC); a date in a `[lte]` bound includes that whole
day. Amounts: `total[gte]`, `total[lte]` in minor units of the invoice's currency. An invoice is overdue when it is
open and its due date (for invoices charged automatically: the moment it was finalized) has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.customers.models import Customer
from billing.errors import InvalidRequest
from billing.invoices import states
from billing.invoices.models import Invoice
from plans.errors import CatalogError
from plans.money import MAX_AMOUNT, validate_currency

Ts = TypeVarTuple("Ts")

SORTS = {
    "created": Invoice.created_at,
    "due_date": Invoice.due_date,
    "total": Invoice.total,
    "amount_remaining": Invoice.amount_remaining,
    "number": Invoice.number,
    "status": Invoice.status,
}


def parse_instant(value: str | None, param: str, *, end_of_day: bool = False) -> datetime | None:
    """An RFC 3339 instant or a YYYY-MM-DD date (UTC midnight; the day's last microsecond when `end_of_day`)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else moment
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidRequest(
            f"{param} must be a date (2027-03-01) or an RFC 3339 instant with its offset "
            f"(2027-03-01T00:00:00Z); got {value[:40]!r}.",
            param=param,
        )
    return parsed.astimezone(UTC)


def parse_amount(value: str | None, param: str) -> int | None:
    if value is None or value == "":
        return None
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    if not digits.isdigit() or abs(int(text)) > MAX_AMOUNT:
        raise InvalidRequest(
            f"{param} must be a whole amount in minor units (1999 for 19.99 USD); got {value[:40]!r}.",
            param=param,
        )
    return int(text)


def parse_currency(value: str | None, param: str = "currency") -> str | None:
    if value is None or value == "":
        return None
    try:
        return validate_currency(value.strip(), param=param)
    except CatalogError as exc:
        raise InvalidRequest(f"{exc.message}.", param=param) from None


def parse_status(value: str | None, param: str = "status") -> str | None:
    if value is None or value == "":
        return None
    if value not in states.STATUSES:
        raise InvalidRequest(f"{param} must be one of {', '.join(states.STATUSES)}.", param=param)
    return value


@dataclass(frozen=True)
class InvoiceFilters:
    customer: str | None = None
    subscription: str | None = None
    status: str | None = None
    created_gte: datetime | None = None
    created_lte: datetime | None = None
    due_date_gte: datetime | None = None
    due_date_lte: datetime | None = None
    total_gte: int | None = None
    total_lte: int | None = None
    currency: str | None = None
    number: str | None = None
    # Only open invoices whose due moment is before this instant (the console's "overdue" box: now).
    overdue_at: datetime | None = None
    # Console search: part of the number, or of the customer's email or name (case-insensitive).
    text: str | None = None

    @classmethod
    def from_query(
        cls, query: dict[str, str | None], *, overdue_at: datetime | None = None
    ) -> InvoiceFilters:
        """Filters from query-string values, each checked with an error naming its parameter."""
        filters = cls(
            customer=(query.get("customer") or None),
            subscription=(query.get("subscription") or None),
            status=parse_status(query.get("status")),
            created_gte=parse_instant(query.get("created[gte]"), "created[gte]"),
            created_lte=parse_instant(query.get("created[lte]"), "created[lte]", end_of_day=True),
            due_date_gte=parse_instant(query.get("due_date[gte]"), "due_date[gte]"),
            due_date_lte=parse_instant(query.get("due_date[lte]"), "due_date[lte]", end_of_day=True),
            total_gte=parse_amount(query.get("total[gte]"), "total[gte]"),
            total_lte=parse_amount(query.get("total[lte]"), "total[lte]"),
            currency=parse_currency(query.get("currency")),
            number=(query.get("number") or "").strip() or None,
            overdue_at=overdue_at,
            text=(query.get("q") or "").strip()[:200] or None,
        )
        for low, high, name in (
            (filters.created_gte, filters.created_lte, "created"),
            (filters.due_date_gte, filters.due_date_lte, "due_date"),
            (filters.total_gte, filters.total_lte, "total"),
        ):
            if low is not None and high is not None and low > high:  # type: ignore[operator]
                raise InvalidRequest(
                    f"{name}[gte] is after {name}[lte]: nothing can match. Swap them.", param=f"{name}[gte]"
                )
        return filters


def due_moment() -> ColumnElement[Any]:
    """When an invoice is due: its due date, or for an invoice charged automatically, its finalization."""
    return func.coalesce(Invoice.due_date, Invoice.finalized_at)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def apply_filters(stmt: Select[*Ts], filters: InvoiceFilters) -> Select[*Ts]:
    """`stmt` (over invoices, already limited to one merchant) narrowed by `filters`."""
    conditions = invoice_conditions(filters)
    return stmt.where(*conditions) if conditions else stmt


def invoice_conditions(filters: InvoiceFilters) -> list[ColumnElement[bool]]:
    """The conditions on invoices that `filters` asks for (none for no filter)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.customer is not None:
        conditions.append(Invoice.customer_id == filters.customer)
    if filters.subscription is not None:
        conditions.append(Invoice.subscription_id == filters.subscription)
    if filters.status is not None:
        conditions.append(Invoice.status == filters.status)
    if filters.created_gte is not None:
        conditions.append(Invoice.created_at >= filters.created_gte)
    if filters.created_lte is not None:
        conditions.append(Invoice.created_at <= filters.created_lte)
    if filters.due_date_gte is not None:
        conditions.append(Invoice.due_date >= filters.due_date_gte)
    if filters.due_date_lte is not None:
        conditions.append(Invoice.due_date <= filters.due_date_lte)
    if filters.total_gte is not None:
        conditions.append(Invoice.total >= filters.total_gte)
    if filters.total_lte is not None:
        conditions.append(Invoice.total <= filters.total_lte)
    if filters.currency is not None:
        conditions.append(Invoice.currency == filters.currency)
    if filters.number is not None:
        conditions.append(Invoice.number == filters.number)
    if filters.overdue_at is not None:
        conditions.append(and_(Invoice.status == states.OPEN, due_moment() < filters.overdue_at))
    if filters.text is not None:
        pattern = _like(filters.text)
        # An alias: the console's query joins customers itself, and must not correlate this one away.
        matched = aliased(Customer)
        matching_customers = select(matched.id).where(
            matched.merchant_id == Invoice.merchant_id,
            or_(matched.email.ilike(pattern, escape="\\"), matched.name.ilike(pattern, escape="\\")),
        )
        conditions.append(
            or_(
                Invoice.number.ilike(pattern, escape="\\"),
                Invoice.id == filters.text,
                Invoice.customer_id.in_(matching_customers),
            )
        )
    return conditions


@dataclass(frozen=True)
class FoundInvoice:
    invoice: Invoice
    customer_email: str | None
    customer_name: str | None
    test_clock_id: str | None = None


@dataclass(frozen=True)
class SearchPage:
    rows: list[FoundInvoice]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


async def search_invoices(
    session: AsyncSession,
    merchant_id: str,
    filters: InvoiceFilters,
    *,
    sort: str = "created",
    descending: bool = True,
    page: int = 1,
    per_page: int = 25,
) -> SearchPage:
    """One page of the merchant's invoices matching `filters`, sorted by `sort` (a key of SORTS), with the
    customer's email and name, and how many match in all."""
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}.", param="sort")
    base = apply_filters(select(Invoice).where(Invoice.merchant_id == merchant_id), filters)
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    column = SORTS[sort]
    order = column.desc().nulls_last() if descending else column.asc().nulls_last()
    tiebreak = Invoice.seq.desc() if descending else Invoice.seq.asc()
    stmt = (
        apply_filters(
            select(Invoice, Customer.email, Customer.name, Customer.test_clock_id)
            .join(Customer, Customer.id == Invoice.customer_id)
            .where(Invoice.merchant_id == merchant_id),
            filters,
        )
        .order_by(order, tiebreak)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    rows = [
        FoundInvoice(invoice, email, name, clock)
        for invoice, email, name, clock in (await session.execute(stmt)).all()
    ]
    return SearchPage(rows=rows, total=int(total or 0), page=max(page, 1), per_page=per_page)
