"""Every word a customer email or the portal page shows, in English and Simplified Chinese (one table).

Texts with ``{name}`` placeholders are filled with `str.format` by the renderers, with values already formatted
for the locale (amounts and dates by babel, through `billing.invoices.documents`). Invoice words ("Invoice
number", "Amount due") come from `billing.invoices.labels`; why a payment failed from `dunning.messages`.
"""

from __future__ import annotations

from typing import Final

_TEXTS: Final[dict[str, tuple[str, str]]] = {
    # key: (English, Simplified Chinese)
    "greeting": ("Hello {name},", "{name}，您好："),
    "greeting_anonymous": ("Hello,", "您好："),
    "signature": ("— {merchant}", "—— {merchant}"),
    "support": ("Questions? Write to {email}.", "如有疑问，请发送邮件至 {email}。"),
    "footer": (
        "You receive this email because you have a subscription with {merchant}.",
        "您收到此邮件，是因为您在 {merchant} 有一项订阅。",
    ),
    # Payment failed
    "payment_failed_subject": ("Payment failed for invoice {number}", "发票 {number} 付款失败"),
    "payment_failed_final_subject": (
        "Final notice: payment failed for invoice {number}",
        "最终通知：发票 {number} 付款失败",
    ),
    "payment_failed_intro": (
        "We could not collect {amount} for invoice {number} from your card {card}.",
        "我们未能从您的银行卡 {card} 收取发票 {number} 的款项 {amount}。",
    ),
    "payment_failed_intro_no_card": (
        "We could not collect {amount} for invoice {number}.",
        "我们未能收取发票 {number} 的款项 {amount}。",
    ),
    "why": ("Why: {reason}", "原因：{reason}"),
    "what_to_do": ("What to do: {action}", "您需要做什么：{action}"),
    "detail": ("{name}: {value}", "{name}：{value}"),
    "update_card": (
        "Update your card on this secure page (the link is valid until {expires}):",
        "请在以下安全页面更新您的银行卡（链接有效期至 {expires}）：",
    ),
    "update_card_button": ("Update your card", "更新银行卡"),
    "next_attempt": (
        "We will try again on {date}. If you add a new card before then, we will charge it at once.",
        "我们将于 {date} 再次尝试扣款。如果您在此之前添加新卡，我们会立即从新卡扣款。",
    ),
    "no_retry": (
        "We will not retry until you update your card.",
        "在您更新银行卡之前，我们不会再次尝试扣款。",
    ),
    "final_notice": (
        "This was our last automatic attempt: we will not try to charge this invoice again by ourselves. "
        "Update your card now to keep your subscription.",
        "这是我们最后一次自动扣款尝试，此后不会再自动收取此发票。请立即更新银行卡，以免订阅中断。",
    ),
    # The same, for a customer who pays by a debit agreement (Alipay, WeChat Pay, UnionPay, e-CNY): no card.
    "update_method": (
        "Update your payment method on this secure page (the link is valid until {expires}):",
        "请在以下安全页面更新您的付款方式（链接有效期至 {expires}）：",
    ),
    "update_method_button": ("Update your payment method", "更新付款方式"),
    "next_attempt_method": (
        "We will try again on {date}. If you add a new payment method before then, we will charge it at once.",
        "我们将于 {date} 再次尝试扣款。如果您在此之前添加新的付款方式，我们会立即使用它扣款。",
    ),
    "no_retry_method": (
        "We will not retry until you update your payment method.",
        "在您更新付款方式之前，我们不会再次尝试扣款。",
    ),
    "final_notice_method": (
        "This was our last automatic attempt: we will not try to charge this invoice again by ourselves. "
        "Update your payment method now to keep your subscription.",
        "这是我们最后一次自动扣款尝试，此后不会再自动收取此发票。请立即更新付款方式，以免订阅中断。",
    ),
    "view_invoice": ("View the invoice: {url}", "查看发票：{url}"),
    # The invoice itself (sent, or sent again, by the merchant)
    "invoice_subject": ("Invoice {number} from {merchant}", "{merchant} 的发票 {number}"),
    "invoice_body_open": (
        "{merchant} sent you invoice {number} for {amount}, due on {due_date}.",
        "{merchant} 向您发送了发票 {number}，金额 {amount}，到期日 {due_date}。",
    ),
    "invoice_body_open_no_due": (
        "{merchant} sent you invoice {number} for {amount}.",
        "{merchant} 向您发送了发票 {number}，金额 {amount}。",
    ),
    "invoice_body_paid": (
        "Here is invoice {number} from {merchant} for {amount}. It is paid: thank you.",
        "这是 {merchant} 的发票 {number}，金额 {amount}，已付清，谢谢。",
    ),
    "invoice_body_uncollectible": (
        "Invoice {number} from {merchant} still has {amount} to pay.",
        "{merchant} 的发票 {number} 仍有 {amount} 待支付。",
    ),
    "invoice_automatic": (
        "It will be charged to your payment method on file; nothing to do.",
        "该款项将从您登记的支付方式中自动扣除，您无需进行任何操作。",
    ),
    "invoice_view_button": ("View and pay the invoice", "查看并支付发票"),
    "invoice_view_paid_button": ("View the invoice", "查看发票"),
    # Card expiring
    "card_expiring_subject": (
        "Your card ending in {last4} expires soon",
        "您尾号为 {last4} 的银行卡即将过期",
    ),
    "card_expiring_body": (
        "Your {brand} card ending in {last4}, which pays for your subscription, expires at the end of "
        "{month}. Add a new card before then so your subscription continues without interruption.",
        "用于支付您订阅费用的 {brand} 卡（尾号 {last4}）将于 {month}底过期。请在此之前添加新卡，以免订阅中断。",
    ),
    # Trial ending
    "trial_ending_subject": ("Your {plan} trial ends on {date}", "您的 {plan} 试用将于 {date} 结束"),
    "trial_ending_body": (
        "Your free trial of {plan} ends on {date}. Your first invoice, for {period}, will be {amount}.",
        "您的 {plan} 免费试用将于 {date} 结束。首张发票（{period}）金额为 {amount}。",
    ),
    "trial_ending_card": (
        "We will charge your card {card} on that date. Nothing to do if this card is still right.",
        "届时我们将从您的银行卡 {card} 扣款。如果该卡信息无误，您无需进行任何操作。",
    ),
    "trial_ending_no_card": (
        "Add a card before then to keep your subscription.",
        "请在此之前添加银行卡，以保留您的订阅。",
    ),
    "trial_ending_invoice_due": (
        "We will send you the invoice on that date; it is due within {days}.",
        "届时我们将向您发送发票，请在 {days}内付款。",
    ),
    "trial_ending_invoice_now": (
        "We will send you the invoice on that date, payable on receipt.",
        "届时我们将向您发送发票，请在收到后付款。",
    ),
    "trial_ending_manage": ("Manage your card:", "管理您的银行卡："),
    # Portal
    "portal_title": ("Payment methods", "支付方式"),
    "portal_intro": (
        "The cards {merchant} can charge for your subscription. The default card is used for every payment.",
        "{merchant} 可用于收取订阅费用的银行卡。每次付款都使用默认卡。",
    ),
    "portal_no_cards": ("No card on file yet.", "尚未保存银行卡。"),
    "portal_card": ("Card", "银行卡"),
    "portal_expires": ("Expires", "有效期"),
    "portal_default": ("Default", "默认"),
    "portal_make_default": ("Make default", "设为默认"),
    "portal_add_title": ("Add a card", "添加银行卡"),
    "portal_card_number": ("Card number", "卡号"),
    "portal_exp_month": ("Expiry month (MM)", "有效期月份（MM）"),
    "portal_exp_year": ("Expiry year (YYYY)", "有效期年份（YYYY）"),
    "portal_cvc": ("Security code (CVC)", "安全码（CVC）"),
    "portal_add_button": ("Add card and make it the default", "添加银行卡并设为默认"),
    "portal_added": (
        "Your card was added and is now your default card.",
        "银行卡已添加，并已设为默认卡。",
    ),
    "portal_defaulted": ("Your default card was changed.", "默认银行卡已更改。"),
    "portal_return": ("Return to {merchant}", "返回 {merchant}"),
    "portal_expires_note": ("This page's link is valid until {expires}.", "本页面链接有效期至 {expires}。"),
    "portal_form_expired": (
        "This form is out of date. Reload the page and try again.",
        "此表单已失效。请刷新页面后重试。",
    ),
    "portal_card_invalid": (
        "The card could not be added: {reason}",
        "无法添加银行卡：{reason}",
    ),
    "portal_card_fields": (
        "Fill in the card number, the expiry month and year as numbers, and the security code.",
        "请填写卡号、数字格式的有效期月份和年份，以及安全码。",
    ),
    "language": ("Language", "语言"),
}

#: The billing interval words for "per {period}" (a plan of 3 months says "3 months").
_INTERVALS: Final[dict[str, tuple[str, str, str, str]]] = {
    # interval: (English one, English many, Chinese one, Chinese many)
    "day": ("day", "{n} days", "天", "{n} 天"),
    "week": ("week", "{n} weeks", "周", "{n} 周"),
    "month": ("month", "{n} months", "月", "{n} 个月"),
    "year": ("year", "{n} years", "年", "{n} 年"),
}


def text(key: str, locale: str, **values: object) -> str:
    """The text of `key` in `locale` (English for anything that is not zh-CN), filled with `values`."""
    english, chinese = _TEXTS[key]
    template = chinese if locale == "zh-CN" else english
    return template.format(**values) if values else template


def interval_words(interval: str, count: int, locale: str) -> str:
    one_en, many_en, one_zh, many_zh = _INTERVALS[interval]
    if locale == "zh-CN":
        return one_zh if count == 1 else many_zh.format(n=count)
    return one_en if count == 1 else many_en.format(n=count)


def day_words(days: int, locale: str) -> str:
    """A number of days as a sentence says it: "1 day", "10 days", "10 天"."""
    if locale == "zh-CN":
        return f"{days} 天"
    return "1 day" if days == 1 else f"{days} days"


def all_keys() -> frozenset[str]:
    return frozenset(_TEXTS)
