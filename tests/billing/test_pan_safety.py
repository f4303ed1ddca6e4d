"""The card number appears nowhere but in the vault's ciphertext: not in a full pg_dump of the database, not in
any log line (even with the masking filter switched off and SQL logging on), not in any event, not in Redis."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing.clock import utc_now
from billing.merchants.service import NewMerchant
from billing.payments.janitor import run_janitor
from billing.payments.service import collect_payment
from billing.runtime.embedded import postgres_bin_dir
from billing.services import Services
from billing.vault.redact import install_pan_redaction, uninstall_pan_redaction
from tests.billing.payment_helpers import FUTURE_YEAR, configure_gateways, run_process
from webhooks.models import Event

TEST_PANS = [
    "4242424242424242",
    "5555555555554444",
    "4000000000000002",
    "4000000000009995",
    "4000000000000069",
    "4000000000009979",
    "4000000000000119",
    "4000000000000341",
    "4000002760003184",
    "378282246310005",
    "6200000000000005",
    "3566002020360505",
    "6011111111111117",
]


def forms(pan: str) -> list[str]:
    """The number as digits, and grouped by four as people type it."""
    return [pan, " ".join(pan[i : i + 4] for i in range(0, len(pan), 4))]


class RawRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def raw_logs() -> Iterator[RawRecords]:
    """Every log record of the process, unmasked (the safety-net filter is switched off), SQL included."""
    uninstall_pan_redaction()
    handler = RawRecords()
    root = logging.getLogger()
    levels = {
        name: logging.getLogger(name).level
        for name in ("", "billing", "httpx", "sqlalchemy.engine", "uvicorn")
    }
    root.addHandler(handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        install_pan_redaction()


async def test_no_card_number_in_the_database_dump_the_logs_the_events_or_redis(
    app: Any,
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    raw_logs: RawRecords,
) -> None:
    await configure_gateways(api, {"id": "sandbox", "type": "sandbox", "url": None, "timeout_ms": 300})
    payment_ids: list[str] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {merchant.publishable_key}"},
    ) as public:
        for index, pan in enumerate(TEST_PANS):
            customer = (await api.post("/v1/customers", json={"name": f"holder {index}"})).json()
            cvc = "1234" if pan.startswith("37") else "123"
            card = {"number": forms(pan)[index % 2], "exp_month": 12, "exp_year": FUTURE_YEAR, "cvc": cvc}
            if index % 3 == 0:
                token = (await public.post("/v1/tokens", json={"card": card})).json()
                body: dict[str, Any] = {"customer": customer["id"], "token": token["id"]}
            else:
                body = {"customer": customer["id"], "card": card}
            created = await api.post(
                "/v1/payment_methods", json=body, headers={"Idempotency-Key": f"pm-{index}"}
            )
            assert created.status_code == 200, created.text
            pm = created.json()
            await api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]})
            # A mistyped number (one digit off) is refused, logged nowhere, echoed nowhere.
            typo = {**card, "number": pan[:-1] + str((int(pan[-1]) + 1) % 10)}
            refused = await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": typo})
            assert refused.status_code == 402
            payment = await collect_payment(
                services,
                merchant_id=merchant.id,
                customer_id=customer["id"],
                amount=1000 + index,
                currency="USD",
                purpose=f"pan-safety:{index}",
            )
            payment_ids.append(payment.id)
            if payment.status == "succeeded":
                refund = await api.post("/v1/refunds", json={"payment": payment.id, "amount": 100})
                assert refund.status_code == 200
            if index % 4 == 0:
                assert (await api.post(f"/v1/payment_methods/{pm['id']}/detach")).status_code == 200
    await run_janitor(services, now=utc_now() + timedelta(hours=2))

    # 1. A full dump of the database.
    assert services.settings.database_url is not None
    dumped = await run_process(
        [str(postgres_bin_dir() / "pg_dump"), "--no-owner", services.settings.database_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    dump = dumped.stdout
    assert all(payment_id in dump for payment_id in payment_ids)  # the dump has the data
    assert "vault_entries" in dump
    # 2. Every log record of the run, unmasked.
    logs = "\n".join(raw_logs.lines)
    assert "INSERT INTO vault_entries" in logs  # SQL logging was on
    # 3. Every event's data.
    async with services.sessions() as session:
        rows = (
            await session.execute(select(Event.type, Event.data).where(Event.merchant_id == merchant.id))
        ).all()
    assert {"payment_method.attached", "payment.succeeded", "refund.succeeded"} <= {row.type for row in rows}
    events = "\n".join(str(row.data) for row in rows)
    # 4. Everything this run keeps in Redis.
    redis_values: list[str] = []
    async for key in services.redis.scan_iter(match=f"{services.settings.redis_prefix}*"):
        value = await services.redis.get(key) if await services.redis.type(key) == b"string" else b""
        redis_values.append(f"{key!r} {value!r}")
    redis_dump = "\n".join(redis_values)

    for pan in TEST_PANS:
        for form in forms(pan):
            assert form not in dump, f"card ****{pan[-4:]} is in the database dump"
            assert form not in logs, f"card ****{pan[-4:]} is in the logs"
            assert form not in events, f"card ****{pan[-4:]} is in an event"
            assert form not in redis_dump, f"card ****{pan[-4:]} is in Redis"
    # And no table has a column for the security code.
    column_definitions = re.findall(r"^\s{4}(\w+) ", dump, re.MULTILINE)
    security_code = re.compile(r"(\w+_)?(cvc|cvv|cvc2|cvv2|security_code)(_\w+)?")
    assert column_definitions
    assert not [c for c in column_definitions if security_code.fullmatch(c)]
