"""HTTP routes of credit notes and of the customer balance ledger: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.credit_notes import balance, service
from billing.credit_notes.schemas import (
    CreditNote,
    CreditNoteCreate,
    CreditNoteList,
    CustomerBalanceTransaction,
    CustomerBalanceTransactionCreate,
    CustomerBalanceTransactionList,
)
from billing.db.pagination import PageRequest

CreditNoteId = Annotated[str, PathParameter(description="A credit note id, cn_...", max_length=64)]
CustomerId = Annotated[str, PathParameter(description="A customer id, cus_...", max_length=64)]


class CreditNotesController(Controller):
    path = "/credit_notes"
    tags = ["credit_notes"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Issue a credit note on a finalized invoice",
        description="On an open or uncollectible invoice it reduces what is owed (pre-payment; an invoice left "
        "owing nothing is paid). On a paid invoice its amount goes back as refund_amount (a refund through the "
        "gateway that took the payment), credit_amount (the customer balance) and out_of_band_amount; with none "
        "given, all of it goes to the balance. All credit notes of an invoice never exceed its total. A refund the "
        "gateway refuses issues nothing (422 refund_failed). With an Idempotency-Key, a retry never refunds twice.",
    )
    async def create(
        self,
        ctx: NamedDependency[RequestContext],
        data: JSONBody[CreditNoteCreate],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Makes a retry return the same credit note.",
            ),
        ] = None,
    ) -> CreditNote:
        note = await service.create_credit_note(
            ctx.session,
            ctx.services,
            ctx.merchant_id,
            data,
            idempotency_key=idempotency_key,
            checkpoint=ctx.committed,
        )
        return await service.render_note(ctx.session, note)

    @get("/", responses=ERROR_RESPONSES, summary="List credit notes, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        invoice: Annotated[
            str | None, QueryParameter(description="Only this invoice's.", max_length=64)
        ] = None,
        customer: Annotated[
            str | None, QueryParameter(description="Only this customer's.", max_length=64)
        ] = None,
    ) -> CreditNoteList:
        result = await service.list_credit_notes(
            ctx.session,
            ctx.merchant_id,
            PageRequest(limit, starting_after),
            invoice=invoice,
            customer=customer,
        )
        return page(
            CreditNoteList,
            [await service.render_note(ctx.session, note) for note in result.rows],
            has_more=result.has_more,
            url="/v1/credit_notes",
        )

    @get("/{credit_note_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a credit note")
    async def retrieve(
        self, ctx: NamedDependency[RequestContext], credit_note_id: CreditNoteId
    ) -> CreditNote:
        note = await service.get_credit_note(ctx.session, ctx.merchant_id, credit_note_id)
        return await service.render_note(ctx.session, note)

    @post(
        "/{credit_note_id:str}/void",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Void a pre-payment credit note while its invoice still owes",
        description="The amount is owed again. A credit note that gave money back (post-payment), or whose "
        "invoice has since been paid or voided, cannot be voided (409).",
    )
    async def void(self, ctx: NamedDependency[RequestContext], credit_note_id: CreditNoteId) -> CreditNote:
        note = await service.void_credit_note(ctx.session, ctx.merchant_id, credit_note_id)
        return await service.render_note(ctx.session, note)


class CustomerBalanceTransactionsController(Controller):
    path = "/customers/{customer_id:str}/balance_transactions"
    tags = ["customers"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="List a customer's balance ledger, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        limit: Limit = 10,
        starting_after: StartingAfter = None,
    ) -> CustomerBalanceTransactionList:
        result = await balance.list_balance_transactions(
            ctx.session, ctx.merchant_id, customer_id, PageRequest(limit, starting_after)
        )
        notes = await balance.credit_notes_of(ctx.session, [entry.id for entry in result.rows])
        return page(
            CustomerBalanceTransactionList,
            [balance.render_balance_transaction(entry, notes.get(entry.id)) for entry in result.rows],
            has_more=result.has_more,
            url=f"/v1/customers/{customer_id}/balance_transactions",
        )

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Adjust a customer's balance by hand",
        description="Negative credits the customer (the next invoices consume it), positive makes it owe more. "
        "Written as one ledger entry; the customer's balance moves by the amount (customer.updated).",
    )
    async def create(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        data: JSONBody[CustomerBalanceTransactionCreate],
    ) -> CustomerBalanceTransaction:
        entry = await balance.adjust_balance(ctx.session, ctx.merchant_id, customer_id, data)
        return balance.render_balance_transaction(entry)
