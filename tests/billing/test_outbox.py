"""The outbox: an event commits with its state change, or neither does."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.customers.models import Customer
from billing.customers.schemas import CustomerCreate
from billing.customers.service import create_customer
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.services import Services
from webhooks.catalog import EVENT_TYPES
from webhooks.models import Event


class Boom(Exception):
    pass


async def _persisted(services: Services, customer_id: str) -> tuple[bool, list[str]]:
    async with services.sessions() as session:
        row = await session.scalar(select(Customer.id).where(Customer.id == customer_id))
        events = (await session.scalars(select(Event.type).where(Event.object_id == customer_id))).all()
    return row is not None, list(events)


async def test_a_committed_change_has_its_event(services: Services, merchant: NewMerchant) -> None:
    async with transaction(services.sessions) as session:
        customer = await create_customer(session, merchant.id, CustomerCreate(name="kept"), production=False)
    assert await _persisted(services, customer.id) == (True, ["customer.created"])


async def test_a_failing_transaction_leaves_neither_the_row_nor_its_event(
    services: Services, merchant: NewMerchant
) -> None:
    created: list[str] = []
    with pytest.raises(Boom):
        async with transaction(services.sessions) as session:
            customer = await create_customer(
                session, merchant.id, CustomerCreate(name="lost"), production=False
            )
            created.append(customer.id)
            # The row and the event were both flushed to PostgreSQL inside this transaction...
            assert (
                await session.scalar(select(Event.type).where(Event.object_id == customer.id))
                == "customer.created"
            )
            raise Boom("fail after the write")
    # ...and both are gone with it.
    assert await _persisted(services, created[0]) == (False, [])


def test_every_event_type_is_object_dot_change() -> None:
    for event_type, meaning in EVENT_TYPES.items():
        obj, _, change = event_type.partition(".")
        assert obj and change and meaning.endswith(".")
