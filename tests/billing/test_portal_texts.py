"""The portal's words (billing.portal.texts): every text in both languages with the same placeholders, plural
forms chosen by CLDR's rules, and every key a template names present."""

from __future__ import annotations

import re
import string
from importlib import resources

from billing.portal import texts


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_text_is_in_english_and_chinese_with_the_same_placeholders() -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for key, (english, chinese) in texts._TEXTS.items():
        assert english and chinese, key
        assert _fields(english) == _fields(chinese), key
        if key not in ("plan_times", "invoice_pdf"):
            assert cjk.search(chinese), key
    for key, (one, other, chinese) in texts._PLURALS.items():
        assert _fields(one) == _fields(other) == _fields(chinese), key


def test_plural_forms_follow_the_language() -> None:
    assert texts.plural("open_invoices", 1, "en") == "You have 1 invoice to pay."
    assert texts.plural("open_invoices", 2, "en") == "You have 2 invoices to pay."
    assert texts.plural("open_invoices", 0, "en") == "You have 0 invoices to pay."
    assert texts.plural("open_invoices", 1, "zh-CN") == "您有 1 张待支付的发票。"
    assert texts.plural("price_per", 1, "en", amount="$5.00", period="month") == "$5.00 per month"
    assert texts.plural("price_per", 3, "en", amount="$15.00", period="3 months") == "$15.00 every 3 months"
    assert texts.plural("price_per", 3, "zh-CN", amount="US$15.00", period="3 个月") == "每3 个月 US$15.00"


def test_every_key_a_template_names_exists() -> None:
    folder = resources.files("billing.portal").joinpath("templates")
    named: set[str] = set()
    for template in folder.iterdir():
        source = template.read_text(encoding="utf-8")
        # A key built from a prefix ("nav_" + section) is checked by the pages that render it.
        named |= set(re.findall(r"""\bt\(\s*["']([a-z_0-9]+)["']\s*[,)]""", source))
        assert (
            not re.findall(r"""\btn\(\s*["']([a-z_0-9]+)["']""", source)
            or set(re.findall(r"""\btn\(\s*["']([a-z_0-9]+)["']""", source)) <= texts.plural_keys()
        ), template.name
    assert named and named <= texts.all_keys(), named - texts.all_keys()
