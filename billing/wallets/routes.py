"""HTTP routes of wallets, under their customer: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

import billing.wallets.hooks  # noqa: F401  invoices finalized by this process burn credits
from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.db.pagination import PageRequest
from billing.invoices.routes import collect_at_once
from billing.wallets import ledger, service
from billing.wallets.schemas import (
    Wallet,
    WalletCreate,
    WalletList,
    WalletTopUp,
    WalletTransactionList,
    WalletUpdate,
)

CustomerId = Annotated[str, PathParameter(description="A customer id, cus_...", max_length=64)]
WalletId = Annotated[str, PathParameter(description="A wallet id, wlt_...", max_length=64)]


async def _rendered(ctx: RequestContext, customer_id: str, wallet_id: str) -> Wallet:
    return ledger.render_wallet(
        await service.get_wallet(ctx.session, ctx.merchant_id, customer_id, wallet_id)
    )


async def _collect_purchases(ctx: RequestContext, wallet_id: str, before: set[str]) -> None:
    """Charge the invoices of the purchases this request made now, so the answer shows their credits."""
    for invoice_id in await service.purchase_invoices(ctx.session, wallet_id) - before:
        await collect_at_once(ctx, invoice_id)


class WalletsController(Controller):
    path = "/customers/{customer_id:str}/wallets"
    tags = ["wallets"]  # noqa: RUF012

    @post(
        "/", status_code=200, responses=ERROR_RESPONSES, summary="Create a customer's prepaid credit wallet"
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId, data: JSONBody[WalletCreate]
    ) -> Wallet:
        wallet_id = (await service.create_wallet(ctx.session, ctx.merchant_id, customer_id, data)).id
        await _collect_purchases(ctx, wallet_id, set())
        return await _rendered(ctx, customer_id, wallet_id)

    @get("/", responses=ERROR_RESPONSES, summary="List a customer's wallets, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        limit: Limit = 10,
        starting_after: StartingAfter = None,
    ) -> WalletList:
        result = await service.list_wallets(
            ctx.session, ctx.merchant_id, customer_id, PageRequest(limit, starting_after)
        )
        return page(
            WalletList,
            [ledger.render_wallet(w) for w in result.rows],
            has_more=result.has_more,
            url=f"/v1/customers/{customer_id}/wallets",
        )

    @get("/{wallet_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a wallet")
    async def retrieve(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId, wallet_id: WalletId
    ) -> Wallet:
        return await _rendered(ctx, customer_id, wallet_id)

    @patch(
        "/{wallet_id:str}", responses=ERROR_RESPONSES, summary="Update a wallet's name, auto top-up, metadata"
    )
    async def update(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        wallet_id: WalletId,
        data: JSONBody[WalletUpdate],
    ) -> Wallet:
        wallet = await service.update_wallet(ctx.session, ctx.merchant_id, customer_id, wallet_id, data)
        return ledger.render_wallet(wallet)

    @post(
        "/{wallet_id:str}/top_up",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Add credits: granted at once (optionally expiring), or bought through an invoice charged now",
    )
    async def top_up(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        wallet_id: WalletId,
        data: JSONBody[WalletTopUp],
    ) -> Wallet:
        before = await service.purchase_invoices(ctx.session, wallet_id)
        await service.top_up_wallet(ctx.session, ctx.merchant_id, customer_id, wallet_id, data)
        await _collect_purchases(ctx, wallet_id, before)
        return await _rendered(ctx, customer_id, wallet_id)

    @post(
        "/{wallet_id:str}/terminate",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Terminate a wallet: its remaining credits are voided",
    )
    async def terminate(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId, wallet_id: WalletId
    ) -> Wallet:
        wallet = await service.terminate_wallet(ctx.session, ctx.merchant_id, customer_id, wallet_id)
        return ledger.render_wallet(wallet)

    @get(
        "/{wallet_id:str}/transactions",
        responses=ERROR_RESPONSES,
        summary="List a wallet's ledger: every movement of credit, newest first",
    )
    async def transactions(
        self,
        ctx: NamedDependency[RequestContext],
        customer_id: CustomerId,
        wallet_id: WalletId,
        limit: Limit = 10,
        starting_after: StartingAfter = None,
    ) -> WalletTransactionList:
        result = await service.list_transactions(
            ctx.session, ctx.merchant_id, customer_id, wallet_id, PageRequest(limit, starting_after)
        )
        return page(
            WalletTransactionList,
            [ledger.render_transaction(t) for t in result.rows],
            has_more=result.has_more,
            url=f"/v1/customers/{customer_id}/wallets/{wallet_id}/transactions",
        )
