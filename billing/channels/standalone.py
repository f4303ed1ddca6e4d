"""`billing sandbox-gateway --channel alipay|wechat_pay|unionpay|ecny --port P`: one channel's sandbox on its own
port, its ledger in memory, its key pair made at start, its notifications sent over HTTP to the notify URLs it
is given."""

from __future__ import annotations

import asyncio

from billing.channels.sandbox_kit import ChannelSandbox, http_deliver, platform_key
from billing.channels.types import SANDBOXES
from billing.gateways.asgi import serve
from billing.gateways.sandbox_store import MemoryStore


def standalone_sandbox(channel: str) -> ChannelSandbox:
    store = MemoryStore()
    sandbox = SANDBOXES[channel](store, deliver=http_deliver())
    asyncio.run(platform_key(store))
    return sandbox


def run_standalone_channel(channel: str, host: str, port: int) -> None:
    serve(standalone_sandbox(channel), host, port)
