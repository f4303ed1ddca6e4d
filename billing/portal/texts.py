"""Every word the hosted portal shows, in English and Simplified Chinese (one table, one place).

Texts with ``{name}`` placeholders are filled with `str.format`, with values already formatted for the locale
(amounts and dates by babel). Texts that depend on a number have plural forms: English distinguishes CLDR's
"one" and "other", Chinese has only "other"; babel's plural rules pick the form (`plural`).
"""

from __future__ import annotations

import typing
from typing import Final

from babel import Locale

from billing.invoices.labels import BABEL_LOCALES
from billing.subscriptions.schemas import CancellationReason

_TEXTS: Final[dict[str, tuple[str, str]]] = {
    # key: (English, Simplified Chinese)
    # --- frame
    "portal": ("Billing portal", "账单门户"),
    "nav_overview": ("Overview", "概览"),
    "nav_payment_methods": ("Payment methods", "支付方式"),
    "nav_invoices": ("Invoices", "发票"),
    "nav_billing": ("Billing details", "账单信息"),
    "nav_label": ("Portal sections", "门户导航"),
    "return_to": ("Return to {merchant}", "返回 {merchant}"),
    "sign_out": ("Sign out", "退出"),
    "switch_language": ("Switch language", "切换语言"),
    "support": ("Questions? Write to {email}.", "如有疑问，请发送邮件至 {email}。"),
    "session_until": (
        "For your security, this session ends at {time}.",
        "为保障安全，本次会话将于 {time} 结束。",
    ),
    "logo_alt": ("{merchant} logo", "{merchant} 标志"),
    "back": ("Back", "返回"),
    # --- link and session pages
    "link_invalid_title": ("This link is not valid", "此链接无效"),
    "link_invalid_body": (
        "Check that you opened the whole link. To manage your subscription, go back to the app you came from "
        "and open the billing portal again.",
        "请确认打开的是完整链接。如需管理订阅，请返回您来自的应用，重新打开账单门户。",
    ),
    "link_expired_title": ("This link has expired", "此链接已过期"),
    "link_expired_body": (
        "For your security, portal links work for a limited time. Go back and open the billing portal again "
        "to get a new link.",
        "为保障安全，门户链接仅在有限时间内有效。请返回并重新打开账单门户，以获取新链接。",
    ),
    "link_used_title": ("This link was already used", "此链接已被使用"),
    "link_used_body": (
        "For your security, each link opens the portal once. Go back and open the billing portal again to get "
        "a new link.",
        "为保障安全，每个链接只能打开一次门户。请返回并重新打开账单门户，以获取新链接。",
    ),
    "signed_out_title": ("You have signed out", "您已退出"),
    "signed_out_body": (
        "To manage your subscription again, open the billing portal from the app.",
        "如需再次管理订阅，请从应用中重新打开账单门户。",
    ),
    "session_ended_title": ("Your session has ended", "会话已结束"),
    "session_ended_body": (
        "For your security, portal sessions end after a while. Open the billing portal again from the app.",
        "为保障安全，门户会话会在一段时间后结束。请从应用中重新打开账单门户。",
    ),
    "not_found_title": ("Page not found", "页面不存在"),
    "not_found_body": (
        "There is nothing here for your account. Use the menu to find your subscriptions and invoices.",
        "您的账户在此没有内容。请使用菜单查看您的订阅和发票。",
    ),
    "form_expired": ("This form is out of date", "此表单已失效"),
    "form_expired_body": (
        "It was not sent from a page of this session. Go back, reload the page and try again.",
        "该表单并非来自本次会话的页面。请返回并刷新页面后重试。",
    ),
    "in_progress": (
        "We are still processing this form. Check the result below in a moment; nothing was done twice.",
        "该表单仍在处理中，请稍后查看结果；任何操作都不会重复执行。",
    ),
    "too_many_cards": (
        "Too many card attempts from this link. For your security, try again after {time}.",
        "此链接的银行卡尝试次数过多。为保障安全，请于 {time} 之后再试。",
    ),
    # --- overview
    "overview_title": ("Your subscriptions", "您的订阅"),
    "no_subscriptions": ("You have no subscriptions.", "您目前没有订阅。"),
    "status": ("Status", "状态"),
    "quantity": ("Quantity", "数量"),
    "price": ("Price", "价格"),
    "current_period": ("Current period", "当前周期"),
    "next_invoice": ("Next invoice", "下一张发票"),
    "next_invoice_value": ("{amount} on {date}", "{date}，金额 {amount}"),
    "no_next_invoice": ("None: the subscription does not renew.", "无：该订阅不再续订。"),
    "next_invoice_after_credits": (
        "{amount} on {date}, after {credits} of prepaid credits",
        "{date}，抵扣预付额度 {credits} 后金额 {amount}",
    ),
    "items_caption": ("What you pay each period", "每个周期的费用"),
    "item": ("Item", "项目"),
    "unit_price": ("Unit price", "单价"),
    "amount": ("Amount", "金额"),
    "items_total": ("Total", "合计"),
    "addon": ("add-on", "附加项"),
    "credits_title": ("Prepaid credits", "预付额度"),
    "credits_balance": ("Balance", "余额"),
    "credits_explained": (
        "Your credits pay your invoices first; only the rest is charged to your payment method.",
        "您的预付额度会优先抵扣发票，仅剩余部分从您的支付方式扣款。",
    ),
    "credits_expiring": ("Expiring", "即将到期"),
    "credits_expire_on": ("{amount} expire on {date}", "{amount} 将于 {date} 到期"),
    "credits_auto_top_up": ("Automatic top-up", "自动充值"),
    "credits_auto_top_up_value": (
        "{amount} is bought when the balance falls below {threshold}",
        "余额低于 {threshold} 时自动购买 {amount}",
    ),
    "cancels_on": ("Ends on {date}: it will not renew.", "将于 {date} 结束，不再续订。"),
    "badge_ends": ("Ends {date}", "{date} 结束"),
    "ended_on": ("Ended on {date}.", "已于 {date} 结束。"),
    "paused_since": (
        "Paused since {date}: nothing is billed while it is paused.",
        "自 {date} 起暂停，暂停期间不计费。",
    ),
    "cancel_reason_shown": ("Reason you gave: {reason}", "您提供的原因：{reason}"),
    "change_plan": ("Change plan", "更改套餐"),
    "cancel_subscription": ("Cancel subscription", "取消订阅"),
    "keep_subscription": ("Keep my subscription", "保留订阅"),
    "renew_button": ("Don't cancel: keep renewing", "不取消，继续续订"),
    "trial_banner": (
        "Your free trial of {plan} ends on {date}.",
        "您的 {plan} 免费试用将于 {date} 结束。",
    ),
    "trial_card": (
        "Then {card} will be charged {amount}.",
        "届时将从 {card} 扣款 {amount}。",
    ),
    "trial_no_card": (
        "Add a payment method before then to keep your subscription.",
        "请在此之前添加支付方式，以保留您的订阅。",
    ),
    "trial_invoice": (
        "Then an invoice of {amount} is sent to you, to pay by its due date.",
        "届时我们将向您发送一张 {amount} 的发票，请在到期日前支付。",
    ),
    "past_due_banner": (
        "We could not collect {amount} for invoice {number}: {reason}",
        "我们未能收取发票 {number} 的款项 {amount}：{reason}",
    ),
    "past_due_action": (
        "Pay it now, or add a new payment method: we will charge it at once.",
        "请立即支付，或添加新的支付方式：我们会立即从新支付方式扣款。",
    ),
    "incomplete_banner": (
        "Your subscription starts once its first invoice ({amount}) is paid.",
        "首张发票（{amount}）支付后，您的订阅即会开始。",
    ),
    "open_invoice_banner": (
        "Invoice {number} for {amount} is due on {date}.",
        "发票 {number}（{amount}）的付款截止日期为 {date}。",
    ),
    "pay_now": ("Pay now", "立即支付"),
    "next_retry": ("Otherwise we will try again on {date}.", "否则我们将于 {date} 再次尝试扣款。"),
    "update_payment_method": ("Update payment method", "更新支付方式"),
    "unknown_reason": ("the payment did not go through.", "付款未成功。"),
    # --- change plan
    "change_title": ("Change your plan", "更改套餐"),
    "choose_plan": ("Choose a plan", "选择套餐"),
    "current_plan": ("Current plan", "当前套餐"),
    "no_other_plans": (
        "No other plan is offered here; you can still change the quantity.",
        "此处未提供其他套餐；您仍可以更改数量。",
    ),
    "review_change": ("Review the change", "查看变更"),
    "same_as_now": (
        "That is your current plan and quantity. Choose another plan or quantity.",
        "这是您当前的套餐和数量。请选择其他套餐或数量。",
    ),
    "plan_unavailable": (
        "That plan is not available. Choose one of the plans listed.",
        "该套餐不可用。请从列出的套餐中选择。",
    ),
    "quantity_invalid": (
        "Enter a quantity as a whole number from 1 to 1,000,000.",
        "请输入 1 到 1,000,000 之间的整数数量。",
    ),
    "change_not_allowed": (
        "This subscription cannot be changed here now.",
        "目前无法在此更改该订阅。",
    ),
    "preview_title": ("Review your change", "确认变更"),
    "preview_from_to": ("From {old} to {new}", "从 {old} 变更为 {new}"),
    "plan_times": ("{plan} × {quantity}", "{plan} × {quantity}"),
    "credit_line": ("Credit for unused time on {plan}", "{plan} 未使用时间的抵扣"),
    "charge_line": ("Remaining time on {plan}", "{plan} 本周期剩余时间的费用"),
    "first_period_line": ("{plan}, first period", "{plan}，首个计费周期"),
    "due_today": ("Due today", "今日应付"),
    "next_invoice_on": ("Next invoice, on {date}", "下一张发票（{date}）"),
    "explain_create_prorations": (
        "The credit and the charge are added to your next invoice: nothing is charged today.",
        "抵扣与费用将计入您的下一张发票，今天不会扣款。",
    ),
    "explain_charge_today": (
        "{amount} is charged today to your default payment method.",
        "今天将从您的默认支付方式扣款 {amount}。",
    ),
    "explain_invoice_today": (
        "An invoice of {amount} is sent to you today, to pay by its due date.",
        "今天将向您发送一张 {amount} 的发票，请在到期日前支付。",
    ),
    "explain_credit_kept": (
        "What is left of the credit stays on your account and pays your next invoices.",
        "剩余的抵扣金额将保留在您的账户中，用于支付之后的发票。",
    ),
    "explain_no_proration": (
        "No proration: the new price applies from your next invoice.",
        "不按比例计费：新价格从下一张发票开始生效。",
    ),
    "explain_trial": (
        "You are in your free trial: the new plan applies now, and your first invoice bills it.",
        "您正处于免费试用期：新套餐立即生效，首张发票将按新套餐计费。",
    ),
    "explain_new_cycle": (
        "The billing period changes, so a new billing cycle starts today.",
        "计费周期发生变化，新的计费周期从今天开始。",
    ),
    "confirm_change": ("Confirm change", "确认变更"),
    "amounts_changed": (
        "The amounts changed since you looked. Check them again before you confirm.",
        "自您查看以来金额已发生变化，请在确认前重新核对。",
    ),
    "changed_notice": ("Your plan was changed.", "您的套餐已更改。"),
    "changed_paid_notice": (
        "Your plan was changed, and {amount} was charged for it.",
        "您的套餐已更改，并已扣款 {amount}。",
    ),
    "changed_failed_notice": (
        "Your plan was changed, but the payment of {amount} failed: {reason} Pay invoice {number} to keep "
        "your subscription.",
        "您的套餐已更改，但 {amount} 的付款失败：{reason} 请支付发票 {number}，以保留您的订阅。",
    ),
    # --- cancel
    "cancel_title": ("Cancel your subscription", "取消订阅"),
    "cancel_at_end_explain": (
        "Your {plan} subscription stays active until {date}, and you will not be charged again.",
        "您的 {plan} 订阅将保持有效至 {date}，此后不会再扣款。",
    ),
    "cancel_when": ("When should it end?", "何时结束？"),
    "cancel_at_end_option": ("At the end of the current period ({date})", "当前计费周期结束时（{date}）"),
    "cancel_now_option": ("Now", "立即"),
    "cancel_now_credit": (
        "Ended now, the unused time is credited to your account balance.",
        "立即取消后，未使用时间的费用将抵扣至您的账户余额。",
    ),
    "cancel_now_no_credit": (
        "Ended now, the time left in this period is not refunded.",
        "立即取消后，本周期剩余时间的费用不予退还。",
    ),
    "cancel_reason": ("Why are you cancelling? (optional)", "取消原因（可选）"),
    "cancel_comment": ("Anything else you want to tell us? (optional)", "还有其他想告诉我们的吗？（可选）"),
    "cancel_confirm": ("Cancel subscription", "确认取消订阅"),
    "cancel_not_allowed": (
        "This subscription cannot be cancelled here. Contact {merchant} to cancel it.",
        "无法在此取消该订阅。如需取消，请联系 {merchant}。",
    ),
    "cancel_scheduled_notice": (
        "Your subscription will end on {date}. You can undo this until then.",
        "您的订阅将于 {date} 结束。在此之前您可以撤销取消。",
    ),
    "cancelled_now_notice": ("Your subscription was cancelled.", "您的订阅已取消。"),
    "renewed_notice": ("Your subscription will keep renewing as before.", "您的订阅将照常续订。"),
    "comment_too_long": ("Keep the comment under 1,000 characters.", "备注请控制在 1,000 个字符以内。"),
    "reason_too_expensive": ("It is too expensive", "价格太贵"),
    "reason_missing_features": ("It lacks features I need", "缺少我需要的功能"),
    "reason_switched_service": ("I switched to another service", "我改用了其他服务"),
    "reason_unused": ("I don't use it enough", "我用得不多"),
    "reason_customer_service": ("Customer service was not good enough", "客户服务不够好"),
    "reason_too_complex": ("It is too complicated", "使用太复杂"),
    "reason_low_quality": ("The quality was not what I expected", "质量不如预期"),
    "reason_other": ("Another reason", "其他原因"),
    # --- payment methods
    "pm_title": ("Payment methods", "支付方式"),
    "pm_intro": (
        "The payment methods {merchant} can charge for your subscription. The default one pays every invoice.",
        "{merchant} 可用于收取订阅费用的支付方式。每张发票都使用默认支付方式支付。",
    ),
    "pm_none": ("No payment method on file yet.", "尚未保存支付方式。"),
    "pm_method": ("Payment method", "支付方式"),
    "pm_expires": ("Expires", "有效期"),
    "pm_default": ("Default", "默认"),
    "pm_make_default": ("Make default", "设为默认"),
    "pm_remove": ("Remove", "删除"),
    "pm_remove_label": ("Remove {method}", "删除 {method}"),
    "pm_default_label": ("Make {method} the default", "将 {method} 设为默认"),
    "pm_add_card": ("Add a card", "添加银行卡"),
    "pm_other_ways": ("Other ways to pay", "其他支付方式"),
    "pm_add_agreement": ("Add {channel}", "添加{channel}"),
    "pm_pending": ("Waiting for your approval", "等待您授权"),
    "pm_revoked": ("Revoked", "已解约"),
    "pm_scan": (
        "Scan this code with {channel} to approve automatic payments, or open the approval page.",
        "请使用{channel}扫描此二维码以授权自动扣款，或打开授权页面。",
    ),
    "pm_open_channel": ("Open {channel}", "打开{channel}"),
    "pm_qr_alt": ("QR code to approve {channel}", "用于授权{channel}的二维码"),
    "pm_approve_by": ("Approve before {time}.", "请在 {time} 之前完成授权。"),
    "card_number": ("Card number", "卡号"),
    "exp_month": ("Expiry month (MM)", "有效期月份（MM）"),
    "exp_year": ("Expiry year (YYYY)", "有效期年份（YYYY）"),
    "cvc": ("Security code (CVC)", "安全码（CVC）"),
    "add_card_button": ("Add card and make it the default", "添加银行卡并设为默认"),
    "card_added": ("Your card was added and is now your default.", "银行卡已添加，并已设为默认支付方式。"),
    "agreement_started": (
        "Approve the new payment method in the app it belongs to; it shows here as pending until you do.",
        "请在对应应用中授权新的支付方式；授权完成前，它在此显示为待授权。",
    ),
    "defaulted": ("Your default payment method was changed.", "默认支付方式已更改。"),
    "removed": ("The payment method was removed.", "支付方式已删除。"),
    "cannot_remove_default": (
        "Your default payment method pays your subscription. Make another one the default before you remove it.",
        "默认支付方式用于支付您的订阅。删除前，请先将其他支付方式设为默认。",
    ),
    "card_invalid": ("The card could not be added: {reason}", "无法添加银行卡：{reason}"),
    "card_fields": (
        "Fill in the card number, the expiry month and year as numbers, and the security code.",
        "请填写卡号、数字格式的有效期月份和年份，以及安全码。",
    ),
    "retried_paid": (
        "Invoice {number} ({amount}) was paid with it.",
        "发票 {number}（{amount}）已使用该支付方式支付。",
    ),
    "retried_failed": (
        "We tried to pay invoice {number} ({amount}) with it, but the payment failed: {reason}",
        "我们尝试使用该支付方式支付发票 {number}（{amount}），但付款失败：{reason}",
    ),
    # --- invoices
    "invoices_title": ("Invoices", "发票"),
    "no_invoices": ("No invoices yet.", "暂无发票。"),
    "invoice_number": ("Number", "编号"),
    "invoice_date": ("Date", "日期"),
    "invoice_amount": ("Amount", "金额"),
    "invoice_view": ("View", "查看"),
    "invoice_view_label": ("View invoice {number}", "查看发票 {number}"),
    "invoice_pdf": ("Download PDF", "下载 PDF"),
    "invoice_pdf_label": ("Download invoice {number} as PDF", "下载发票 {number} 的 PDF"),
    "invoice_pay_label": ("Pay invoice {number}", "支付发票 {number}"),
    "remaining": ("{amount} to pay", "待付 {amount}"),
    # --- pay
    "pay_title": ("Pay invoice {number}", "支付发票 {number}"),
    "amount_due": ("Amount to pay", "应付金额"),
    "due_date": ("Due date", "到期日期"),
    "pay_with": ("Pay with", "支付方式"),
    "new_card": ("A new card", "新银行卡"),
    "save_default": ("Save this card as my default payment method", "将此卡保存为默认支付方式"),
    "pay_button": ("Pay {amount}", "支付 {amount}"),
    "paid_notice": (
        "Thank you: invoice {number} is paid ({amount} charged to {card}).",
        "谢谢！发票 {number} 已支付（已从 {card} 扣款 {amount}）。",
    ),
    "paid_notice_plain": ("Thank you: invoice {number} is paid.", "谢谢！发票 {number} 已支付。"),
    "pay_failed": ("The payment failed: {reason}", "付款失败：{reason}"),
    "pay_pending": (
        "Your payment is being confirmed. You were charged at most once; check back in a few minutes.",
        "您的付款正在确认中，最多只会扣款一次；请几分钟后再查看。",
    ),
    "nothing_to_pay": ("This invoice has nothing left to pay.", "此发票已无需支付。"),
    "choose_method": ("Choose how to pay.", "请选择支付方式。"),
    "back_to_invoice": ("Back to the invoice", "返回发票"),
    # --- billing details
    "billing_title": ("Billing details", "账单信息"),
    "billing_intro": (
        "Printed on your future invoices. Invoices already issued keep the details they were issued with.",
        "这些信息将打印在您今后的发票上；已开具的发票保留开具时的信息。",
    ),
    "name": ("Name", "名称"),
    "email": ("Email", "邮箱"),
    "address": ("Address", "地址"),
    "line1": ("Address line 1", "地址第一行"),
    "line2": ("Address line 2 (optional)", "地址第二行（可选）"),
    "city": ("City", "城市"),
    "state": ("State or province", "省 / 州"),
    "postal_code": ("Postal code", "邮政编码"),
    "country": ("Country or region", "国家或地区"),
    "choose_country": ("Choose…", "请选择…"),
    "tax_ids": ("Tax IDs", "税号"),
    "tax_id_type": ("Tax ID type", "税号类型"),
    "tax_id_value": ("Tax ID", "税号"),
    "add_tax_id": ("Add a tax ID (optional)", "添加税号（可选）"),
    "no_tax_ids": ("No tax ID yet.", "尚未添加税号。"),
    "save": ("Save", "保存"),
    "saved": ("Your billing details were saved.", "账单信息已保存。"),
    "tax_id_removed": ("The tax ID was removed.", "税号已删除。"),
    "email_invalid": (
        "Enter an email address such as name@example.com.",
        "请输入有效的邮箱地址，例如 name@example.com。",
    ),
    "name_invalid": ("Enter a name of at most 256 characters.", "名称最多 256 个字符。"),
    "field_too_long": (
        "Keep each address field under 200 characters.",
        "每个地址字段请控制在 200 个字符以内。",
    ),
    "country_required": (
        "Choose the country or region of the address.",
        "请选择地址所在的国家或地区。",
    ),
    "tax_id_invalid": (
        "That {kind} does not look right: it should look like {example}.",
        "该{kind}格式不正确，应类似 {example}。",
    ),
    "not_saved": ("Your details could not be saved: {reason}", "无法保存您的信息：{reason}"),
    # --- why a card was not accepted (the vault's codes)
    "card_invalid_number": ("the card number is not valid; check the digits.", "卡号无效，请检查数字。"),
    "card_incorrect_number": ("the card number is incorrect; check the digits.", "卡号不正确，请检查数字。"),
    "card_card_brand_unsupported": (
        "this kind of card is not accepted; use another card.",
        "不支持该类型的银行卡，请使用其他银行卡。",
    ),
    "card_invalid_expiry_month": ("the expiry month must be 1 to 12.", "有效期月份应为 1 到 12。"),
    "card_invalid_expiry_year": ("the expiry year is not valid.", "有效期年份无效。"),
    "card_expired_card": ("the card has expired.", "该卡已过期。"),
    "card_invalid_cvc": (
        "the security code is not valid (3 digits, 4 for American Express).",
        "安全码无效（3 位数字，美国运通卡为 4 位）。",
    ),
}

# Texts that depend on a count: English (one, other) and Chinese (other).
_PLURALS: Final[dict[str, tuple[str, str, str]]] = {
    "price_per": ("{amount} per {period}", "{amount} every {period}", "每{period} {amount}"),
    "days_left": ("{count} day left", "{count} days left", "还剩 {count} 天"),
    "credits_count": ("{credits} credit", "{credits} credits", "{credits} 点额度"),
    "open_invoices": (
        "You have {count} invoice to pay.",
        "You have {count} invoices to pay.",
        "您有 {count} 张待支付的发票。",
    ),
    "card_attempts_left": (
        "{count} more card attempt is allowed from this link within the hour.",
        "{count} more card attempts are allowed from this link within the hour.",
        "一小时内，此链接还可尝试 {count} 次银行卡。",
    ),
}

STATUSES: Final[dict[str, tuple[str, str]]] = {
    "trialing": ("Free trial", "免费试用"),
    "active": ("Active", "有效"),
    "past_due": ("Payment overdue", "逾期未付"),
    "unpaid": ("Unpaid", "未付款"),
    "paused": ("Paused", "已暂停"),
    "canceled": ("Cancelled", "已取消"),
    "incomplete": ("Awaiting first payment", "待首次付款"),
    "incomplete_expired": ("Expired", "已失效"),
}

# The reasons the portal offers: the API's (billing.subscriptions.schemas), each with its words above.
CANCELLATION_REASONS: Final[tuple[str, ...]] = typing.get_args(CancellationReason)


def text(key: str, locale: str, **values: object) -> str:
    """The text of `key` in `locale` (English for anything that is not zh-CN), filled with `values`."""
    english, chinese = _TEXTS[key]
    template = chinese if locale == "zh-CN" else english
    return template.format(**values) if values else template


def plural(key: str, count: int, locale: str, **values: object) -> str:
    """The form of `key` for `count` in `locale` (CLDR plural rules, through babel), filled with `values` and
    `count`."""
    one, other, chinese = _PLURALS[key]
    if locale == "zh-CN":
        template = chinese
    else:
        form = Locale.parse(BABEL_LOCALES.get(locale, "en_US")).plural_form(count)
        template = one if form == "one" else other
    return template.format(count=count, **values)


def card_error(code: str | None, message: str | None, locale: str) -> str:
    """Why a card was not accepted, in `locale` when we know the code, else the engine's message."""
    key = f"card_{code}"
    if key in _TEXTS:
        return text(key, locale)
    return message or text("unknown_reason", locale)


def status_text(status: str, locale: str) -> str:
    english, chinese = STATUSES.get(status, (status, status))
    return chinese if locale == "zh-CN" else english


def all_keys() -> frozenset[str]:
    return frozenset(_TEXTS)


def plural_keys() -> frozenset[str]:
    return frozenset(_PLURALS)
