"""Fixtures for delivery tests: a real HTTP receiver on loopback and the HTTP client the worker uses (`sender`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.webhooks.receiver import Receiver
from webhooks.transport import make_client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def sender() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(production=False) as http:
        yield http
