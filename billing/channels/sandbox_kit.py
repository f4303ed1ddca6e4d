"""What the channel sandboxes share: the test buyers, the switches (slow, down), the approval page, the
notification sender, and the parts of the admin API that do not depend on the channel.

A sandbox is a stand-in for a channel, good enough that the engine's real adapter code runs against it: it holds
its own RSA key pair (made once, kept in its store, so an engine's API and worker processes see one sandbox), it
verifies the merchant's signatures and signs its answers and notifications as the channel does. It keeps what it
did in a `SandboxStore` (billing.gateways.sandbox_store): in memory when standalone, in the engine's Redis when
in-process.

Notifications are sent like a channel sends them, after the fact and again until answered as expected (retries
here after 1 s, 5 s and 30 s instead of the channels' minutes and hours). A sandbox in the engine's process
delivers through the engine's ASGI app; a standalone one over HTTP to the notify URL it was given. An approval
(or a revocation through the admin API) waits for the first delivery attempt before it answers, so that a tester
who approves sees the payment method active on the next page; payment and refund notifications go in the
background, as the synchronous answer already told the engine.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from billing.channels.crypto import generate_private_key_pem, load_public_key, public_key_pem
from billing.channels.yuan import fee_for
from billing.clock import utc_now
from billing.gateways.asgi import ASGIApp, HttpRequest, HttpResponse, MiniApp
from billing.gateways.sandbox_store import Document, SandboxStore

log = logging.getLogger("billing.channels.sandbox")

CHINA = ZoneInfo("Asia/Shanghai")
MODES = ("normal", "slow", "down")
RETRY_DELAYS = (1.0, 5.0, 30.0)
FEE_PER_MILLE = 6  # both sandboxes keep 0.6 % of each debit, rounded half up to the fen


@dataclass(frozen=True)
class TestBuyer:
    name: str
    account: str  # the buyer's channel account (a phone number), shown masked to the merchant
    outcome: str | None  # None: every debit succeeds


TEST_BUYERS: dict[str, TestBuyer] = {
    b.name: b
    for b in (
        TestBuyer("buyer_ok", "13800000001", None),
        TestBuyer("buyer_poor", "13800000002", "insufficient_funds"),
        TestBuyer("buyer_frozen", "13800000003", "account_frozen"),
        TestBuyer("buyer_slow", "13800000004", "slow"),
    )
}
BUYER_WORDS = {
    "buyer_ok": ("every debit succeeds", "每笔扣款成功"),
    "buyer_poor": ("balance too low: insufficient funds (soft)", "余额不足（可重试）"),
    "buyer_frozen": ("account frozen (hard decline)", "账户冻结（硬拒绝）"),
    "buyer_slow": ("no answer at first, then success when queried", "先无结果，查询后成功"),
}


def buyer_outcome(agreement: Document) -> str | None:
    """What the test buyer who signed `agreement` makes of every debit (None: success)."""
    buyer = TEST_BUYERS.get(str(agreement.get("buyer")))
    return buyer.outcome if buyer else None


def merchant_key_pair(given: object) -> tuple[str | None, str]:
    """A new sandbox account's key pair: the public key the caller brings (None, public), or a fresh pair
    (private, public). KeyFormatError for a key that cannot be read."""
    if isinstance(given, str):
        load_public_key(given)
        return None, given
    private = generate_private_key_pem()
    return private, public_key_pem(private)


def digits(count: int) -> str:
    """`count` random decimal digits (the channels' numbers: trade numbers, agreement numbers)."""
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


@dataclass
class Switches:
    mode: str = "normal"
    delay_ms: int = 0


async def platform_key(store: SandboxStore) -> Document:
    """The sandbox's own key pair (its "Alipay public key" / "platform certificate"), made once per store."""
    held = await store.get("keys", "platform")
    if held is not None:
        return held
    private = await asyncio.to_thread(generate_private_key_pem)
    made = {
        "private_key": private,
        "public_key": public_key_pem(private),
        "serial": "PUB_KEY_ID_" + digits(24),
    }
    return await store.add("keys", "platform", made)


# --- notifications ------------------------------------------------------------------------------------------

Deliver = Callable[[str, Mapping[str, str], bytes], Awaitable[tuple[int, bytes]]]
NO_RECEIVER = 0  # the status `deliver` answers when there is no receiver at all: not retried
Accepted = Callable[[int, bytes], bool]


def http_deliver() -> Deliver:
    """Over the network, to the notify URL as given (a standalone sandbox)."""

    async def deliver(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.post(url, headers=dict(headers), content=body)
            return response.status_code, response.content

    return deliver


def asgi_deliver(app: Callable[[], ASGIApp | None]) -> Deliver:
    """Through the engine's own ASGI app (an in-process sandbox): the notify URL's path and query, no network."""

    async def deliver(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        target = app()
        if target is None:
            # No engine in this process to receive them (a pool used on its own): nobody to retry for.
            return NO_RECEIVER, b"no engine app is wired to receive this in-process sandbox's notifications"
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url="http://engine.in-process") as client:
            response = await client.post(path, headers=dict(headers), content=body)
            return response.status_code, response.content

    return deliver


class Notifier:
    """Sends a channel's notifications until the merchant answers as the channel expects, and keeps a log of
    them (GET /admin/notifications) so a tester can see, and replay, exactly what was sent."""

    def __init__(self, store: SandboxStore, deliver: Deliver, accepted: Accepted) -> None:
        self._store = store
        self._deliver = deliver
        self._accepted = accepted
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(
        self, *, notify_id: str, url: str, headers: Mapping[str, str], body: bytes, what: str, wait: bool
    ) -> bool:
        record: Document = {
            "id": notify_id,
            "what": what,
            "url": url,
            "headers": dict(headers),
            "body": body.decode(),
            "sent_at": utc_now().isoformat(),
            "attempts": 0,
            "accepted": False,
            "last_answer": None,
        }
        await self._store.put("notifications", notify_id, record)
        if wait:
            if await self._attempt(record):
                return True
            self._spawn(self._retry(record))
            return False
        self._spawn(self._retry(record, first=True))
        return False

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, record: Document) -> bool:
        record["attempts"] += 1
        try:
            status, answer = await self._deliver(record["url"], record["headers"], record["body"].encode())
            record["last_answer"] = f"{status} {answer[:200].decode(errors='replace')}"
            record["accepted"] = self._accepted(status, answer)
        except Exception as exc:  # any failure to deliver is retried, as a channel does
            record["last_answer"] = f"{type(exc).__name__}: {exc}"
        await self._store.put("notifications", record["id"], record)
        if not record["accepted"]:
            log.info(
                "notification %s (%s) not accepted: %s", record["id"], record["what"], record["last_answer"]
            )
        return bool(record["accepted"])

    async def _retry(self, record: Document, *, first: bool = False) -> None:
        if first and await self._attempt(record):
            return
        for delay in RETRY_DELAYS:
            if str(record["last_answer"]).startswith(f"{NO_RECEIVER} "):
                return
            await asyncio.sleep(delay)
            if await self._attempt(record):
                return

    async def drain(self) -> None:
        """Wait for the notifications in flight (first attempts and retries) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def log(self) -> list[Document]:
        return sorted(await self._store.all("notifications"), key=lambda r: str(r["sent_at"]))


# --- the approval page ----------------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,'PingFang SC','Microsoft YaHei','WenQuanYi Zen Hei',sans-serif;max-width:34rem;"
    "margin:2rem auto;padding:0 1rem;color:#1f2328}h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}"
    "td{padding:.35rem .5rem;border-bottom:1px solid #ddd}td:first-child{color:#555}.note{background:#fff8c5;"
    "padding:.5rem .75rem;border-radius:6px}fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}"
    "label{display:block;margin:.3rem 0}button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}"
    ".approve{background:#1677ff;color:#fff;border:0;border-radius:6px}.decline{border-radius:6px}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def approval_page(
    *, channel: str, channel_zh: str, rows: Sequence[tuple[str, str, str]], expires_at: datetime
) -> str:
    """The one form of the sandbox (SPEC §8): approve or decline, as which test buyer. It posts back to its own
    URL with `decision` and `buyer`."""
    table = "".join(
        f"<tr><td>{html.escape(en)} · {html.escape(zh)}</td><td>{html.escape(value)}</td></tr>"
        for en, zh, value in rows
    )
    buyers = "".join(
        f'<label><input type="radio" name="buyer" value="{b}"{" checked" if b == "buyer_ok" else ""}> '
        f"<code>{b}</code>: {html.escape(en)} · {html.escape(zh)}</label>"
        for b, (en, zh) in BUYER_WORDS.items()
    )
    body = (
        f"<h1>{html.escape(channel)} sandbox: approve a debit agreement · {html.escape(channel_zh)}沙箱：签约代扣协议</h1>"
        '<p class="note">This is a test page of the billing engine\'s sandbox, not the real channel. No money moves. · '
        "这是计费引擎的沙箱测试页面，并非真实支付渠道，不会产生真实资金往来。</p>"
        f"<table>{table}</table>"
        f"<p>Link valid until · 链接有效期至 {html.escape(_china_time(expires_at))}</p>"
        '<form method="post"><fieldset><legend>Test buyer · 测试买家</legend>'
        f"{buyers}</fieldset>"
        '<button class="approve" type="submit" name="decision" value="approve">Approve · 同意签约</button>'
        '<button class="decline" type="submit" name="decision" value="decline">Decline · 拒绝</button>'
        "</form>"
    )
    return _page(f"{channel} sandbox · {channel_zh}沙箱", body)


def _china_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


def period_words(interval: str, count: int) -> str:
    """A debit cycle in both languages: "every 1 month · 每 1 个月"."""
    en = f"every {count} {'month' if interval == 'month' else 'day'}{'s' if count > 1 else ''}"
    return f"{en} · 每 {count} {'个月' if interval == 'month' else '天'}"


def result_page(*, channel: str, channel_zh: str, en: str, zh: str, return_url: str | None) -> str:
    back = (
        f'<p><a href="{html.escape(return_url)}">Back to the merchant · 返回商户</a></p>'
        if return_url
        else ""
    )
    return _page(
        f"{channel} sandbox · {channel_zh}沙箱",
        f"<h1>{html.escape(en)}</h1><p>{html.escape(zh)}</p>{back}",
    )


def message_page(status: int, en: str, zh: str) -> HttpResponse:
    return HttpResponse.html(
        status, _page("Sandbox · 沙箱", f"<h1>{html.escape(en)}</h1><p>{html.escape(zh)}</p>")
    )


# --- shared plumbing ------------------------------------------------------------------------------------------


def expired(document: Document) -> bool:
    return datetime.fromisoformat(str(document["expires_at"])) <= utc_now()


def sandbox_fee(amount: int) -> int:
    """What a sandbox keeps of a debit of `amount` fen (0.6 %, half up): the fee column of its bills."""
    return fee_for(amount, Decimal(FEE_PER_MILLE))


def on_china_day(moment: str | None, day: date) -> bool:
    """Whether a ledger time (ISO, UTC) falls on `day` in China time, the day of the channels' bills."""
    return moment is not None and datetime.fromisoformat(moment).astimezone(CHINA).date() == day


def link_lifetime() -> timedelta:
    return timedelta(minutes=30)


async def record_refund(
    store: SandboxStore, trade: Document, key: str, refund: Document, *, over_limit: Exception
) -> tuple[Document, bool]:
    """Reserve `refund["amount"]` against what is left of `trade` to refund, then record `refund` under `key`.

    The reservation is an atomic increment of the trade's refunded total, given back at once if it passes the
    trade's amount (then `over_limit` is raised, the channel's own refusal). If a concurrent request with the same
    refund number recorded its refund first, ours is given back too and theirs is answered. Returns the refund that
    is held under `key` and whether it is this one (the caller notifies the merchant only then)."""
    amount = refund["amount"]
    refunded = await store.increment("refunded", trade["key"], amount)
    if refunded > trade["amount"]:
        await store.increment("refunded", trade["key"], -amount)
        raise over_limit
    held = await store.add("refunds", key, refund)
    if held["id"] != refund["id"]:
        await store.increment("refunded", trade["key"], -amount)
        return held, False
    return held, True


async def admin_mode(switches: Switches, request: HttpRequest) -> HttpResponse | None:
    """POST /admin/mode {"mode": "normal"|"slow"|"down", "delay_ms": N}; None when the body is fine."""
    try:
        change: Any = json.loads(request.body or b"null")
    except ValueError:
        return HttpResponse.json(400, {"error": 'the body must be JSON: {"mode": "slow", "delay_ms": 500}'})
    if not isinstance(change, dict) or change.get("mode") not in MODES:
        return HttpResponse.json(400, {"error": f"mode must be one of {', '.join(MODES)}"})
    switches.mode = str(change["mode"])
    if isinstance(change.get("delay_ms"), int):
        switches.delay_ms = max(0, int(change["delay_ms"]))
    return None


async def slow_down(switches: Switches) -> None:
    if switches.mode == "slow" and switches.delay_ms:
        await asyncio.sleep(switches.delay_ms / 1000)


class ChannelSandbox(MiniApp):
    """A channel's sandbox: the parts every channel has (the approval page, the admin API, the switches), around
    the channel's own API (`api`), implemented by each channel's subclass.

    Admin routes (never in the real channel): POST /admin/credentials (a new sandbox merchant account: the keys
    and ids to put in the connection's credentials), POST /admin/mode, POST /admin/reset, GET /admin/state,
    GET /admin/notifications, POST /admin/agreements/{agreement_no}/revoke (the customer revokes in the channel).
    """

    channel = ""
    channel_zh = ""

    def __init__(
        self,
        store: SandboxStore,
        *,
        deliver: Deliver,
        public_url: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.switches = Switches()
        self.notifier = Notifier(store, deliver, self.accepted)
        # Where browsers reach this sandbox (links in answers); None: the address the request came to.
        self._public_url = public_url
        self.api_requests = 0

    # -- what each channel provides --

    @staticmethod
    def accepted(status: int, body: bytes) -> bool:
        raise NotImplementedError

    async def api(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def down_answer(self) -> HttpResponse:
        raise NotImplementedError

    async def sign_request(self, sign_id: str) -> Document | None:
        return await self.store.get("signs", sign_id)

    def approval_rows(self, sign: Document) -> list[tuple[str, str, str]]:
        raise NotImplementedError

    async def approve(self, sign: Document, buyer: TestBuyer) -> bool:
        """Sign the agreement as `buyer` and notify the merchant; whether the notification was accepted."""
        raise NotImplementedError

    async def revoke(self, agreement_no: str) -> Document | None:
        raise NotImplementedError

    async def provision(self, body: Document) -> Document:
        raise NotImplementedError

    # -- shared --

    def base_url(self, request: HttpRequest) -> str:
        return (self._public_url() if self._public_url else request.origin).rstrip("/")

    async def handle(self, request: HttpRequest) -> HttpResponse:
        prefix = urlsplit(self._public_url()).path.rstrip("/") if self._public_url else ""
        if prefix and request.path.startswith(prefix + "/"):
            # A link this sandbox handed out (a bill URL) followed through the in-process transport.
            request = replace(request, path=request.path[len(prefix) :])
        parts = request.parts()
        if parts[:1] == ["admin"]:
            return await self._admin(request, parts[1:])
        if len(parts) == 2 and parts[0] == "authorize":
            return await self._authorize(request, parts[1])
        if self.switches.mode == "down":
            return await self.down_answer()
        self.api_requests += 1
        answer = await self.api(request)
        await slow_down(self.switches)
        return answer

    async def _authorize(self, request: HttpRequest, sign_id: str) -> HttpResponse:
        sign = await self.sign_request(sign_id)
        if sign is None:
            return message_page(404, "No such signing request.", "没有这个签约请求。")
        if sign["status"] != "pending":
            return message_page(
                409,
                f"This signing request was already answered ({sign['status']}).",
                f"该签约请求已处理（{sign['status']}）。",
            )
        if expired(sign):
            return message_page(410, "This signing link has expired.", "该签约链接已过期。")
        if request.method == "GET":
            expires_at = datetime.fromisoformat(str(sign["expires_at"]))
            page = approval_page(
                channel=self.channel,
                channel_zh=self.channel_zh,
                rows=self.approval_rows(sign),
                expires_at=expires_at,
            )
            return HttpResponse.html(200, page)
        if request.method != "POST":
            return message_page(
                405, "Use GET to see the page and POST to answer it.", "请用 GET 查看、POST 提交。"
            )
        form = request.form()
        decision, buyer = form.get("decision"), TEST_BUYERS.get(form.get("buyer", ""))
        if decision not in ("approve", "decline") or buyer is None:
            return message_page(
                400,
                f"Choose approve or decline and one of the test buyers: {', '.join(TEST_BUYERS)}.",
                f"请选择同意或拒绝，并选择一个测试买家：{', '.join(TEST_BUYERS)}。",
            )
        if decision == "decline":
            sign["status"] = "declined"
            await self.store.put("signs", sign_id, sign)
            return HttpResponse.html(
                200,
                result_page(
                    channel=self.channel,
                    channel_zh=self.channel_zh,
                    en="You declined the agreement. Nothing was signed.",
                    zh="您已拒绝签约，未签署任何协议。",
                    return_url=sign.get("return_url"),
                ),
            )
        notified = await self.approve(sign, buyer)
        en = f"Agreement signed as {buyer.name}. " + (
            "The merchant has been notified."
            if notified
            else "The merchant's notify URL has not accepted the notification yet; the sandbox will send it again."
        )
        zh = f"已以 {buyer.name} 身份签约，" + (
            "商户已收到通知。" if notified else "商户通知地址尚未确认收到通知，沙箱将重新发送。"
        )
        return HttpResponse.html(
            200,
            result_page(
                channel=self.channel,
                channel_zh=self.channel_zh,
                en=en,
                zh=zh,
                return_url=sign.get("return_url"),
            ),
        )

    async def _admin(self, request: HttpRequest, parts: list[str]) -> HttpResponse:
        if request.method == "POST" and parts == ["credentials"]:
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return HttpResponse.json(400, {"error": "the body must be a JSON object"})
            return HttpResponse.json(200, await self.provision(body if isinstance(body, dict) else {}))
        if request.method == "POST" and parts == ["mode"]:
            refused = await admin_mode(self.switches, request)
            if refused is not None:
                return refused
        elif request.method == "POST" and parts == ["reset"]:
            self.switches = Switches()
            self.api_requests = 0
            # Everything but the sandbox's own key pair and its merchant accounts: connections keep working.
            await self.store.clear(keep=("keys", "accounts"))
        elif request.method == "GET" and parts == ["notifications"]:
            return HttpResponse.json(200, {"notifications": await self.notifier.log()})
        elif (
            request.method == "POST" and len(parts) == 3 and parts[0] == "agreements" and parts[2] == "revoke"
        ):
            agreement = await self.revoke(parts[1])
            if agreement is None:
                return HttpResponse.json(404, {"error": f"no agreement {parts[1]}"})
            return HttpResponse.json(200, agreement)
        elif not (request.method == "GET" and parts == ["state"]):
            return HttpResponse.json(404, {"error": "no such admin route"})
        return HttpResponse.json(
            200,
            {
                "mode": self.switches.mode,
                "delay_ms": self.switches.delay_ms,
                "api_requests": self.api_requests,
                "agreements": await self.store.all("agreements"),
                "trades": await self.store.all("trades"),
                "refunds": await self.store.all("refunds"),
            },
        )
