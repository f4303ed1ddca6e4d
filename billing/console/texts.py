"""Every word the finance console shows, in English and Simplified Chinese (one table), and how the console picks
the language: the switcher's choice stored in the login session, else the browser's Accept-Language, else
English. Invoice statuses and invoice words come from `billing.invoices.labels`."""

from __future__ import annotations

from typing import Final

from billing.invoices.labels import LOCALES, Locale, normalize_locale

_TEXTS: Final[dict[str, tuple[str, str]]] = {
    # Frame
    "console": ("Finance console", "财务控制台"),
    "skip": ("Skip to content", "跳到正文"),
    "nav_invoices": ("Invoices", "发票"),
    "nav_reports": ("Reports", "报表"),
    "nav_exports": ("Exports", "导出"),
    "nav_audit": ("Audit log", "审计日志"),
    "nav_reconciliation": ("Reconciliation", "对账"),
    "nav_risk": ("Risk review", "风控审核"),
    "nav_keys": ("API keys", "API 密钥"),
    "nav_settings": ("Settings", "设置"),
    "logout": ("Log out", "退出登录"),
    "language": ("Language", "语言"),
    "signed_in_as": ("{email} · {role}", "{email} · {role}"),
    "role_finance": ("finance", "财务"),
    "role_admin": ("admin", "管理员"),
    "apply": ("Apply", "应用"),
    "reset": ("Reset", "重置"),
    "previous": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "page_of": ("Page {page} of {pages} · {total} results", "第 {page}/{pages} 页 · 共 {total} 条"),
    "none": ("None", "无"),
    "yes": ("Yes", "是"),
    "no": ("No", "否"),
    "not_found": ("Not found", "未找到"),
    "not_found_body": ("There is nothing at this address in your account.", "您的账户中没有此页面。"),
    "forbidden": ("Not allowed", "无权访问"),
    "forbidden_body": (
        "Only an admin of your account can open this page. Ask an admin to do it for you.",
        "只有账户管理员可以打开此页面。请联系管理员代为操作。",
    ),
    "form_expired": (
        "This form is out of date (its security token did not match). Reload the page and try again.",
        "此表单已过期（安全令牌不匹配）。请刷新页面后重试。",
    ),
    "action_failed": ("The action was not carried out: {reason}", "操作未执行：{reason}"),
    # Login
    "login_title": ("Log in to the finance console", "登录财务控制台"),
    "email": ("Email", "邮箱"),
    "password": ("Password", "密码"),
    "login": ("Log in", "登录"),
    "login_invalid": ("Wrong email or password.", "邮箱或密码错误。"),
    "login_locked": (
        "Too many failed attempts: this account is locked until {until}. Try again then, or ask an admin to "
        "reset your password.",
        "失败次数过多：此账户已锁定至 {until}。请届时重试，或请管理员重置您的密码。",
    ),
    "login_help": (
        "Accounts are created by an operator with `billing users create`. After {attempts} wrong passwords in a "
        "row an account is locked for {minutes} minutes.",
        "账户由运维人员通过 `billing users create` 创建。连续 {attempts} 次密码错误后，账户将被锁定 {minutes} 分钟。",
    ),
    "logged_out": ("You are logged out.", "您已退出登录。"),
    "session_expired": ("Your session has ended. Log in again.", "您的会话已结束，请重新登录。"),
    # Invoice list
    "invoices_title": ("Invoices", "发票"),
    "search": ("Search", "搜索"),
    "search_hint": ("Number, customer email or name", "发票编号、客户邮箱或名称"),
    "status": ("Status", "状态"),
    "any": ("Any", "全部"),
    "customer": ("Customer", "客户"),
    "customer_hint": ("Customer id, cus_...", "客户 ID，cus_..."),
    "currency": ("Currency", "币种"),
    "created_from": ("Created from", "创建日期自"),
    "created_to": ("Created to", "创建日期至"),
    "total_min": ("Total at least", "总额不低于"),
    "total_max": ("Total at most", "总额不高于"),
    "amount_hint": ("e.g. 99.00", "例如 99.00"),
    "overdue_only": ("Overdue only", "仅逾期"),
    "number": ("Number", "编号"),
    "created": ("Created", "创建时间"),
    "due": ("Due", "到期"),
    "total": ("Total", "总额"),
    "remaining": ("Remaining", "未付金额"),
    "overdue": ("Overdue", "已逾期"),
    "overdue_days": ("{days} days overdue", "逾期 {days} 天"),
    "no_invoices": ("No invoice matches these filters.", "没有符合筛选条件的发票。"),
    "sort_by": ("Sort by {column}", "按{column}排序"),
    "filters": ("Filters", "筛选"),
    "export_these": ("Export invoices as CSV", "导出发票 CSV"),
    # Invoice detail
    "invoice": ("Invoice", "发票"),
    "back_to_list": ("All invoices", "全部发票"),
    "summary": ("Summary", "概要"),
    "lines": ("Lines", "明细"),
    "description": ("Description", "描述"),
    "period": ("Period", "期间"),
    "quantity": ("Qty", "数量"),
    "unit_price": ("Unit price", "单价"),
    "amount": ("Amount", "金额"),
    "discount": ("Discount", "折扣"),
    "tax": ("Tax", "税额"),
    "tiers": ("Tier breakdown", "阶梯明细"),
    "line_subscription": ("subscription", "订阅"),
    "line_usage": ("usage", "用量"),
    "line_proration": ("proration", "按比例调整"),
    "line_adjustment": ("adjustment", "调整"),
    "test_clock_badge": ("Test clock", "测试时钟"),
    "tier": ("Tier", "阶梯"),
    "units": ("Units", "用量区间"),
    "flat_fee": ("Flat fee", "固定费用"),
    "tax_by_rate": ("Tax by rate", "按税率分列的税额"),
    "rate": ("Rate", "税率"),
    "taxable": ("Taxable amount", "应税金额"),
    "inclusive": ("inclusive", "价内税"),
    "exclusive": ("exclusive", "价外税"),
    "subtotal": ("Subtotal", "小计"),
    "amount_due": ("Amount due", "应付金额"),
    "amount_paid": ("Amount paid", "已付金额"),
    "amount_remaining": ("Amount remaining", "未付金额"),
    "balance_applied": ("Customer balance applied", "已抵扣客户余额"),
    "credited": ("Credited", "已贷记"),
    "payments": ("Payments", "付款记录"),
    "no_payments": ("No payment attempt yet.", "尚无付款尝试。"),
    "attempt": ("Attempt", "尝试"),
    "gateway": ("Gateway", "网关"),
    "card": ("Card", "银行卡"),
    "failure": ("Failure", "失败原因"),
    "refunds": ("Refunds", "退款"),
    "no_refunds": ("No refund.", "无退款。"),
    "credit_notes": ("Credit notes", "贷项通知单"),
    "no_credit_notes": ("No credit note.", "无贷项通知单。"),
    "reason": ("Reason", "原因"),
    "refund": ("Refund", "退款"),
    "to_balance": ("To balance", "转入余额"),
    "out_of_band": ("Outside the engine", "线下退还"),
    "timeline": ("Events", "事件时间线"),
    "no_events": ("No event.", "无事件。"),
    "audit_of_invoice": ("Console actions on this invoice", "控制台对此发票的操作"),
    "actions": ("Actions", "操作"),
    "finalize": ("Finalize", "定稿"),
    "void": ("Void", "作废"),
    "mark_uncollectible": ("Mark uncollectible", "标记为无法收回"),
    "retry_payment": ("Retry payment now", "立即重试扣款"),
    "resend_email": ("Email the invoice to the customer", "通过邮件向客户发送发票"),
    "download_pdf": ("PDF", "PDF"),
    "hosted_page": ("Customer's page", "客户付款页"),
    "issue_credit_note": ("Issue a credit note", "开具贷项通知单"),
    "cn_amount": ("Amount to credit", "贷记金额"),
    "cn_amount_hint": ("At most {amount}", "最多 {amount}"),
    "cn_memo": ("Memo (shown on the credit note)", "备注（显示在贷项通知单上）"),
    "cn_refund": ("Refund to the card", "退回银行卡"),
    "cn_credit": ("Credit to the customer balance", "计入客户余额"),
    "cn_out_of_band": ("Given back outside the engine", "线下退还"),
    "cn_split_hint": (
        "The invoice is paid: say where the money goes. The three parts must add up to the amount (all "
        "empty: everything to the customer balance).",
        "发票已支付：请说明款项去向。三项之和必须等于贷记金额（均留空：全部计入客户余额）。",
    ),
    "cn_open_hint": (
        "The invoice is not paid: the credit reduces what the customer owes.",
        "发票尚未支付：贷记金额将减少客户的应付款。",
    ),
    "reason_none": ("No reason given", "未说明原因"),
    "reason_duplicate": ("Duplicate", "重复收费"),
    "reason_fraudulent": ("Fraudulent", "欺诈"),
    "reason_order_change": ("Order change", "订单变更"),
    "reason_product_unsatisfactory": ("Product unsatisfactory", "产品不满意"),
    "confirm_void": (
        "Void this invoice? The customer will owe nothing on it.",
        "确定作废此发票？客户将无需为此付款。",
    ),
    "done_finalize": ("The invoice was finalized.", "发票已定稿。"),
    "done_void": ("The invoice was voided.", "发票已作废。"),
    "done_mark_uncollectible": ("The invoice was marked uncollectible.", "发票已标记为无法收回。"),
    "done_credit_note": ("Credit note {number} was issued.", "已开具贷项通知单 {number}。"),
    "done_retry_paid": ("The payment succeeded: the invoice is paid.", "扣款成功：发票已支付。"),
    "done_retry_failed": ("The payment failed: {reason}", "扣款失败：{reason}"),
    "done_retry_pending": (
        "The payment is being confirmed with the gateway; reload in a minute.",
        "正在与网关确认扣款结果，请稍后刷新。",
    ),
    "done_email": ("The invoice email was queued for {email}.", "发票邮件已排队发送至 {email}。"),
    "amount_invalid": (
        "{field}: enter an amount such as 12.50 ({currency} has {digits} decimals).",
        "{field}：请输入金额，例如 12.50（{currency} 保留 {digits} 位小数）。",
    ),
    # Audit
    "audit_title": ("Audit log", "审计日志"),
    "when": ("When", "时间"),
    "who": ("Who", "操作人"),
    "what": ("What", "操作"),
    "object": ("Object", "对象"),
    "before": ("Before", "操作前"),
    "after": ("After", "操作后"),
    "no_audit": ("No console action yet.", "尚无控制台操作。"),
    # Keys
    "keys_title": ("API keys", "API 密钥"),
    "keys_intro": (
        "Secret keys (sk_) call the API from your servers; publishable keys (pk_) only tokenize cards in a "
        "browser. A rolled key keeps working until its expiry, so you can deploy the new one first.",
        "密钥（sk_）供您的服务器调用 API；可发布密钥（pk_）仅用于在浏览器中对银行卡进行令牌化。"
        "滚动更新后，旧密钥在到期前仍然有效，方便您先部署新密钥。",
    ),
    "kind": ("Kind", "类型"),
    "key": ("Key", "密钥"),
    "key_status": ("Status", "状态"),
    "expires": ("Expires", "到期时间"),
    "kind_secret": ("Secret", "密钥"),
    "kind_publishable": ("Publishable", "可发布密钥"),
    "key_active": ("Active", "有效"),
    "key_expiring": ("Expiring", "即将失效"),
    "key_expired": ("Expired", "已失效"),
    "key_revoked": ("Revoked", "已撤销"),
    "create_key": ("Create key", "创建密钥"),
    "roll": ("Roll", "滚动更新"),
    "revoke": ("Revoke", "撤销"),
    "grace_hours": ("Old key works for (hours)", "旧密钥保留时长（小时）"),
    "new_key_once": (
        "Copy this key now: it is shown only once.",
        "请立即复制此密钥：它只会显示这一次。",
    ),
    "key_created": ("Key {id} was created.", "已创建密钥 {id}。"),
    "key_rolled": (
        "Key {old} was rolled: it keeps working until {until}; the new key {id} works now.",
        "密钥 {old} 已滚动更新：在 {until} 前仍然有效；新密钥 {id} 立即生效。",
    ),
    "key_revoked_done": ("Key {id} was revoked.", "密钥 {id} 已撤销。"),
    # Settings
    "settings_title": ("Settings", "设置"),
    "invoice_prefix": ("Invoice number prefix", "发票编号前缀"),
    "retry_schedule": ("Retry schedule (days after the first failure)", "重试计划（首次失败后的天数）"),
    "retry_schedule_hint": ("Comma-separated, e.g. 1, 3, 5, 7", "以逗号分隔，例如 1, 3, 5, 7"),
    "final_action": ("When every retry failed", "所有重试失败后"),
    "final_cancel": ("Cancel the subscription", "取消订阅"),
    "final_unpaid": ("Mark the subscription unpaid", "将订阅标记为未付款"),
    "final_past_due": ("Leave it past due", "保持逾期状态"),
    "smart_retries": ("Smart retry hour", "智能重试时段"),
    "save": ("Save", "保存"),
    "settings_saved": ("The settings were saved.", "设置已保存。"),
    "gateways": ("Gateway connections", "网关连接"),
    "weight": ("Weight", "权重"),
    # Exports
    "exports_title": ("Exports", "导出"),
    "exports_intro": (
        "CSV files, one row per object created in the period (UTC dates, both included), amounts in minor "
        "units with their currency, times in RFC 3339. The columns are documented in docs/console.md.",
        "CSV 文件，每个在期间内创建的对象一行（UTC 日期，含首尾两天），金额为最小货币单位并附币种，时间为 RFC 3339 格式。"
        "各列含义见 docs/console.md。",
    ),
    "from": ("From", "开始日期"),
    "to": ("To", "结束日期"),
    "download": ("Download {name}.csv", "下载 {name}.csv"),
    "export_invoices": ("Invoices", "发票"),
    "export_invoice_lines": ("Invoice lines", "发票明细"),
    "export_payments": ("Payments", "付款"),
    "export_refunds": ("Refunds", "退款"),
    "export_credit_notes": ("Credit notes", "贷项通知单"),
    # Reports
    "reports_title": ("Reports", "报表"),
    "report_scope": ("Data", "数据范围"),
    "scope_live": ("Live (real time)", "实时数据"),
    "scope_clock": ("Test clock {name}", "测试时钟 {name}"),
    "months_from": ("From month", "起始月份"),
    "months_to": ("To month", "结束月份"),
    "as_of": ("As of {date}", "截至 {date}"),
    "mrr": ("MRR", "月经常性收入（MRR）"),
    "arr": ("ARR", "年经常性收入（ARR）"),
    "mrr_title": ("MRR and ARR", "MRR 与 ARR"),
    "mrr_movements": ("MRR movements", "MRR 变动"),
    "month": ("Month", "月份"),
    "new": ("New", "新增"),
    "expansion": ("Expansion", "扩张"),
    "contraction": ("Contraction", "收缩"),
    "churned": ("Churned", "流失"),
    "reactivated": ("Reactivated", "重新激活"),
    "net_change": ("Net change", "净变化"),
    "metered": ("Metered revenue (apart)", "计量收入（单列）"),
    "active_customers": ("Paying customers", "付费客户"),
    "churn_title": ("Churn", "流失"),
    "customers_at_start": ("Customers at start", "期初客户"),
    "customers_churned": ("Customers churned", "流失客户"),
    "customer_churn": ("Customer churn", "客户流失率"),
    "gross_revenue_churn": ("Gross revenue churn", "总收入流失率"),
    "net_revenue_churn": ("Net revenue churn", "净收入流失率"),
    "mrr_at_start": ("MRR at start", "期初 MRR"),
    "ar_title": ("Accounts receivable ageing", "应收账款账龄"),
    "bucket_current": ("Current", "未到期"),
    "bucket_1_30": ("1–30 days", "1–30 天"),
    "bucket_31_60": ("31–60 days", "31–60 天"),
    "bucket_61_90": ("61–90 days", "61–90 天"),
    "bucket_90_plus": ("90+ days", "90 天以上"),
    "invoices_count": ("Invoices", "发票数"),
    "outstanding": ("Outstanding", "未收款"),
    "dunning_title": ("Revenue recovered by dunning", "催缴挽回收入"),
    "recovered": ("Recovered", "已挽回"),
    "recovery_rate": ("Recovery rate", "挽回率"),
    "cases_opened": ("Cases opened", "新增催缴"),
    "cases_recovered": ("Recovered cases", "挽回案例"),
    "cases_exhausted": ("Exhausted", "重试用尽"),
    "success_title": ("Payment success rate", "支付成功率"),
    "by_gateway": ("By gateway", "按网关"),
    "by_reason": ("Declines by reason", "按拒付原因"),
    "attempts": ("Attempts", "尝试次数"),
    "succeeded": ("Succeeded", "成功"),
    "failed": ("Failed", "失败"),
    "success_rate": ("Success rate", "成功率"),
    "decline_reason": ("Decline reason", "拒付原因"),
    "share": ("Share of failures", "占失败比例"),
    "revenue_title": ("Revenue by month", "每月收入"),
    "invoiced": ("Invoiced", "已开票"),
    "paid": ("Paid", "已收款"),
    "refunded": ("Refunded", "已退款"),
    "credited_col": ("Credited", "已贷记"),
    "refunds_title": ("Refunds", "退款"),
    "no_data": ("No data for this period.", "此期间无数据。"),
    "chart_of": ("Chart: {title}", "图表：{title}"),
    "table_of": ("Figures behind the chart", "图表数据"),
    # Reconciliation (SPEC §8)
    "recon_title": ("Reconciliation", "对账"),
    "recon_intro": (
        "A connection's settlement listing of one day, matched against the payments and refunds the engine "
        "recorded. Rows that differ are highlighted.",
        "某个通道一天的结算清单与系统记录的付款和退款逐笔核对。不一致的行会突出显示。",
    ),
    "recon_connection": ("Connection", "通道"),
    "recon_date": ("Settlement day", "结算日"),
    "recon_show": ("Show", "查看"),
    "recon_refresh": ("Fetch the listing again", "重新获取结算清单"),
    "recon_counts": ("{connection} · {date}", "{connection} · {date}"),
    "recon_matched": ("Matched", "一致"),
    "recon_amount_mismatch": ("Amount mismatch", "金额不一致"),
    "recon_missing_in_engine": ("Missing in the engine", "系统中缺失"),
    "recon_missing_in_settlement": ("Missing in the settlement", "结算清单中缺失"),
    "recon_run_at": ("Matched at {at}", "核对时间 {at}"),
    "recon_csv": ("Download the rows (CSV)", "下载明细（CSV）"),
    "recon_totals": ("Totals from the listing", "结算清单合计"),
    "recon_currency": ("Currency", "币种"),
    "recon_charges": ("Charges", "收款"),
    "recon_refunds": ("Refunds", "退款"),
    "recon_fees": ("Fees", "手续费"),
    "recon_net": ("Net", "净额"),
    "recon_rows": ("Rows", "明细"),
    "recon_status": ("Result", "结果"),
    "recon_kind": ("Kind", "类型"),
    "recon_kind_charge": ("Charge", "收款"),
    "recon_kind_refund": ("Refund", "退款"),
    "recon_id": ("Engine id", "系统编号"),
    "recon_reference": ("Gateway reference", "通道流水号"),
    "recon_settlement_amount": ("Settled", "结算金额"),
    "recon_engine_amount": ("Recorded", "系统金额"),
    "recon_fee": ("Fee", "手续费"),
    "recon_bad_date": ("The settlement day must be a date (YYYY-MM-DD).", "结算日必须是日期（YYYY-MM-DD）。"),
    # Risk review queue (SPEC §9)
    "risk_title": ("Risk review", "风控审核"),
    "risk_intro": (
        "Payments the risk rules held: nothing is charged until you approve one (it is charged once) or refuse "
        "it (it fails, and the customer is asked for another payment method).",
        "被风控规则暂扣的付款：在您批准（只扣款一次）或拒绝（付款失败，并请客户更换付款方式）之前不会扣款。",
    ),
    "risk_held": ("Held for review ({count})", "待审核（{count}）"),
    "risk_payment": ("Payment", "付款"),
    "risk_customer": ("Customer", "客户"),
    "risk_amount": ("Amount", "金额"),
    "risk_score": ("Score", "风险分"),
    "risk_reasons": ("Rules that fired", "触发的规则"),
    "risk_created": ("Created", "创建时间"),
    "risk_actions": ("Decision", "处理"),
    "risk_approve": ("Approve and charge", "批准并扣款"),
    "risk_refuse": ("Refuse", "拒绝"),
    "risk_approve_label": ("Approve and charge {payment}", "批准并扣款 {payment}"),
    "risk_refuse_label": ("Refuse {payment}", "拒绝 {payment}"),
    "risk_queue_empty": ("No payment is waiting for review.", "没有待审核的付款。"),
    "risk_blocked": ("Recently blocked", "最近拦截"),
    "risk_subject": ("Payment or payment method", "付款或付款方式"),
    "risk_done_approved": ("Payment {payment} was approved and charged.", "付款 {payment} 已批准并扣款。"),
    "risk_done_refused": ("Payment {payment} was refused.", "付款 {payment} 已拒绝。"),
}


def text(key: str, locale: str, **values: object) -> str:
    """The console text of `key` in `locale` (English unless zh-CN), filled with `values`."""
    english, chinese = _TEXTS[key]
    template = chinese if locale == "zh-CN" else english
    return template.format(**values) if values else template


def all_keys() -> frozenset[str]:
    return frozenset(_TEXTS)


def from_accept_language(header: str | None) -> Locale | None:
    """Our locale the browser prefers most (q-values honoured): any zh → zh-CN, any en → en."""
    if not header:
        return None
    ranked: list[tuple[float, int, Locale]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        locale: Locale | None = "zh-CN" if primary == "zh" else "en" if primary == "en" else None
        if locale is not None and quality > 0:
            ranked.append((-quality, position, locale))
    return min(ranked)[2] if ranked else None


def pick_locale(chosen: str | None, accept_language: str | None) -> Locale:
    """The switcher's choice (stored in the session, or given on the login page), else Accept-Language."""
    return normalize_locale(chosen) or from_accept_language(accept_language) or "en"


__all__ = ["LOCALES", "all_keys", "from_accept_language", "pick_locale", "text"]
