"""docs/webhooks.md is generated from the code (python -m doctools.webhook_docs) and must equal what the code
generates now; its verification snippet really verifies our messages."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from doctools import webhook_docs as docs
from doctools.webhook_examples import example_event
from webhooks.catalog import EVENT_TYPES
from webhooks.signing import generate_secret, webhook_headers


def test_the_committed_docs_are_what_the_code_generates() -> None:
    assert docs.DOCS_PATH.read_text(encoding="utf-8") == docs.render(), (
        "docs/webhooks.md is stale: run `python -m doctools.webhook_docs` and commit the result"
    )


# Events whose object is not the object their type names: the upcoming invoice is not an invoice yet (no id, no
# number) and says so; SPEC §7 names the dunning events `dunning.*`, about the invoice's dunning case.
OTHER_OBJECTS = {
    "invoice.upcoming": "upcoming_invoice",
    "dunning.case_opened": "dunning_case",
    "dunning.retry_scheduled": "dunning_case",
    "dunning.recovered": "dunning_case",
    "dunning.exhausted": "dunning_case",
    "risk.decision": "risk_decision",
    "customer.entitlements_updated": "customer_entitlements",
    "plan.entitlements_updated": "plan_entitlements",
}


def test_every_event_type_is_documented_with_an_example_of_its_own_object() -> None:
    text = docs.render()
    for event_type in EVENT_TYPES:
        assert f"### `{event_type}`" in text
        payload = msgspec.to_builtins(example_event(event_type))
        assert payload["type"] == event_type
        expected = OTHER_OBJECTS.get(event_type, event_type.split(".", 1)[0])
        assert payload["data"]["object"]["object"] == expected
        assert payload["id"].startswith("evt_")


def test_the_verification_snippet_accepts_our_messages_and_rejects_forgeries() -> None:
    secret = generate_secret()
    handled: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()

    def seen_before(webhook_id: str) -> bool:
        known = webhook_id in seen
        seen.add(webhook_id)
        return known

    namespace: dict[str, Any] = {"seen_before": seen_before, "handle": lambda t, o: handled.append((t, o))}
    exec(docs.VERIFY_SNIPPET.replace("whsec_...", secret), namespace)
    receive = namespace["receive"]

    body = msgspec.json.encode(example_event("customer.created"))
    headers = webhook_headers([secret], "evt_4eC39HqLyjWDarjtT1zdp7dc", int(time.time()), body)
    assert receive(body, headers) == (200, "ok")
    assert receive(body, headers) == (200, "already processed")
    assert receive(body.replace(b"li.lei", b"mallory"), headers) == (400, "invalid signature")
    forged = webhook_headers([generate_secret()], "evt_x", int(time.time()), body)
    assert receive(body, forged) == (400, "invalid signature")
    assert [t for t, _ in handled] == ["customer.created"]
