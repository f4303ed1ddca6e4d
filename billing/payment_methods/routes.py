"""HTTP routes of payment methods and tokens: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.db.pagination import PageRequest
from billing.errors import PermissionDenied
from billing.payment_methods import agreements, service
from billing.payment_methods.models import CARD
from billing.payment_methods.rendering import render_payment_method, render_token
from billing.payment_methods.schemas import (
    PaymentMethod,
    PaymentMethodCreate,
    PaymentMethodList,
    PaymentMethodUpdate,
    Token,
    TokenCreate,
)
from billing.payment_methods.service import EnteredCard

PaymentMethodId = Annotated[str, PathParameter(description="A payment method id, pm_...", max_length=64)]


def _hold_cvc_after_commit(ctx: RequestContext, entered: EnteredCard) -> None:
    cvc = entered.cvc
    if cvc is None:
        return

    async def hold() -> None:
        await ctx.services.cvc.hold(entered.entry, cvc)

    ctx.after_commit.append(hold)


class PaymentMethodsController(Controller):
    path = "/payment_methods"
    tags = ["payment_methods"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Attach a card (card details or a tok_ token), or start a debit agreement (alipay, wechat_pay, unionpay, ecny)",
        description="A card's number is checked (Luhn, brand, expiry, CVC length), encrypted in the vault and "
        "never returned; errors about the card are `card_error` (402) naming the field. An agreement (type alipay, "
        "wechat_pay, unionpay or ecny, CNY customers) is created `pending` with a `next_action` (a URL, and the same URL as an "
        "SVG QR code) for the customer to approve in the channel; the channel's notification makes it `active` "
        "(event payment_method.activated). See docs/channels.md.",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[PaymentMethodCreate]
    ) -> PaymentMethod:
        if data.type != CARD:
            pm = await agreements.create_agreement(
                ctx.session,
                ctx.merchant_id,
                data,
                ctx.services.gateways,
                outside_transaction=ctx.committed,
                ip=ctx.client_ip,
            )
            return render_payment_method(pm)
        pm, entered = await service.create_payment_method(
            ctx.session, ctx.merchant_id, data, ctx.services.vault, ip=ctx.client_ip
        )
        _hold_cvc_after_commit(ctx, entered)
        return render_payment_method(pm)

    @get("/", responses=ERROR_RESPONSES, summary="List attached payment methods, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        customer: Annotated[
            str | None, QueryParameter(description="Only this customer's payment methods.", max_length=64)
        ] = None,
    ) -> PaymentMethodList:
        result = await service.list_payment_methods(
            ctx.session, ctx.merchant_id, PageRequest(limit, starting_after), customer=customer
        )
        return page(
            PaymentMethodList,
            [render_payment_method(pm) for pm in result.rows],
            has_more=result.has_more,
            url="/v1/payment_methods",
        )

    @get("/{payment_method_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a payment method")
    async def retrieve(
        self, ctx: NamedDependency[RequestContext], payment_method_id: PaymentMethodId
    ) -> PaymentMethod:
        return render_payment_method(
            await service.get_payment_method(ctx.session, ctx.merchant_id, payment_method_id)
        )

    @patch(
        "/{payment_method_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a payment method (new expiry date, metadata)",
    )
    async def update(
        self,
        ctx: NamedDependency[RequestContext],
        payment_method_id: PaymentMethodId,
        data: JSONBody[PaymentMethodUpdate],
    ) -> PaymentMethod:
        pm = await service.update_payment_method(ctx.session, ctx.merchant_id, payment_method_id, data)
        return render_payment_method(pm)

    @post(
        "/{payment_method_id:str}/detach",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Detach a payment method from its customer (for good: a card's number is destroyed, an agreement is "
        "unsigned in its channel first)",
    )
    async def detach(
        self, ctx: NamedDependency[RequestContext], payment_method_id: PaymentMethodId
    ) -> PaymentMethod:
        held = await service.get_payment_method(ctx.session, ctx.merchant_id, payment_method_id)
        if held.type != CARD:
            pm = await agreements.detach_agreement(
                ctx.session,
                ctx.merchant_id,
                payment_method_id,
                ctx.services.gateways,
                outside_transaction=ctx.committed,
            )
            return render_payment_method(pm)
        pm, entry_id = await service.detach_payment_method(ctx.session, ctx.merchant_id, payment_method_id)
        if entry_id is not None:
            destroyed = entry_id

            async def discard() -> None:
                await ctx.services.cvc.discard(destroyed)

            ctx.after_commit.append(discard)
        return render_payment_method(pm)


class TokensController(Controller):
    path = "/tokens"
    tags = ["tokens"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Tokenize a card in the browser or app (publishable key only)",
        description="Call with your publishable key (pk_...). The token is single use and expires after 15 "
        "minutes; pass it as `token` to POST /v1/payment_methods from your server.",
    )
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[TokenCreate]) -> Token:
        if ctx.key_kind != "publishable":
            raise PermissionDenied(
                "Tokens are created from the browser or app with your publishable key (pk_...), so card numbers "
                "never pass through your server. From your server, create the payment method directly with "
                "POST /v1/payment_methods.",
                code="publishable_key_required",
            )
        token, entered = await service.create_token(
            ctx.session, ctx.merchant_id, data, ctx.services.vault, ip=ctx.client_ip
        )
        _hold_cvc_after_commit(ctx, entered)
        return render_token(token)
