"""The ASGI application, assembled in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from litestar import Litestar, Router, asgi
from litestar.di import Provide
from litestar.handlers import ASGIRouteHandler

import billing.wiring  # noqa: F401  every task kind and hook listener
from billing.api.context import provide_context
from billing.api.errors import EXCEPTION_HANDLERS
from billing.api.health import health, make_ready_handler
from billing.api.middleware import ApiMiddleware, ASGIApp
from billing.api.openapi import DescribedStructs, openapi_config
from billing.api.strict_input import strict_input_middleware
from billing.catalog.routes import CATALOG_CONTROLLERS
from billing.channels.notify import ChannelNotifyApp
from billing.config import Settings
from billing.console.routes import make_console_router
from billing.credit_notes.routes import CreditNotesController, CustomerBalanceTransactionsController
from billing.customers.routes import CustomersController
from billing.entitlements.routes import ENTITLEMENT_CONTROLLERS
from billing.events.routes import EventsController
from billing.gateways.asgi import ASGIApp as RawApp
from billing.invoice_items.routes import InvoiceItemsController
from billing.invoices.hosted_routes import make_hosted_invoice_router
from billing.invoices.routes import InvoicesController
from billing.notifications.routes import InvoiceEmailController
from billing.payment_methods.routes import PaymentMethodsController, TokensController
from billing.payments.routes import GatewaysController, PaymentsController, RefundsController
from billing.portal.routes import PortalSessionsController, make_portal_router
from billing.reconciliation.routes import ReconciliationController
from billing.reporting.routes import ExportsController, ReportsController
from billing.risk.routes import RiskDecisionsController
from billing.services import Services, open_services
from billing.settings.routes import SettingsController
from billing.subscriptions.item_routes import SubscriptionItemsController
from billing.subscriptions.routes import SubscriptionsController
from billing.test_clocks.routes import TestClocksController
from billing.usage.routes import BATCH_MAX_BODY_BYTES, UsageEventsController
from billing.usage.summary_routes import UsageSummaryController
from billing.wallets.routes import WalletsController
from billing.webhook_endpoints.routes import EventRedeliveryController, WebhookEndpointsController
from dunning.routes import DunningController


def _version() -> str:
    try:
        return version("billing-engine")
    except PackageNotFoundError:
        return "0.0.0"


def _mount(path: str, app: RawApp) -> ASGIRouteHandler:
    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    return asgi(path, is_mount=True, include_in_schema=False, copy_scope=True)(mounted)


def channel_routes(services: Services) -> list[ASGIRouteHandler]:
    """The channels' notification endpoint, wired to the gateway pool (in-process sandboxes deliver through the
    same object), and outside production the in-process channel sandboxes' pages and APIs at /sandbox/<type>."""
    notify = ChannelNotifyApp(services.sessions, services.gateways)
    services.gateways.notify_app = notify
    routes = [_mount("/channels", notify)]
    if not services.settings.is_production:
        routes += [
            _mount(f"/sandbox/{name}", app) for name, app in services.gateways.channel_sandboxes().items()
        ]
    return routes


def create_litestar(services: Services) -> Litestar:
    v1 = Router(
        path="/v1",
        route_handlers=[
            CustomersController,
            CustomerBalanceTransactionsController,
            CreditNotesController,
            EventsController,
            InvoicesController,
            InvoiceEmailController,
            SubscriptionsController,
            SubscriptionItemsController,
            TestClocksController,
            WebhookEndpointsController,
            EventRedeliveryController,
            *CATALOG_CONTROLLERS,
            *ENTITLEMENT_CONTROLLERS,
            WalletsController,
            InvoiceItemsController,
            PaymentMethodsController,
            TokensController,
            PaymentsController,
            RefundsController,
            GatewaysController,
            RiskDecisionsController,
            ReconciliationController,
            SettingsController,
            DunningController,
            PortalSessionsController,
            UsageEventsController,
            UsageSummaryController,
            ReportsController,
            ExportsController,
        ],
        dependencies={"ctx": Provide(provide_context, sync_to_thread=False)},
        middleware=[strict_input_middleware],
    )
    return Litestar(
        route_handlers=[
            health,
            make_ready_handler(services),
            make_hosted_invoice_router(services),
            make_portal_router(services),
            *channel_routes(services),
            make_console_router(services),
            v1,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(_version()),
        plugins=[DescribedStructs()],
        request_max_body_size=max(services.settings.max_body_bytes, 1024),
        debug=False,
    )


def create_app(services: Services) -> ASGIApp:
    """The whole API: the /v1 envelope (auth, idempotency, one transaction) around the Litestar app."""
    return ApiMiddleware(
        cast(ASGIApp, create_litestar(services)),
        services,
        route_body_limits={("POST", "/v1/usage_events/batch"): BATCH_MAX_BODY_BYTES},
        streaming_prefixes=("/v1/exports/",),
    )


def create_app_from_env(settings: Settings, on_startup: Callable[[], None] | None = None) -> ASGIApp:
    """For `billing serve`: services opened in the server's own event loop, closed at shutdown; `on_startup`
    runs once they are open, in the server's thread."""
    holder: dict[str, ASGIApp] = {}

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        services = await open_services(settings)
        holder["app"] = create_app(services)
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
            await services.close()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            context = lifespan()
            try:
                await context.__aenter__()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            await context.__aexit__(None, None, None)
            await send({"type": "lifespan.shutdown.complete"})
            return
        await holder["app"](scope, receive, send)

    return app
