"""No card number and no secret ever leaves in an event payload."""

from __future__ import annotations

import httpx

from billing.luhn import looks_like_card_number, luhn_valid
from webhooks.payloads import REDACTED, redact


def test_card_numbers_are_recognised_in_any_usual_spelling() -> None:
    for text in (
        "4242424242424242",
        "4242 4242 4242 4242",
        "card 5555-5555-5555-4444 exp 12/30",
        "378282246310005",
    ):
        assert looks_like_card_number(text), text


def test_long_numbers_that_are_not_cards_are_left_alone() -> None:
    # A Luhn-valid snowflake id (no card network starts with 1), an order number, a phone number, a timestamp,
    # a card-like run of digits inside a hex fingerprint, a number failing the Luhn check.
    assert luhn_valid("1234567812345670") and luhn_valid("4242424242424242")
    for text in (
        "1234567812345670",
        "INV-2027-000123",
        "+86 138 0013 8000",
        "2027-01-31T00:00:00Z",
        "fp_9f4242424242424242ab07",
        "4242424242424241",
    ):
        assert not looks_like_card_number(text), text


def test_secrets_and_card_fields_are_redacted_wherever_they_are() -> None:
    clean, found = redact(
        {
            "id": "cus_1",
            "metadata": {"note": "pay with 4242 4242 4242 4242", "ref": "order-17"},
            "nested": [{"secret": "whatever"}, {"api": "sk_" + "a" * 40}],
            "hook": "whsec_" + "A" * 44,
            "card": {"last4": "4242", "cvc": "123"},
        }
    )
    assert clean == {
        "id": "cus_1",
        "metadata": {"note": REDACTED, "ref": "order-17"},
        "nested": [{"secret": REDACTED}, {"api": REDACTED}],
        "hook": REDACTED,
        "card": {"last4": "4242", "cvc": REDACTED},
    }
    assert sorted(found) == ["card.cvc", "hook", "metadata.note", "nested[0].secret", "nested[1].api"]


async def test_a_card_number_in_metadata_is_refused_and_in_free_text_never_reaches_the_event(
    api: httpx.AsyncClient,
) -> None:
    refused = await api.post(
        "/v1/customers", json={"metadata": {"card": "4000 0000 0000 0002", "plan": "pro"}}
    )
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "metadata[card]"
    assert "looks like a card number" in error["message"] and "/v1/payment_methods" in error["message"]
    listed = (await api.get("/v1/customers", params={"limit": 100})).json()["data"]
    assert not [c for c in listed if c["metadata"].get("plan") == "pro"], "the refused customer was created"

    # Free text a card number can still reach (a name) is stored as given, and the event carries "[redacted]".
    # (A number tests/billing/test_pan_safety.py does not look for in its dump of the shared database.)
    customer = (
        await api.post("/v1/customers", json={"name": "4111 1111 1111 1111", "metadata": {"plan": "pro"}})
    ).json()
    [event] = (await api.get("/v1/events", params={"object_id": customer["id"]})).json()["data"]
    assert event["data"]["object"]["name"] == REDACTED
    assert event["data"]["object"]["metadata"] == {"plan": "pro"}
    assert "4111 1111 1111 1111" not in str(event)
