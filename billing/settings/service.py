"""Reading and changing a merchant's settings (stored in `merchants.settings`, JSONB)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK
from billing.customers.billing_details import clean_address, clean_tax_ids
from billing.errors import Conflict, InvalidRequest, not_found
from billing.gateways.base import ConnectionConfig
from billing.gateways.credentials import SEALED, seal_credential
from billing.gateways.registry import GATEWAY_TYPES, GatewayPool
from billing.merchants.models import Merchant
from billing.payment_methods.models import PaymentMethod
from billing.payments.models import Payment, Refund
from billing.settings.branding import DEFAULT_ACCENT, HEX_COLOUR, Branding, readable_accent
from billing.settings.schemas import (
    BrandingSettings,
    BrandingSettingsUpdate,
    BusinessProfile,
    BusinessProfileUpdate,
    DunningSettings,
    DunningSettingsUpdate,
    GatewayConnection,
    MerchantSettings,
    PortalSettings,
    PortalSettingsUpdate,
    RiskSettings,
    SettingsUpdate,
    UsageSettings,
)
from dunning.policy import ScheduleError, validate_schedule
from plans.money import validate_currency
from webhooks.outbox import previous_attributes, record_event

SANDBOX_CONNECTION: dict[str, Any] = {"id": "sandbox", "type": "sandbox", "url": None, "weight": 1}


def default_merchant_settings(*, production: bool) -> dict[str, Any]:
    """A new merchant's settings: outside production, the in-process sandbox gateway (SPEC §2)."""
    return {} if production else {"gateways": [dict(SANDBOX_CONNECTION)]}


def _connections(raw: dict[str, Any]) -> list[GatewayConnection]:
    return msgspec.convert(raw.get("gateways") or [], list[GatewayConnection])


def usage_settings(raw: dict[str, Any]) -> UsageSettings:
    """The merchant's usage billing settings, defaults filled in."""
    return msgspec.convert(raw.get("usage") or {}, UsageSettings)


def dunning_settings(raw: dict[str, Any]) -> DunningSettings:
    """The merchant's dunning settings, defaults filled in."""
    return msgspec.convert(raw.get("dunning") or {}, DunningSettings)


def portal_settings(raw: dict[str, Any]) -> PortalSettings:
    """What the merchant lets customers do in the portal, defaults filled in."""
    return msgspec.convert(raw.get("portal") or {}, PortalSettings)


def risk_settings(raw: dict[str, Any]) -> RiskSettings:
    """The merchant's risk rules as stored (validated on the way in), defaults filled in."""
    return msgspec.convert(raw.get("risk") or {}, RiskSettings)


def _checked_risk(settings: RiskSettings) -> dict[str, Any]:
    """The risk section as stored: currencies, countries, emails and IPs checked and normalized."""
    limits: dict[str, Any] = {}
    for code, limit in settings.amount_limits.items():
        param = f"risk.amount_limits.{code}"
        try:
            currency = validate_currency(code)
        except ValueError as exc:
            raise InvalidRequest(f"{param}: {exc}", param=param) from None
        if limit.review is not None and limit.block is not None and limit.review >= limit.block:
            raise InvalidRequest(
                f"{param}: review ({limit.review}) must be below block ({limit.block}), or leave one out.",
                param=param,
            )
        limits[currency] = msgspec.to_builtins(limit)
    lists = settings.blocklists
    for index, ip in enumerate(lists.ips):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidRequest(
                f"risk.blocklists.ips[{index}]: {ip[:64]!r} is not an IPv4 or IPv6 address (e.g. 203.0.113.9).",
                param=f"risk.blocklists.ips[{index}]",
            ) from None
    for index, country in enumerate(lists.countries):
        if not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise InvalidRequest(
                f"risk.blocklists.countries[{index}]: {country[:64]!r} is not a two-letter ISO 3166-1 country "
                "code (e.g. KP).",
                param=f"risk.blocklists.countries[{index}]",
            )
    for index, email in enumerate(lists.emails):
        if "@" not in email.strip("@"):
            raise InvalidRequest(
                f"risk.blocklists.emails[{index}]: {email[:64]!r} is not an email address.",
                param=f"risk.blocklists.emails[{index}]",
            )
    stored: dict[str, Any] = msgspec.to_builtins(settings)
    stored["amount_limits"] = limits
    stored["blocklists"] = {
        "fingerprints": sorted(set(lists.fingerprints)),
        "emails": sorted({e.strip().lower() for e in lists.emails}),
        "ips": sorted({str(ipaddress.ip_address(ip)) for ip in lists.ips}),
        "countries": sorted({c.upper() for c in lists.countries}),
    }
    return stored


def branding_settings(raw: dict[str, Any]) -> BrandingSettings:
    return msgspec.convert(raw.get("branding") or {}, BrandingSettings)


def business_profile(raw: dict[str, Any]) -> BusinessProfile:
    return msgspec.convert(raw.get("business") or {}, BusinessProfile)


def issuer_details(merchant: Merchant) -> dict[str, Any]:
    """The seller as an invoice finalized now prints it (frozen on the invoice): the legal name (else the name
    customers see), address, tax ids, footer and payment instructions."""
    profile = business_profile(merchant.settings or {})
    stored: dict[str, Any] = msgspec.to_builtins(profile)
    stored["legal_name"] = profile.legal_name or merchant_branding(merchant).name
    return stored


def _merged_business(current: dict[str, Any], update: BusinessProfileUpdate) -> dict[str, Any]:
    merged: dict[str, Any] = msgspec.to_builtins(business_profile(current))
    for name in ("legal_name", "invoice_footer", "payment_instructions"):
        value = getattr(update, name)
        if value is not msgspec.UNSET:
            merged[name] = (value.strip() or None) if value is not None else None
    if update.address is not msgspec.UNSET:
        merged["address"] = (
            clean_address(msgspec.to_builtins(update.address), param="business.address")
            if update.address is not None
            else None
        )
    if update.tax_ids is not msgspec.UNSET:
        merged["tax_ids"] = clean_tax_ids(
            [(t.type, t.value) for t in update.tax_ids], param="business.tax_ids"
        )
    return merged


def merchant_branding(merchant: Merchant) -> Branding:
    """The merchant as customers see it: the branding settings over the merchant's name and our accent."""
    settings = branding_settings(merchant.settings or {})
    return Branding(
        name=settings.display_name or merchant.name,
        logo_url=settings.logo_url,
        accent_color=settings.accent_color or DEFAULT_ACCENT,
        support_email=settings.support_email,
    )


async def get_branding(session: AsyncSession, merchant_id: str) -> Branding:
    return merchant_branding(await _merchant(session, merchant_id))


def _merged_portal(current: dict[str, Any], update: PortalSettingsUpdate) -> dict[str, Any]:
    merged: dict[str, Any] = msgspec.to_builtins(portal_settings(current))
    for name in PortalSettings.__struct_fields__:
        value = getattr(update, name)
        if value is not msgspec.UNSET:
            merged[name] = value
    return merged


def _check_logo_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme == "https" and bool(parts.hostname) and not parts.username and not parts.password
        valid = valid and not any(c.isspace() or ord(c) < 32 for c in url)
    except ValueError:
        valid = False
    if not valid:
        raise InvalidRequest(
            "branding.logo_url must be an https:// URL with a host and no credentials, e.g. "
            "https://example.com/logo.png.",
            param="branding.logo_url",
        )
    return url


def _merged_branding(current: dict[str, Any], update: BrandingSettingsUpdate) -> dict[str, Any]:
    merged: dict[str, Any] = msgspec.to_builtins(branding_settings(current))
    if update.display_name is not msgspec.UNSET:
        merged["display_name"] = update.display_name.strip() if update.display_name else None
    if update.logo_url is not msgspec.UNSET:
        merged["logo_url"] = _check_logo_url(update.logo_url) if update.logo_url is not None else None
    if update.accent_color is not msgspec.UNSET:
        colour = update.accent_color
        if colour is not None and not HEX_COLOUR.fullmatch(colour):
            raise InvalidRequest(
                f"branding.accent_color must be a colour written #rrggbb, e.g. #0b5cad, not {colour[:20]!r}.",
                param="branding.accent_color",
            )
        merged["accent_color"] = readable_accent(colour) if colour is not None else None
    if update.support_email is not msgspec.UNSET:
        merged["support_email"] = update.support_email
    return merged


def _merged_dunning(current: dict[str, Any], update: DunningSettingsUpdate) -> dict[str, Any]:
    merged: dict[str, Any] = msgspec.to_builtins(dunning_settings(current))
    for name in ("retry_schedule_days", "final_action", "smart_retries"):
        value = getattr(update, name)
        if value is not msgspec.UNSET:
            merged[name] = value
    try:
        merged["retry_schedule_days"] = list(validate_schedule(merged["retry_schedule_days"]))
    except ScheduleError as exc:
        param = "dunning.retry_schedule_days"
        raise InvalidRequest(
            f"dunning.retry_schedule_days: {exc}",
            param=param if exc.index is None else f"{param}[{exc.index}]",
        ) from None
    return merged


def _redacted(connection: GatewayConnection) -> GatewayConnection:
    """The connection as shown: its secret credentials replaced by SEALED."""
    kind = GATEWAY_TYPES.get(connection.type)
    secret = kind.secret_fields if kind is not None else frozenset()
    if not connection.credentials or not secret:
        return connection
    shown = {name: SEALED if name in secret else value for name, value in connection.credentials.items()}
    return msgspec.structs.replace(connection, credentials=shown)


def render_settings(merchant: Merchant) -> MerchantSettings:
    return MerchantSettings(
        id=merchant.id,
        gateways=[_redacted(c) for c in _connections(merchant.settings or {})],
        usage=usage_settings(merchant.settings or {}),
        dunning=dunning_settings(merchant.settings or {}),
        portal=portal_settings(merchant.settings or {}),
        branding=branding_settings(merchant.settings or {}),
        business=business_profile(merchant.settings or {}),
        risk=risk_settings(merchant.settings or {}),
    )


def connection_configs(connections: list[GatewayConnection], merchant_id: str = "") -> list[ConnectionConfig]:
    return [
        ConnectionConfig(
            id=c.id,
            type=c.type,
            url=c.url,
            weight=c.weight,
            priority=c.priority if c.priority is not None else index,
            timeout_ms=c.timeout_ms,
            credentials=dict(c.credentials),
            merchant_id=merchant_id,
        )
        for index, c in enumerate(connections)
    ]


async def _merchant(session: AsyncSession, merchant_id: str, *, for_update: bool = False) -> Merchant:
    stmt = select(Merchant).where(Merchant.id == merchant_id)
    if for_update:
        stmt = stmt.with_for_update()
    merchant = await session.scalar(stmt)
    if merchant is None:
        raise not_found("merchant", merchant_id)
    return merchant


async def get_settings(session: AsyncSession, merchant_id: str) -> Merchant:
    return await _merchant(session, merchant_id)


async def gateway_connections(session: AsyncSession, merchant_id: str) -> list[ConnectionConfig]:
    """The merchant's configured connections, in list order, priorities filled in."""
    return merchant_connections(await _merchant(session, merchant_id))


def merchant_connections(merchant: Merchant) -> list[ConnectionConfig]:
    """The connections configured in `merchant`'s settings (a row already read), as gateway_connections."""
    return connection_configs(_connections(merchant.settings or {}), merchant.id)


def _validate_gateways(connections: list[GatewayConnection], production: bool) -> None:
    seen: set[str] = set()
    for index, connection in enumerate(connections):
        param = f"gateways[{index}]"
        if connection.id in seen:
            raise InvalidRequest(
                f"Two gateway connections are named {connection.id!r}; give each a unique id.",
                param=f"{param}.id",
            )
        seen.add(connection.id)
        gateway = GATEWAY_TYPES.get(connection.type)
        if gateway is None:
            raise InvalidRequest(
                f"Unknown gateway type {connection.type!r}. Available: {', '.join(sorted(GATEWAY_TYPES))}.",
                param=f"{param}.type",
            )
        config = connection_configs([connection])[0]
        gateway.validate(config, production, param)


async def _stored_credentials(
    merchant_id: str,
    connections: list[GatewayConnection],
    current: dict[str, Any],
    *,
    production: bool,
    pool: GatewayPool | None,
) -> list[GatewayConnection]:
    """The connections as they are stored: credentials checked, secret ones sealed. Credentials left out (or a
    secret sent back as SEALED) keep what the same connection stored before; outside production a channel
    connection with none gets a sandbox account from its sandbox."""
    before = {c.id: c for c in _connections(current)}
    stored: list[GatewayConnection] = []
    for index, connection in enumerate(connections):
        param = f"gateways[{index}]"
        kind = GATEWAY_TYPES[connection.type]
        previous = before.get(connection.id)
        held = dict(previous.credentials) if previous is not None and previous.type == connection.type else {}
        given = {name: value for name, value in connection.credentials.items() if value != SEALED}
        if not kind.credential_fields:
            if given:
                raise InvalidRequest(
                    f"{connection.type} connections take no credentials.", param=f"{param}.credentials"
                )
            stored.append(connection)
            continue
        if not connection.credentials and held:
            stored.append(msgspec.structs.replace(connection, credentials=held))
            continue
        kept = {n: held[n] for n in kind.secret_fields if n in held and n not in given}
        if not given and not kept and kind.provision is not None and not production and pool is not None:
            config = connection_configs([connection], merchant_id)[0]
            given = await kind.provision(config, pool)
        if kind.check_credentials is not None:
            kind.check_credentials(given, frozenset(kept), production, param)
        for name in kind.secret_fields & set(given):
            if pool is None or pool.secrets is None:
                raise InvalidRequest(
                    "This process cannot seal credentials (no vault).", code="vault_unavailable", param=param
                )
            given[name] = await seal_credential(pool.secrets, merchant_id, connection.id, name, given[name])
        stored.append(msgspec.structs.replace(connection, credentials={**kept, **given}))
    return stored


async def _busy_connections(session: AsyncSession, merchant_id: str, removed: set[str]) -> dict[str, str]:
    """Removed connections that still have pending payments or refunds (the janitor must ask them), or debit
    agreements (they belong to the account that signed them)."""
    busy: dict[str, int] = {}
    # A pending refund asks the connection that took it; a pending payment may be asked of every connection of
    # its route (its `gateway` is one of them, so it is counted through the route only).
    refunds = await session.execute(
        select(Refund.gateway, func.count())
        .where(Refund.merchant_id == merchant_id, Refund.status == "pending", Refund.gateway.in_(removed))
        .group_by(Refund.gateway)
    )
    for gateway, count in refunds:
        if gateway is not None:
            busy[gateway] = busy.get(gateway, 0) + int(count)
    routes = await session.scalars(
        select(Payment.route).where(
            Payment.merchant_id == merchant_id,
            Payment.status == "pending",
            Payment.route.has_any(array(sorted(removed))),
        )
    )
    for route in routes:
        for connection_id in set(route or []) & removed:
            busy[connection_id] = busy.get(connection_id, 0) + 1
    agreements = await session.execute(
        select(PaymentMethod.connection_id, func.count())
        .where(
            PaymentMethod.merchant_id == merchant_id,
            PaymentMethod.connection_id.in_(removed),
            PaymentMethod.detached_at.is_(None),
            PaymentMethod.status.in_(("pending", "active")),
        )
        .group_by(PaymentMethod.connection_id)
    )
    signed = {signer: int(count) for signer, count in agreements if signer is not None}
    return {
        name: ", ".join(
            part
            for part in (
                f"{busy[name]} pending" if busy.get(name) else "",
                f"{signed[name]} agreement{'s' if signed[name] > 1 else ''}" if signed.get(name) else "",
            )
            if part
        )
        for name in sorted(set(busy) | set(signed))
    }


async def update_settings(
    session: AsyncSession,
    merchant_id: str,
    params: SettingsUpdate,
    *,
    production: bool,
    gateways: GatewayPool | None = None,
) -> Merchant:
    merchant = await _merchant(session, merchant_id, for_update=True)
    before = msgspec.to_builtins(render_settings(merchant))
    current = dict(merchant.settings or {})
    if params.gateways is not msgspec.UNSET:
        _validate_gateways(params.gateways, production)
        removed = {c.id for c in _connections(current)} - {c.id for c in params.gateways}
        busy = await _busy_connections(session, merchant_id, removed) if removed else {}
        if busy:
            names = ", ".join(f"{k} ({v})" for k, v in sorted(busy.items()))
            raise Conflict(
                f"Gateway connections {names} still have payments or refunds whose outcome is being confirmed, or "
                "debit agreements signed with them. Set their weight to 0 to stop new charges and agreements, and "
                "remove them once nothing is pending (agreements: once detached).",
                code="gateway_in_use",
                param="gateways",
            )
        stored = await _stored_credentials(
            merchant_id, params.gateways, current, production=production, pool=gateways
        )
        current["gateways"] = msgspec.to_builtins(stored)
    if params.usage is not msgspec.UNSET:
        current["usage"] = msgspec.to_builtins(params.usage)
    if params.dunning is not msgspec.UNSET:
        current["dunning"] = _merged_dunning(current, params.dunning)
    if params.portal is not msgspec.UNSET:
        current["portal"] = _merged_portal(current, params.portal)
    if params.branding is not msgspec.UNSET:
        current["branding"] = _merged_branding(current, params.branding)
    if params.business is not msgspec.UNSET:
        current["business"] = _merged_business(current, params.business)
    if params.risk is not msgspec.UNSET:
        current["risk"] = _checked_risk(params.risk)
    merchant.settings = current
    await session.flush()
    after = render_settings(merchant)
    previous = previous_attributes(before, after)
    if previous:
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="settings.updated",
            obj=after,
            clock=SYSTEM_CLOCK,
            previous_attributes=previous,
        )
    return merchant
