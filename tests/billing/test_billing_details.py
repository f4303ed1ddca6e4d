"""Customers' billing details (billing.customers.billing_details): countries, tax id shapes, and addresses as
invoices print them, in each language's order."""

from __future__ import annotations

import pytest

from billing.customers.billing_details import address_lines, clean_address, clean_tax_id, countries
from billing.errors import InvalidRequest


def test_addresses_print_in_each_languages_order() -> None:
    berlin = {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117", "country": "DE"}
    assert address_lines(berlin, "en") == ("Unter den Linden 1", "Berlin, 10117", "Germany")
    assert address_lines(berlin, "zh-CN") == ("德国 Berlin", "Unter den Linden 1", "10117")
    shanghai = {
        "line1": "世纪大道 100 号",
        "city": "浦东新区",
        "state": "上海市",
        "postal_code": "200120",
        "country": "CN",
    }
    assert address_lines(shanghai, "zh-CN") == ("中国 上海市浦东新区", "世纪大道 100 号", "200120")
    us = {
        "line1": "1 Main St",
        "line2": "Suite 2",
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62701",
        "country": "US",
    }
    assert address_lines(us, "en") == ("1 Main St", "Suite 2", "Springfield, IL 62701", "United States")
    assert address_lines(None, "en") == ()


def test_an_address_needs_a_real_country() -> None:
    assert clean_address({"country": "cn", "city": " 上海 ", "line2": ""}) == {
        "city": "上海",
        "country": "CN",
    }
    assert clean_address({"line1": "", "country": None}) is None
    assert {"CN", "US", "DE", "JP", "HK", "TW"} <= countries() and "EU" not in countries()
    for fields in ({"city": "Paris"}, {"country": "ZZ"}, {"country": "France"}):
        with pytest.raises(InvalidRequest) as refused:
            clean_address(fields)
        assert refused.value.param == "address.country"


@pytest.mark.parametrize(
    ("kind", "typed", "stored"),
    [
        ("cn_tin", "91310000 ma1fl8 1234", "91310000MA1FL81234"),
        ("eu_vat", "de 123.456.789", "DE123456789"),
        ("gb_vat", "GB 123 456 789", "GB123456789"),
        ("us_ein", "12-3456789", "12-3456789"),
        ("au_abn", "12 345 678 912", "12345678912"),
        ("in_gst", "22aaaaa0000a1z5", "22AAAAA0000A1Z5"),
    ],
)
def test_tax_ids_are_normalized(kind: str, typed: str, stored: str) -> None:
    assert clean_tax_id(kind, typed, param="t") == {"type": kind, "value": stored}


@pytest.mark.parametrize(
    ("kind", "typed"),
    [
        ("cn_tin", "9131000"),
        ("eu_vat", "123"),
        ("us_ein", "123456789"),
        ("gb_vat", "DE123456789"),
        ("jp_cn", "12"),
    ],
)
def test_tax_ids_of_the_wrong_shape_are_refused_with_an_example(kind: str, typed: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        clean_tax_id(kind, typed, param="tax_ids[0]")
    assert refused.value.param == "tax_ids[0].value" and "expected something like" in refused.value.message
