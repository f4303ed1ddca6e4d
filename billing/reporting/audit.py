"""`billing audit` (issue 16 item 4): the money invariants checked over every row, one set-based query per
invariant, never a loop over invoices in Python.

Each check is one SELECT that returns exactly the rows breaking its invariant, as (object id, detail). The
queries name tables without a schema, so a test can shadow them with temporary tables holding deliberately broken
rows (PostgreSQL searches `pg_temp` first) and the database's own CHECK constraints do not stop the rows going in.
A merchant scope (`:merchant`, NULL for all) keeps an audit of one merchant from reading the others' rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.db.engine import make_engine

# Rows each check reports at most; the count is exact beyond it.
MAX_REPORTED = 100

_IN_SCOPE = "(CAST(:merchant AS text) IS NULL OR {alias}.merchant_id = CAST(:merchant AS text))"


@dataclass(frozen=True)
class Check:
    name: str
    # What the invariant says, for the person reading the report.
    rule: str
    sql: str


def _scoped(sql: str, *aliases: str) -> str:
    return sql.format(**{f"scope_{alias}": _IN_SCOPE.format(alias=alias) for alias in aliases})


CHECKS: tuple[Check, ...] = (
    Check(
        "invoice_total",
        "subtotal - discount + tax = total",
        _scoped(
            "SELECT i.id, format('subtotal %s - discount %s + tax %s <> total %s', i.subtotal, i.discount, "
            "i.tax, i.total) FROM invoices i WHERE {scope_i} AND i.subtotal - i.discount + i.tax <> i.total",
            "i",
        ),
    ),
    Check(
        "invoice_amount_due",
        "amount_due = max(0, total + starting_balance) = total - balance_applied",
        _scoped(
            "SELECT i.id, format('amount_due %s, total %s, starting_balance %s, balance_applied %s', "
            "i.amount_due, i.total, i.starting_balance, i.balance_applied) FROM invoices i WHERE {scope_i} "
            "AND (i.amount_due <> GREATEST(0, i.total + i.starting_balance) "
            "OR i.amount_due <> i.total - i.balance_applied)",
            "i",
        ),
    ),
    Check(
        "invoice_amount_paid",
        "amount_paid + amount_remaining = amount_due, and a paid invoice has nothing remaining",
        _scoped(
            "SELECT i.id, format('status %s: amount_paid %s + amount_remaining %s, amount_due %s', i.status, "
            "i.amount_paid, i.amount_remaining, i.amount_due) FROM invoices i WHERE {scope_i} "
            "AND (i.amount_paid + i.amount_remaining <> i.amount_due "
            "OR (i.status = 'paid' AND i.amount_remaining <> 0))",
            "i",
        ),
    ),
    Check(
        "invoice_numbering",
        "each merchant's invoice numbers run 1, 2, 3 ... without gap or repeat, up to its sequence",
        # Numbers are `<prefix>-<n>`, n from one sequence per merchant whatever the prefix: a gap is n not one
        # more than the previous n, and numbers the sequence handed out beyond the last invoice are a gap too.
        _scoped(
            "WITH numbered AS (SELECT i.merchant_id, i.id, "
            "CAST(substring(i.number FROM '([0-9]+)$') AS bigint) AS n FROM invoices i "
            "WHERE i.number IS NOT NULL AND {scope_i}), "
            "ordered AS (SELECT merchant_id, id, n, lag(n, 1, 0::bigint) OVER "
            "(PARTITION BY merchant_id ORDER BY n, id) AS previous FROM numbered) "
            "SELECT id, format('merchant %s: number %s follows %s', merchant_id, n, previous) FROM ordered "
            "WHERE n <> previous + 1 "
            "UNION ALL "
            "SELECT s.merchant_id, format('sequence handed out up to %s, last invoice number is %s', "
            "s.next_number - 1, COALESCE(max(numbered.n), 0)) FROM invoice_number_sequences s "
            "LEFT JOIN numbered ON numbered.merchant_id = s.merchant_id WHERE {scope_s} "
            "GROUP BY s.merchant_id, s.next_number HAVING COALESCE(max(numbered.n), 0) <> s.next_number - 1",
            "i",
            "s",
        ),
    ),
    Check(
        "one_invoice_per_period",
        "one invoice per subscription period",
        _scoped(
            "SELECT min(i.id), format('subscription %s period %s: invoices %s', i.subscription_id, "
            "i.subscription_period_index, string_agg(i.id, ', ' ORDER BY i.id)) FROM invoices i "
            "WHERE i.subscription_period_index IS NOT NULL AND {scope_i} "
            "GROUP BY i.subscription_id, i.subscription_period_index HAVING count(*) > 1",
            "i",
        ),
    ),
    Check(
        "refunds_within_payment",
        "succeeded refunds of a payment sum to its amount_refunded, never more than its amount",
        _scoped(
            "SELECT p.id, format('amount %s, amount_refunded %s, succeeded refunds %s', p.amount, "
            "p.amount_refunded, r.refunded) FROM payments p JOIN (SELECT payment_id, sum(amount) AS refunded "
            "FROM refunds WHERE status = 'succeeded' GROUP BY payment_id) r ON r.payment_id = p.id "
            "WHERE {scope_p} AND (r.refunded > p.amount OR r.refunded <> p.amount_refunded) "
            "UNION ALL "
            "SELECT p.id, format('amount_refunded %s without a succeeded refund', p.amount_refunded) "
            "FROM payments p WHERE {scope_p} AND p.amount_refunded <> 0 AND NOT EXISTS "
            "(SELECT 1 FROM refunds r WHERE r.payment_id = p.id AND r.status = 'succeeded')",
            "p",
        ),
    ),
    Check(
        "payments_match_invoices",
        "an invoice's succeeded payments sum to what it counts as paid by payment (amount_paid less "
        "pre-payment credit notes, unless paid out of band), and no succeeded payment names a missing invoice",
        _scoped(
            "WITH taken AS (SELECT p.invoice_id, sum(p.amount) AS amount, string_agg(p.id, ', ' ORDER BY p.id) "
            "AS ids FROM payments p WHERE p.status = 'succeeded' AND p.invoice_id IS NOT NULL AND {scope_p} "
            "GROUP BY p.invoice_id) "
            "SELECT i.id, format('status %s: amount_paid %s less pre-payment credit notes %s, succeeded "
            "payments %s (%s)', i.status, i.amount_paid, i.pre_payment_credit_notes_amount, "
            "COALESCE(taken.amount, 0), COALESCE(taken.ids, 'none')) FROM invoices i "
            "LEFT JOIN taken ON taken.invoice_id = i.id WHERE {scope_i} AND NOT i.paid_out_of_band "
            "AND COALESCE(taken.amount, 0) <> i.amount_paid - i.pre_payment_credit_notes_amount "
            "UNION ALL "
            "SELECT i.id, format('paid out of band, yet succeeded payments %s (%s)', taken.amount, taken.ids) "
            "FROM invoices i JOIN taken ON taken.invoice_id = i.id WHERE {scope_i} AND i.paid_out_of_band "
            "AND taken.amount > i.amount_paid - i.pre_payment_credit_notes_amount "
            "UNION ALL "
            "SELECT taken.ids, format('succeeded payments name invoice %s, which does not exist', "
            "taken.invoice_id) FROM taken WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = "
            "taken.invoice_id)",
            "i",
            "p",
        ),
    ),
    Check(
        "state_changes_have_events",
        "every finalized, paid or voided invoice, succeeded payment and succeeded refund has its event in the "
        "outbox (invoice.finalized, invoice.paid, invoice.voided, payment.succeeded, refund.succeeded)",
        _scoped(
            "SELECT x.id, format('no %s event', x.event_type) FROM ("
            "SELECT i.merchant_id, i.id, 'invoice.finalized' AS event_type FROM invoices i "
            "WHERE {scope_i} AND i.finalized_at IS NOT NULL "
            "UNION ALL SELECT i.merchant_id, i.id, 'invoice.paid' FROM invoices i "
            "WHERE {scope_i} AND i.status = 'paid' "
            "UNION ALL SELECT i.merchant_id, i.id, 'invoice.voided' FROM invoices i "
            "WHERE {scope_i} AND i.status = 'void' "
            "UNION ALL SELECT p.merchant_id, p.id, 'payment.succeeded' FROM payments p "
            "WHERE {scope_p} AND p.status = 'succeeded' "
            "UNION ALL SELECT r.merchant_id, r.id, 'refund.succeeded' FROM refunds r "
            "WHERE {scope_r} AND r.status = 'succeeded') x "
            "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = x.merchant_id "
            "AND e.object_id = x.id AND e.type = x.event_type)",
            "i",
            "p",
            "r",
        ),
    ),
    Check(
        "customer_balance_ledger",
        "a customer's balance is the sum of its balance ledger, and equals the last entry's ending_balance",
        _scoped(
            "SELECT c.id, format('balance %s, ledger sum %s, last ending_balance %s', c.balance, "
            "COALESCE(l.total, 0), COALESCE(l.last_ending, 0)) FROM customers c LEFT JOIN (SELECT customer_id, "
            "sum(amount) AS total, (array_agg(ending_balance ORDER BY seq DESC))[1] AS last_ending "
            "FROM customer_balance_transactions GROUP BY customer_id) l ON l.customer_id = c.id "
            "WHERE {scope_c} AND (c.balance <> COALESCE(l.total, 0) OR c.balance <> COALESCE(l.last_ending, 0))",
            "c",
        ),
    ),
)


@dataclass(frozen=True)
class Violation:
    check: str
    id: str
    detail: str


@dataclass(frozen=True)
class CheckResult:
    check: Check
    count: int
    violations: tuple[Violation, ...]


async def run_check(connection: AsyncConnection, check: Check, merchant_id: str | None = None) -> CheckResult:
    """The rows breaking one invariant (the first MAX_REPORTED of them, ordered by id) and how many there are."""
    # Only our own SQL (CHECKS) is put together here; the merchant is a bound parameter.
    query = f"SELECT violation.*, count(*) OVER () FROM ({check.sql}) AS violation(id, detail) "  # noqa: S608
    query += f"ORDER BY id LIMIT {MAX_REPORTED}"
    rows = (await connection.execute(text(query), {"merchant": merchant_id})).all()
    violations = tuple(Violation(check.name, str(row[0]), str(row[1])) for row in rows)
    return CheckResult(check, int(rows[0][2]) if rows else 0, violations)


async def run_audit(connection: AsyncConnection, merchant_id: str | None = None) -> list[CheckResult]:
    """Every check, in the order of CHECKS (in one snapshot when the caller opened a REPEATABLE READ one)."""
    return [await run_check(connection, check, merchant_id) for check in CHECKS]


def render_text(results: Sequence[CheckResult]) -> str:
    lines = []
    for result in results:
        mark = "ok" if result.count == 0 else f"{result.count} violation(s)"
        lines.append(f"{result.check.name}: {mark} ({result.check.rule})")
        lines.extend(f"  {violation.id}: {violation.detail}" for violation in result.violations)
        if result.count > len(result.violations):
            lines.append(f"  ... and {result.count - len(result.violations)} more")
    total = sum(result.count for result in results)
    lines.append(f"{total} violation(s) in total" if total else "all invariants hold")
    return "\n".join(lines)


def render_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(
        {
            "violations": sum(result.count for result in results),
            "checks": [
                {
                    "name": result.check.name,
                    "rule": result.check.rule,
                    "count": result.count,
                    "violations": [{"id": v.id, "detail": v.detail} for v in result.violations],
                }
                for result in results
            ],
        }
    )


async def audit_database(database_url: str, merchant_id: str | None, *, as_json: bool) -> tuple[str, int]:
    """The report of every check over one consistent snapshot (a read-only REPEATABLE READ transaction), and
    the number of violations."""
    engine = make_engine(database_url, null_pool=True)
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                await connection.execute(text("SET TRANSACTION READ ONLY"))
                results = await run_audit(connection, merchant_id)
    finally:
        await engine.dispose()
    report = render_json(results) if as_json else render_text(results)
    return report, sum(result.count for result in results)
