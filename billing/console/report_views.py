"""Each report as the console shows it: key figures, SVG charts and the table of figures behind them, in the
page's locale. Pure: from the report objects of `billing.reporting.schemas` to sections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from billing.console.charts import NEGATIVE, POSITIVE, Series, bar_chart, hbar_chart, line_chart
from billing.console.pages import money
from billing.console.texts import text
from billing.reporting import schemas

REPORT_NAV = (
    ("mrr", "mrr_title"),
    ("churn", "churn_title"),
    ("ar_aging", "ar_title"),
    ("payment_success", "success_title"),
    ("revenue", "revenue_title"),
    ("dunning", "dunning_title"),
)


@dataclass
class Section:
    title: str
    kpis: list[tuple[str, str]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def percent(ratio: str | None) -> str:
    if ratio is None:
        return "–"
    return f"{float(ratio) * 100:.1f}%"


def _fmt(currency: str, locale: str) -> Callable[[int], str]:
    return lambda minor: money(minor, currency, locale)


def mrr_sections(report: schemas.MrrReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    sections = []
    for cur in report.currencies:
        fmt = _fmt(cur.currency, locale)
        labels = [m.month for m in cur.months]
        section = Section(
            title=f"{t('mrr_title')} · {cur.currency}",
            kpis=[
                (t("mrr"), fmt(cur.mrr)),
                (t("arr"), fmt(cur.arr)),
                (t("active_customers"), str(cur.customers)),
            ],
        )
        section.charts.append(
            line_chart(
                f"{t('mrr')} · {cur.currency}",
                labels,
                [
                    Series(t("mrr"), [m.mrr for m in cur.months], "#0969da"),
                    Series(t("metered"), [m.metered_revenue for m in cur.months], "#8250df"),
                ],
                fmt,
            )
        )
        section.charts.append(
            bar_chart(
                f"{t('mrr_movements')} · {cur.currency}",
                labels,
                [
                    Series(t("new"), [m.new for m in cur.months], POSITIVE[0]),
                    Series(t("expansion"), [m.expansion for m in cur.months], POSITIVE[1]),
                    Series(t("reactivated"), [m.reactivated for m in cur.months], POSITIVE[2]),
                    Series(t("contraction"), [-m.contraction for m in cur.months], NEGATIVE[1]),
                    Series(t("churned"), [-m.churned for m in cur.months], NEGATIVE[0]),
                ],
                fmt,
            )
        )
        section.headers = [
            t("month"),
            t("mrr"),
            t("arr"),
            t("new"),
            t("expansion"),
            t("contraction"),
            t("churned"),
            t("reactivated"),
            t("metered"),
            t("active_customers"),
        ]
        section.rows = [
            [
                m.month,
                fmt(m.mrr),
                fmt(m.arr),
                fmt(m.new),
                fmt(m.expansion),
                fmt(-m.contraction),
                fmt(-m.churned),
                fmt(m.reactivated),
                fmt(m.metered_revenue),
                str(m.customers),
            ]
            for m in cur.months
        ]
        sections.append(section)
    return sections


def churn_sections(report: schemas.ChurnReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    sections = []
    for cur in report.currencies:
        fmt = _fmt(cur.currency, locale)
        labels = [m.month for m in cur.months]

        def basis_points(ratio: str | None) -> int:
            return round(float(ratio) * 10_000) if ratio is not None else 0

        section = Section(title=f"{t('churn_title')} · {cur.currency}")
        section.charts.append(
            bar_chart(
                t("churn_title"),
                labels,
                [
                    Series(
                        t("customer_churn"),
                        [basis_points(m.customer_churn_rate) for m in cur.months],
                        "#cf222e",
                    ),
                    Series(
                        t("gross_revenue_churn"),
                        [basis_points(m.gross_revenue_churn_rate) for m in cur.months],
                        "#bc4c00",
                    ),
                    Series(
                        t("net_revenue_churn"),
                        [basis_points(m.net_revenue_churn_rate) for m in cur.months],
                        "#57606a",
                    ),
                ],
                lambda bp: f"{bp / 100:.1f}%",
                stacked=False,
            )
        )
        section.headers = [
            t("month"),
            t("customers_at_start"),
            t("customers_churned"),
            t("customer_churn"),
            t("mrr_at_start"),
            t("churned"),
            t("contraction"),
            t("gross_revenue_churn"),
            t("net_revenue_churn"),
        ]
        section.rows = [
            [
                m.month,
                str(m.customers_at_start),
                str(m.customers_churned),
                percent(m.customer_churn_rate),
                fmt(m.mrr_at_start),
                fmt(m.churned_mrr),
                fmt(m.contraction_mrr),
                percent(m.gross_revenue_churn_rate),
                percent(m.net_revenue_churn_rate),
            ]
            for m in cur.months
        ]
        sections.append(section)
    return sections


_BUCKETS = {
    "current": "bucket_current",
    "1_30": "bucket_1_30",
    "31_60": "bucket_31_60",
    "61_90": "bucket_61_90",
    "90_plus": "bucket_90_plus",
}


def aging_sections(report: schemas.ArAgingReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    sections = []
    for cur in report.currencies:
        fmt = _fmt(cur.currency, locale)
        section = Section(
            title=f"{t('ar_title')} · {cur.currency}",
            kpis=[(t("outstanding"), fmt(cur.total)), (t("invoices_count"), str(cur.invoices))],
        )
        section.charts.append(
            hbar_chart(
                t("ar_title"), [(t(_BUCKETS[b.bucket]), b.amount) for b in cur.buckets], fmt, color="#bc4c00"
            )
        )
        section.headers = ["", t("outstanding"), t("invoices_count")]
        section.rows = [[t(_BUCKETS[b.bucket]), fmt(b.amount), str(b.invoices)] for b in cur.buckets]
        sections.append(section)
    return sections


def success_sections(report: schemas.PaymentSuccessReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    if report.attempts == 0:
        return []
    labels = [m.month for m in report.by_month]
    overview = Section(
        title=t("success_title"),
        kpis=[
            (t("success_rate"), percent(report.success_rate)),
            (t("attempts"), str(report.attempts)),
            (t("failed"), str(report.failed)),
        ],
    )
    gateways = [row.key for row in report.by_gateway]

    def rate_of(month: schemas.SuccessMonth, gateway: str) -> int:
        row = next((r for r in month.by_gateway if r.key == gateway), None)
        return (
            round(float(row.success_rate) * 10_000) if row is not None and row.success_rate is not None else 0
        )

    overview.charts.append(
        line_chart(
            t("success_rate"),
            labels,
            [Series(gateway, [rate_of(m, gateway) for m in report.by_month]) for gateway in gateways],
            lambda bp: f"{bp / 100:.0f}%",
        )
    )
    overview.headers = [t("gateway"), t("attempts"), t("succeeded"), t("failed"), t("success_rate")]
    overview.rows = [
        [r.key, str(r.attempts), str(r.succeeded), str(r.failed), percent(r.success_rate)]
        for r in report.by_gateway
    ]
    reasons = Section(title=t("by_reason"))
    if report.by_decline_reason:
        reasons.charts.append(
            hbar_chart(
                t("by_reason"), [(r.key, r.failed) for r in report.by_decline_reason], str, color="#cf222e"
            )
        )
        reasons.headers = [t("decline_reason"), t("failed"), t("share")]
        reasons.rows = [
            [r.key, str(r.failed), percent(str(r.failed / report.failed))] for r in report.by_decline_reason
        ]
        codes = [r.key for r in report.by_decline_reason]

        def failed_of(month: schemas.SuccessMonth, code: str) -> int:
            row = next((r for r in month.by_decline_reason if r.key == code), None)
            return row.failed if row is not None else 0

        reasons.charts.append(
            bar_chart(
                t("by_reason"),
                labels,
                [Series(code, [failed_of(m, code) for m in report.by_month]) for code in codes],
                str,
            )
        )
    return [overview, reasons]


def revenue_sections(report: schemas.RevenueReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    sections = []
    for cur in report.currencies:
        fmt = _fmt(cur.currency, locale)
        labels = [m.month for m in cur.months]
        section = Section(title=f"{t('revenue_title')} · {cur.currency}")
        section.charts.append(
            bar_chart(
                t("revenue_title"),
                labels,
                [
                    Series(t("invoiced"), [m.invoiced for m in cur.months], "#0969da"),
                    Series(t("paid"), [m.paid for m in cur.months], "#1a7f37"),
                    Series(t("outstanding"), [m.outstanding for m in cur.months], "#bc4c00"),
                    Series(t("credited_col"), [m.credited for m in cur.months], "#8250df"),
                ],
                fmt,
                stacked=False,
            )
        )
        section.charts.append(
            bar_chart(
                t("refunds_title"),
                labels,
                [Series(t("refunded"), [m.refunded for m in cur.months], "#cf222e")],
                fmt,
            )
        )
        section.headers = [
            t("month"),
            t("invoiced"),
            t("paid"),
            t("outstanding"),
            t("credited_col"),
            t("refunded"),
        ]
        section.rows = [
            [m.month, fmt(m.invoiced), fmt(m.paid), fmt(m.outstanding), fmt(m.credited), fmt(m.refunded)]
            for m in cur.months
        ]
        sections.append(section)
    return sections


def dunning_sections(report: schemas.DunningReport, locale: str) -> list[Section]:
    t = partial(text, locale=locale)
    sections = []
    for cur in report.currencies:
        fmt = _fmt(cur.currency, locale)
        section = Section(
            title=f"{t('dunning_title')} · {cur.currency}",
            kpis=[
                (t("recovered"), fmt(cur.recovered_amount)),
                (t("recovery_rate"), percent(cur.recovery_rate)),
                (t("cases_opened"), str(cur.cases_opened)),
            ],
        )
        section.charts.append(
            bar_chart(
                t("dunning_title"),
                [m.month for m in cur.months],
                [Series(t("recovered"), [m.recovered_amount for m in cur.months], "#1a7f37")],
                fmt,
            )
        )
        section.headers = [
            t("month"),
            t("cases_opened"),
            t("cases_recovered"),
            t("cases_exhausted"),
            t("recovered"),
        ]
        section.rows = [
            [
                m.month,
                str(m.cases_opened),
                str(m.cases_recovered),
                str(m.cases_exhausted),
                fmt(m.recovered_amount),
            ]
            for m in cur.months
        ]
        sections.append(section)
    return sections


def sections_for(report: schemas.AnyReport, locale: str) -> list[Section]:
    if isinstance(report, schemas.MrrReport):
        return mrr_sections(report, locale)
    if isinstance(report, schemas.ChurnReport):
        return churn_sections(report, locale)
    if isinstance(report, schemas.ArAgingReport):
        return aging_sections(report, locale)
    if isinstance(report, schemas.PaymentSuccessReport):
        return success_sections(report, locale)
    if isinstance(report, schemas.RevenueReport):
        return revenue_sections(report, locale)
    return dunning_sections(report, locale)
