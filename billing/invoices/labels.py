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
    "date_voided": ("Date voided", "作废日期"),
    "bill_to": ("Bill to", "付款方"),
    "from": ("From", "开票方"),
    "description": ("Description", "描述"),
    "period": ("Period", "期间"),
    "quantity": ("Qty", "数量"),
    "unit_price": ("Unit price", "单价"),
    "amount": ("Amount", "金额"),
    "subtotal": ("Subtotal", "小计"),
    "subtotal_excl_tax": ("Subtotal (excl. tax)", "小计（不含税）"),
    "discount": ("Discount", "折扣"),
    "discount_named": ("Discount ({name})", "折扣（{name}）"),
    "payment_instructions": ("Payment instructions: {text}", "付款说明：{text}"),
    "tax": ("Tax", "税费"),
    # One tax rate's row: its display name and percentage, and whether the line amounts already include it.
    "tax_rate_included": ("{name} {percentage}% (incl.)", "{name} {percentage}%（含税）"),
    "tax_rate_added": ("{name} {percentage}%", "{name} {percentage}%（另计）"),
    "tax_included_note": (
        "Line amounts include tax; the subtotal is shown without it.",
        "各项金额均已含税；小计为不含税金额。",
    ),
    "total": ("Total", "合计"),
    "balance_applied": ("Applied balance", "已抵扣余额"),
    "prepaid_credit_amount": ("Prepaid credits applied", "已抵扣预付额度"),
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
    "pay_automatic_on": (
        "{merchant} will charge your payment method on file on {date}.",
        "{merchant} 将于 {date} 从您已保存的支付方式自动扣款。",
    ),
    "pay_automatic_failed": (
        "The automatic payment did not go through and will not be retried until a new payment method is added. "
        "Contact {merchant} to update yours.",
        "自动扣款未成功，在添加新的支付方式之前不会再次尝试。请联系 {merchant} 更新您的支付方式。",
    ),
    "pay_by_transfer": (
        "How to pay: online with a card on this invoice's page, or send {amount} to {merchant} by the means "
        "agreed with them (a bank transfer, for example), quoting invoice number {number} as the reference. "
        "{merchant} marks this invoice paid when the payment arrives.",
        "付款方式：在此发票页面使用银行卡在线支付；或通过与 {merchant} 约定的方式（例如银行转账）支付 {amount}，"
        "并在付款备注中注明发票编号 {number}。{merchant} 收到款项后，会将此发票标记为已支付。",
    ),
    "pay_online": ("Pay this invoice online", "在线支付此发票"),
    "questions": (
        "Questions about this invoice? Write to {email}.",
        "对此发票有疑问？请发送邮件至 {email}。",
    ),
    "paid_on": ("Paid on {date}. Thank you.", "已于 {date} 支付，谢谢。"),
    "paid": ("Paid. Thank you.", "已支付，谢谢。"),
    "void_headline": ("Void", "已作废"),
    "voided_on": (
        "This invoice was voided on {date}: nothing is owed on it.",
        "此发票已于 {date} 作废，无需支付。",
    ),
    "uncollectible": (
        "{merchant} no longer collects this invoice automatically: {amount} remains unpaid. Contact {merchant} to "
        "settle it.",
        "{merchant} 已不再自动收取此发票，尚有 {amount} 未支付。如需结清，请联系 {merchant}。",
    ),
}

_STATUS: Final[dict[str, tuple[str, str]]] = {
    "draft": ("Draft", "草稿"),
    "open": ("Open", "待支付"),
    "paid": ("Paid", "已支付"),
    "void": ("Void", "已作废"),
    "uncollectible": ("Uncollectible", "无法收回"),
}


# The wording billing.subscriptions writes around a plan's name on the lines it makes (subscription fees and
# prorations, stored in English as the API shows them), and the same in Chinese around the same words.
_ENGINE_PREFIXES: Final[dict[str, str]] = {
    "Unused time on ": "{subject} 未使用时间的抵扣",
    "Remaining time on ": "{subject} 本周期剩余时间的费用",
}
_ENGINE_SUFFIXES: Final[dict[str, str]] = {
    " (from the resume to the period end)": "{subject}（自恢复之日至本周期结束）",
    " (until the billing anchor)": "{subject}（至计费锚定日）",
}
_ENGINE_LINE_TYPES: Final[frozenset[str]] = frozenset({"subscription", "proration"})


def line_description(description: str, line_type: str, locale: str) -> str:
    """An invoice line's description as a reader in `locale` reads it: on the lines the engine wrote (fees and
    prorations), its own English wording around the plan's name is said in Chinese; the plan's name, the
    quantity and every description the merchant wrote are shown as written."""
    if locale != "zh-CN" or line_type not in _ENGINE_LINE_TYPES:
        return description
    for prefix, template in _ENGINE_PREFIXES.items():
        if description.startswith(prefix):
            return template.format(subject=description.removeprefix(prefix))
    for suffix, template in _ENGINE_SUFFIXES.items():
        if description.endswith(suffix):
            return template.format(subject=description.removesuffix(suffix))
    return description


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
