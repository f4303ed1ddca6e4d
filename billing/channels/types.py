"""The gateway types of the channels (SPEC §8), registered with billing.gateways.registry on import: `alipay`,
`wechat_pay`, `unionpay` and `ecny`, all of the same shape.

A connection of a channel type (in `settings.gateways`):
- `url`: the channel's API base (`https://openapi.alipay.com`, `https://api.mch.weixin.qq.com`,
  `https://gateway.95516.com`, the e-CNY operator's merchant API), a standalone
  sandbox (`billing sandbox-gateway --channel alipay --port P` → `http://127.0.0.1:P`), or null for the
  in-process sandbox (outside production only);
- `credentials`: the channel's ids and keys (CREDENTIALS below); secret ones are sealed by the vault when saved
  and shown as "[sealed]". Outside production, a connection saved with no credentials gets a fresh sandbox
  merchant account from its sandbox, so one settings call makes a usable sandbox connection.

Notifications reach `<notify_url_base>/channels/<type>/notify/<merchant id>/<connection id>`; `notify_url_base`
defaults to BILLING_PUBLIC_URL (else the development server's address).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import httpx

from billing.channels.alipay.adapter import AlipayGateway
from billing.channels.alipay.sandbox import AlipaySandbox
from billing.channels.crypto import KeyFormatError, load_private_key, load_public_key
from billing.channels.ecny.adapter import EcnyGateway
from billing.channels.ecny.sandbox import EcnySandbox
from billing.channels.sandbox_kit import ChannelSandbox, asgi_deliver
from billing.channels.unionpay.adapter import UnionpayGateway
from billing.channels.unionpay.sandbox import UnionpaySandbox
from billing.channels.wechat_pay.adapter import WechatPayGateway
from billing.channels.wechat_pay.protocol import APIV3_KEY_BYTES
from billing.channels.wechat_pay.sandbox import WechatPaySandbox
from billing.errors import InvalidRequest
from billing.gateways.base import ConnectionConfig, Gateway
from billing.gateways.registry import GatewayPool, GatewayType, NotifyAnswer, register_gateway_type

ALIPAY, WECHAT_PAY, UNIONPAY, ECNY = "alipay", "wechat_pay", "unionpay", "ecny"
CHANNEL_TYPES = (ALIPAY, WECHAT_PAY, UNIONPAY, ECNY)
REQUIRED = {
    ALIPAY: ("app_id", "app_private_key", "alipay_public_key"),
    WECHAT_PAY: (
        "mchid",
        "appid",
        "merchant_serial_no",
        "merchant_private_key",
        "apiv3_key",
        "platform_public_key",
        "platform_public_key_id",
        "plan_id",
    ),
    UNIONPAY: ("mer_id", "merchant_cert_id", "merchant_private_key", "unionpay_public_key"),
    ECNY: ("merchant_no", "merchant_private_key", "ecny_public_key"),
}
OPTIONAL = {
    ALIPAY: ("sign_scene", "notify_url_base"),
    WECHAT_PAY: ("notify_url_base",),
    UNIONPAY: ("notify_url_base",),
    ECNY: ("notify_url_base",),
}
SECRET = {
    ALIPAY: frozenset({"app_private_key"}),
    WECHAT_PAY: frozenset({"merchant_private_key", "apiv3_key"}),
    UNIONPAY: frozenset({"merchant_private_key"}),
    ECNY: frozenset({"merchant_private_key"}),
}
API_EXAMPLES = {
    ALIPAY: "https://openapi.alipay.com",
    WECHAT_PAY: "https://api.mch.weixin.qq.com",
    UNIONPAY: "https://gateway.95516.com",
    ECNY: "https://ecny.operator.example.cn",
}
_PRIVATE_KEYS = frozenset({"app_private_key", "merchant_private_key"})
_PUBLIC_KEYS = frozenset(
    {"alipay_public_key", "platform_public_key", "unionpay_public_key", "ecny_public_key"}
)
_ID = re.compile(r"^[A-Za-z0-9_\-|.]{1,64}$")


def notify_url(pool: GatewayPool, connection: ConnectionConfig) -> str:
    """Where the channel sends this connection's notifications (the connection is named in the path)."""
    base = (connection.credentials.get("notify_url_base") or pool.public_url()).rstrip("/")
    return f"{base}/channels/{connection.type}/notify/{connection.merchant_id}/{connection.id}"


def _validator(kind: str) -> Callable[[ConnectionConfig, bool, str], None]:
    def validate(connection: ConnectionConfig, production: bool, param: str) -> None:
        if connection.url is None:
            if production:
                raise InvalidRequest(
                    f"The in-process {kind} sandbox (url: null) is not available when BILLING_ENV=production. Give "
                    "the channel's API URL and your credentials.",
                    code="sandbox_disabled",
                    param=f"{param}.url",
                )
            return
        parts = urlsplit(connection.url)
        schemes = ("https",) if production else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname or parts.query or parts.fragment:
            raise InvalidRequest(
                f"url must be the {kind} API's base URL ({'https' if production else 'http(s)'}), e.g. "
                f"{API_EXAMPLES[kind]}, a standalone "
                "sandbox such as http://127.0.0.1:9200, or null for the in-process sandbox.",
                param=f"{param}.url",
            )

    return validate


def _checker(kind: str) -> Callable[[Mapping[str, str], frozenset[str], bool, str], None]:
    def check(given: Mapping[str, str], kept: frozenset[str], production: bool, param: str) -> None:
        allowed = set(REQUIRED[kind]) | set(OPTIONAL[kind])
        for name, value in given.items():
            where = f"{param}.credentials.{name}"
            if name not in allowed:
                raise InvalidRequest(
                    f"{kind} connections take the credentials {', '.join(sorted(allowed))}; {name!r} is not one.",
                    param=where,
                )
            try:
                if name in _PRIVATE_KEYS:
                    load_private_key(value)
                elif name in _PUBLIC_KEYS:
                    load_public_key(value)
            except KeyFormatError as exc:
                raise InvalidRequest(f"credentials.{name}: {exc}.", param=where) from None
            if name == "apiv3_key" and len(value.encode()) != APIV3_KEY_BYTES:
                raise InvalidRequest(
                    f"credentials.apiv3_key is the {APIV3_KEY_BYTES}-character APIv3 key set in the WeChat Pay "
                    "merchant platform.",
                    param=where,
                )
            if name == "notify_url_base":
                parts = urlsplit(value)
                if parts.scheme not in ("https",) + (() if production else ("http",)) or not parts.hostname:
                    raise InvalidRequest(
                        "credentials.notify_url_base is the public base URL of this engine as the channel reaches it, "
                        "e.g. https://billing.example.com (https in production).",
                        param=where,
                    )
            elif name not in _PRIVATE_KEYS | _PUBLIC_KEYS and not _ID.match(value):
                raise InvalidRequest(f"credentials.{name} is not a valid {kind} identifier.", param=where)
        missing = [name for name in REQUIRED[kind] if name not in given and name not in kept]
        if missing:
            raise InvalidRequest(
                f"{kind} connections need the credentials {', '.join(missing)}"
                + (
                    "."
                    if production
                    else ", or no credentials at all to get a sandbox account (outside production)."
                ),
                code="parameter_missing",
                param=f"{param}.credentials.{missing[0]}",
            )

    return check


def _sandbox_client(pool: GatewayPool, connection: ConnectionConfig) -> httpx.AsyncClient:
    return pool.in_process_client(connection.type) if connection.url is None else pool.client(connection.url)


def _provisioner(kind: str) -> Callable[[ConnectionConfig, GatewayPool], Awaitable[dict[str, str]]]:
    async def provision(connection: ConnectionConfig, pool: GatewayPool) -> dict[str, str]:
        client = _sandbox_client(pool, connection)
        try:
            response = await client.post("/admin/credentials", json={}, timeout=connection.timeout_ms / 1000)
        except httpx.HTTPError as exc:
            raise InvalidRequest(
                f"The {kind} sandbox at {connection.url or 'in-process'} did not answer ({type(exc).__name__}). Start "
                f"it (`billing sandbox-gateway --channel {kind} --port P`) or give credentials.",
                code="sandbox_unreachable",
                param="gateways",
            ) from None
        data = response.json() if response.status_code == 200 else {}
        if not isinstance(data, dict) or not all(isinstance(data.get(n), str) for n in REQUIRED[kind]):
            raise InvalidRequest(
                f"{connection.url} did not hand out {kind} sandbox credentials ({response.status_code}): is it a "
                f"{kind} sandbox?",
                code="sandbox_unreachable",
                param="gateways",
            )
        return {name: str(data[name]) for name in REQUIRED[kind]}

    return provision


def _build_alipay(connection: ConnectionConfig, pool: GatewayPool) -> Gateway:
    in_process = connection.url is None
    gateway_url = (
        f"{pool.public_url().rstrip('/')}/sandbox/{ALIPAY}" if in_process else str(connection.url).rstrip("/")
    )
    return AlipayGateway(
        connection,
        _sandbox_client(pool, connection),
        secrets=pool.secrets,
        in_process=in_process,
        browser_gateway_url=f"{gateway_url}/gateway.do",
        notify_url=notify_url(pool, connection),
    )


def _build_wechat_pay(connection: ConnectionConfig, pool: GatewayPool) -> Gateway:
    return WechatPayGateway(
        connection,
        _sandbox_client(pool, connection),
        secrets=pool.secrets,
        in_process=connection.url is None,
        notify_url=notify_url(pool, connection),
    )


def _build_unionpay(connection: ConnectionConfig, pool: GatewayPool) -> Gateway:
    in_process = connection.url is None
    browser_url = (
        f"{pool.public_url().rstrip('/')}/sandbox/{UNIONPAY}"
        if in_process
        else str(connection.url).rstrip("/")
    )
    return UnionpayGateway(
        connection,
        _sandbox_client(pool, connection),
        secrets=pool.secrets,
        in_process=in_process,
        browser_url=browser_url,
        notify_url=notify_url(pool, connection),
    )


def _build_ecny(connection: ConnectionConfig, pool: GatewayPool) -> Gateway:
    return EcnyGateway(
        connection,
        _sandbox_client(pool, connection),
        secrets=pool.secrets,
        in_process=connection.url is None,
        notify_url=notify_url(pool, connection),
    )


SANDBOXES: dict[str, type[ChannelSandbox]] = {
    ALIPAY: AlipaySandbox,
    WECHAT_PAY: WechatPaySandbox,
    UNIONPAY: UnionpaySandbox,
    ECNY: EcnySandbox,
}


def _sandbox_factory(kind: str) -> Callable[[GatewayPool], ChannelSandbox]:
    cls = SANDBOXES[kind]

    def make(pool: GatewayPool) -> ChannelSandbox:
        return cls(
            pool.sandbox_store(kind),
            deliver=asgi_deliver(lambda: pool.notify_app),
            public_url=lambda: f"{pool.public_url().rstrip('/')}/sandbox/{kind}",
        )

    return make


def _alipay_reply(accepted: bool, why: str) -> NotifyAnswer:
    # Alipay reads the body: `success` stops its retries, anything else (`fail`) asks for another delivery.
    return 200, "text/plain; charset=utf-8", b"success" if accepted else b"fail"


def _wechat_pay_reply(accepted: bool, why: str) -> NotifyAnswer:
    if accepted:
        return 204, "text/plain; charset=utf-8", b""
    body = ('{"code":"FAIL","message":"' + why.replace('"', "'")[:200] + '"}').encode()
    return 400, "application/json; charset=utf-8", body


def _unionpay_reply(accepted: bool, why: str) -> NotifyAnswer:
    # UnionPay reads the status only: 200 stops its retries (the body is ignored), anything else asks again.
    return (
        (200, "text/plain; charset=utf-8", b"ok") if accepted else (400, "text/plain; charset=utf-8", b"fail")
    )


def _ecny_reply(accepted: bool, why: str) -> NotifyAnswer:
    if accepted:
        return 200, "application/json; charset=utf-8", b'{"retCode":"SUCCESS"}'
    body = ('{"retCode":"FAIL","errMsg":"' + why.replace('"', "'")[:200] + '"}').encode()
    return 400, "application/json; charset=utf-8", body


for _kind, _description, _build, _reply in (
    (
        ALIPAY,
        "Alipay open platform: 周期扣款 agreements debited with alipay.trade.pay (CNY only).",
        _build_alipay,
        _alipay_reply,
    ),
    (
        WECHAT_PAY,
        "WeChat Pay API v3: 委托代扣 contracts, pre-notified deductions (CNY only).",
        _build_wechat_pay,
        _wechat_pay_reply,
    ),
    (
        UNIONPAY,
        "UnionPay 全渠道 gateway: 无感支付 tokens opened on UnionPay's page, debited with txnType 01 (CNY only).",
        _build_unionpay,
        _unionpay_reply,
    ),
    (
        ECNY,
        "e-CNY (数字人民币) operator API: 子钱包免密支付 agreements signed in the wallet app (CNY only).",
        _build_ecny,
        _ecny_reply,
    ),
):
    register_gateway_type(
        GatewayType(
            name=_kind,
            description=_description,
            build=_build,
            validate=_validator(_kind),
            payment_method_types=frozenset({_kind}),
            credential_fields=frozenset(REQUIRED[_kind]) | frozenset(OPTIONAL[_kind]),
            secret_fields=SECRET[_kind],
            check_credentials=_checker(_kind),
            provision=_provisioner(_kind),
            in_process_sandbox=_sandbox_factory(_kind),
            notification_reply=_reply,
        )
    )
