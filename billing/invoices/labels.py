"""Every word an invoice document shows a person, in English and Simplified Chinese (one table, one place).

Labels are plain text; the renderers escape them. A label with ``{name}`` placeholders is filled with
`str.format` by `billing.invoices.documents`, with values that are already formatted for the locale.
"""

from __future__ import annotations

from typing import Final, Literal

Locale = Literal["en", "zh-CN"]
LOCALES: Final[tuple[Locale, ...]] = ("en", "zh-CN")

#: The babel locale that formats numbers and dates for each of our locales.
BABEL_LOCALES: Final[dict[str, str]] = {"en": "en_US", "zh-CN": "zh_CN"}

_LABELS: Final[dict[str, tuple[str, str]]] = {
    # key: (English, Simplified Chinese)
    "title": ("Invoice", "发票"),
    "draft_watermark": ("DRAFT", "草稿"),
    "draft_notice": (
        "Draft: this invoice is not final and is not payable yet.",
        "草稿：此发票尚未定稿，暂不能支付。",
    ),
    "number": ("Invoice number", "发票编号"),
    "no_number": ("Not yet numbered", "尚未编号"),
    "status": ("Status", "状态"),
    "date_of_issue": ("Date of issue", "开具日期"),
    "date_created": ("Date created", "创建日期"),
    "due_date": ("Date due", "到期日期"),
    "billing_period": ("Billing period", "计费周期"),
    "date_paid": ("Date paid", "支付日期"),
    "bill_to": ("Bill to", "付款方"),
    "from": ("From", "收款方"),
    "description": ("Description", "描述"),
    "period": ("Period", "期间"),
    "quantity": ("Qty", "数量"),
    "unit_price": ("Unit price", "单价"),
    "amount": ("Amount", "金额"),
    "subtotal": ("Subtotal", "小计"),
    "discount": ("Discount", "折扣"),
    "tax": ("Tax", "税费"),
    "total": ("Total", "合计"),
    "balance_applied": ("Applied balance", "已抵扣余额"),
    "amount_due": ("Amount due", "应付金额"),
    "amount_paid": ("Amount paid", "已付金额"),
    "amount_remaining": ("Amount remaining", "待付金额"),
    "no_lines": ("This invoice has no items.", "此发票没有项目。"),
    "page": ("Page {page} of {pages}", "第 {page} 页，共 {pages} 页"),
    "times_in": ("Dates are in the {timezone} time zone.", "日期以 {timezone} 时区为准。"),
    "download_pdf": ("Download PDF", "下载 PDF"),
    "language": ("Language", "语言"),
    "not_found_title": ("Page not found", "页面不存在"),
    "not_found_body": (
        "This link is not valid. Check that you copied the whole link, or ask the sender for a new one.",
        "此链接无效。请确认复制了完整链接，或联系发送方获取新链接。",
    ),
    # What the person reading should know or do, by status.
    "pay_open_due": (
        "{amount} remains to be paid, due by {due_date}.",
        "尚有 {amount} 待支付，请于 {due_date} 前付款。",
    ),
    "pay_open": ("{amount} remains to be paid.", "尚有 {amount} 待支付。"),
    "pay_automatic": (
        "Your payment method on file will be charged automatically.",
        "系统将自动从您已保存的支付方式扣款。",
    ),
    "pay_contact": (
        "To pay, follow the payment instructions from {merchant}, or pay online with a card.",
        "请按照 {merchant} 提供的付款说明完成支付，或使用银行卡在线支付。",
    ),
    "pay_online": ("Pay this invoice online", "在线支付此发票"),
    "questions": (
        "Questions about this invoice? Write to {email}.",
        "对此发票有疑问？请发送邮件至 {email}。",
    ),
    "paid_on": ("Paid on {date}. Thank you.", "已于 {date} 支付，谢谢。"),
    "paid": ("Paid. Thank you.", "已支付，谢谢。"),
    "voided": ("This invoice was voided: nothing is owed on it.", "此发票已作废，无需支付。"),
    "uncollectible": (
        "{amount} remains unpaid on this invoice.",
        "此发票尚有 {amount} 未支付。",
    ),
}

_STATUS: Final[dict[str, tuple[str, str]]] = {
    "draft": ("Draft", "草稿"),
    "open": ("Open", "待支付"),
    "paid": ("Paid", "已支付"),
    "void": ("Void", "已作废"),
    "uncollectible": ("Uncollectible", "无法收回"),
}


def normalize_locale(value: str | None) -> Locale | None:
    """One of our locales for `value` ("en", "zh-CN"; case and "_" forgiven: "zh_cn"), or None."""
    if value is None:
        return None
    folded = value.strip().replace("_", "-").lower()
    for locale in LOCALES:
        if locale.lower() == folded:
            return locale
    return None


def label(key: str, locale: str) -> str:
    """The text of `key` in `locale` (English for anything that is not zh-CN)."""
    english, chinese = _LABELS[key]
    return chinese if locale == "zh-CN" else english


def status_label(status: str, locale: str) -> str:
    english, chinese = _STATUS.get(status, (status, status))
    return chinese if locale == "zh-CN" else english


def all_keys() -> frozenset[str]:
    return frozenset(_LABELS)
