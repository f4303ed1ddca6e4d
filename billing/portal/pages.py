"""The portal's payment-method page as HTML: no script, inline CSS, every value escaped, words from
`billing.notifications.texts`. The card number field is never filled back in (a card number must not travel
back to the browser, nor into any page a proxy or cache could keep)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from billing.notifications.texts import text

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f6f8fa;color:#1f2328;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",
 "PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",Helvetica,Arial,sans-serif}
main{max-width:640px;margin:32px auto;padding:32px;background:#fff;border:1px solid #d1d9e0;border-radius:8px}
nav{display:flex;gap:16px;justify-content:flex-end;font-size:14px}
nav a{color:#0969da}
.merchant{font-size:20px;font-weight:700}
h1{font-size:24px;font-weight:400;color:#59636e;margin:4px 0 16px}
h2{font-size:16px;margin:24px 0 8px}
.notice{padding:8px 12px;border-radius:6px;background:#dafbe1;color:#116329}
.error{padding:8px 12px;border-radius:6px;background:#ffebe9;color:#a40e26}
table{width:100%;border-collapse:collapse}
td,th{padding:8px;border-bottom:1px solid #eaeef2;text-align:left}
th{font-size:12px;color:#59636e;background:#f6f8fa}
.default{font-weight:600;color:#116329}
form.inline{margin:0}
label{display:block;margin:8px 0 2px;font-size:14px;color:#59636e}
input[type=text]{width:100%;padding:8px;border:1px solid #d1d9e0;border-radius:6px;font-size:15px}
.row{display:flex;gap:12px}.row>div{flex:1}
button{margin-top:16px;padding:8px 16px;border:0;border-radius:6px;background:#1f6feb;color:#fff;font-size:15px}
form.inline button{margin:0;padding:4px 10px;font-size:13px;background:#eaeef2;color:#1f2328}
.small{font-size:13px;color:#59636e}
"""


@dataclass(frozen=True)
class CardRow:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    default: bool


@dataclass(frozen=True)
class PaymentMethodsPage:
    locale: str
    merchant: str
    cards: Sequence[CardRow]
    form_action: str
    default_action: Mapping[str, str]  # card id -> the URL its "make default" form posts to
    nonce: str
    expires: str
    return_url: str | None
    locale_hrefs: Mapping[str, str]
    notice: str | None = None
    error: str | None = None


def render_payment_methods(page: PaymentMethodsPage) -> str:
    e = html.escape
    t = page.locale
    names = {"en": "English", "zh-CN": "简体中文"}
    nonce_field = f'<input type="hidden" name="nonce" value="{e(page.nonce)}">'
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{e(t)}">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex, nofollow"><meta name="referrer" content="no-referrer">',
        f"<title>{e(text('portal_title', t))} · {e(page.merchant)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body><main>",
        "<nav>",
        *(
            f'<a href="{e(href)}" hreflang="{e(code)}" lang="{e(code)}">{e(names[code])}</a>'
            for code, href in page.locale_hrefs.items()
            if code != t
        ),
        *(
            [f'<a href="{e(page.return_url)}">{e(text("portal_return", t, merchant=page.merchant))}</a>']
            if page.return_url
            else []
        ),
        "</nav>",
        f'<div class="merchant">{e(page.merchant)}</div>',
        f"<h1>{e(text('portal_title', t))}</h1>",
    ]
    if page.notice:
        parts.append(f'<p class="notice" role="status">{e(page.notice)}</p>')
    if page.error:
        parts.append(f'<p class="error" role="alert">{e(page.error)}</p>')
    parts.append(f"<p>{e(text('portal_intro', t, merchant=page.merchant))}</p>")
    if page.cards:
        parts += [
            '<table class="cards"><thead><tr>',
            f"<th>{e(text('portal_card', t))}</th><th>{e(text('portal_expires', t))}</th><th></th>",
            "</tr></thead><tbody>",
        ]
        for card in page.cards:
            if card.default:
                marker = f'<span class="default">{e(text("portal_default", t))}</span>'
            else:
                marker = (
                    f'<form class="inline" method="post" action="{e(page.default_action[card.id])}">'
                    f'{nonce_field}<button type="submit">{e(text("portal_make_default", t))}</button></form>'
                )
            parts.append(
                f'<tr data-card="{e(card.id)}"><td>{e(card.brand)} •••• {e(card.last4)}</td>'
                f"<td>{card.exp_month:02d}/{card.exp_year}</td><td>{marker}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append(f"<p>{e(text('portal_no_cards', t))}</p>")
    parts += [
        f"<h2>{e(text('portal_add_title', t))}</h2>",
        f'<form method="post" action="{e(page.form_action)}" autocomplete="on">',
        nonce_field,
        f'<label for="number">{e(text("portal_card_number", t))}</label>',
        '<input type="text" id="number" name="number" inputmode="numeric" autocomplete="cc-number" '
        'maxlength="40" required>',
        '<div class="row"><div>',
        f'<label for="exp_month">{e(text("portal_exp_month", t))}</label>',
        '<input type="text" id="exp_month" name="exp_month" inputmode="numeric" autocomplete="cc-exp-month" '
        'maxlength="2" required></div><div>',
        f'<label for="exp_year">{e(text("portal_exp_year", t))}</label>',
        '<input type="text" id="exp_year" name="exp_year" inputmode="numeric" autocomplete="cc-exp-year" '
        'maxlength="4" required></div><div>',
        f'<label for="cvc">{e(text("portal_cvc", t))}</label>',
        '<input type="text" id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" maxlength="4">',
        "</div></div>",
        f'<button type="submit">{e(text("portal_add_button", t))}</button>',
        "</form>",
        f'<p class="small">{e(text("portal_expires_note", t, expires=page.expires))}</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts)
