"""API keys (issue #15 item 7): list, create, roll with a grace period, revoke, in the console (admin only) and on
the command line; a rolled key keeps working until its expiry, a revoked one stops at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from billing.clock import SYSTEM_CLOCK
from billing.config import Settings
from billing.console.models import AuditEntry
from billing.merchants.models import ApiKey
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.console_helpers import console_user, logged_in, post_form

_NEW_KEY = re.compile(r"data-new-key>((?:sk|pk)_[0-9A-Za-z]+)<")


def _client(app: Any, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {key}"},
    )


async def _key_id(services: Services, merchant_id: str, kind: str = "secret") -> str:
    async with services.sessions() as session:
        return str(
            await session.scalar(
                select(ApiKey.id)
                .where(ApiKey.merchant_id == merchant_id, ApiKey.kind == kind)
                .order_by(ApiKey.created_at)
            )
        )


async def test_roll_keeps_the_old_key_until_its_expiry_and_revoke_stops_it(
    app: Any, services: Services, merchant: NewMerchant
) -> None:
    admin = await logged_in(
        app, "root@example.com", await console_user(services, merchant.id, "root@example.com", "admin")
    )
    old_id = await _key_id(services, merchant.id)
    rolled = await post_form(admin, "/console/keys", f"/console/keys/{old_id}/roll", expires_in_hours="2")
    assert rolled.status_code == 200, rolled.text
    new_key = _NEW_KEY.search(rolled.text)
    assert new_key is not None
    assert "Copy this key now" in rolled.text
    async with _client(app, merchant.secret_key) as old, _client(app, new_key.group(1)) as new:
        assert (await old.get("/v1/customers")).status_code == 200  # within its grace period
        assert (await new.get("/v1/customers")).status_code == 200
        async with services.sessions() as session:
            row = await session.get(ApiKey, old_id)
            assert row is not None and row.expires_at is not None
            assert timedelta(minutes=119) < row.expires_at - SYSTEM_CLOCK.now() <= timedelta(hours=2)
            # Two hours later (moved in the database: API keys expire in real time) the old key stops.
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == old_id)
                .values(expires_at=SYSTEM_CLOCK.now() - timedelta(seconds=1))
            )
            await session.commit()
        refused = await old.get("/v1/customers")
        assert refused.status_code == 401
        assert "expired after a roll" in refused.json()["error"]["message"]
        assert (await new.get("/v1/customers")).status_code == 200
    page = await admin.get("/console/keys")
    assert "Expired" in page.text and new_key.group(1) not in page.text  # shown once, never again

    created = await post_form(admin, "/console/keys", "/console/keys", kind="publishable")
    publishable = _NEW_KEY.search(created.text)
    assert publishable is not None and publishable.group(1).startswith("pk_")
    new_id = re.search(r'data-key="(key_[0-9A-Za-z]+)"', (await admin.get("/console/keys")).text)
    assert new_id is not None
    async with services.sessions() as session:
        secret_ids = (
            await session.scalars(
                select(ApiKey.id).where(
                    ApiKey.merchant_id == merchant.id,
                    ApiKey.kind == "secret",
                    ApiKey.revoked_at.is_(None),
                    ApiKey.id != old_id,
                )
            )
        ).all()
    [current_id] = secret_ids
    last = await post_form(admin, "/console/keys", f"/console/keys/{current_id}/revoke")
    assert last.status_code == 409 and "last working secret key" in last.text
    assert (await post_form(admin, "/console/keys", "/console/keys", kind="secret")).status_code == 200
    revoked = await post_form(admin, "/console/keys", f"/console/keys/{current_id}/revoke")
    assert revoked.status_code == 200
    async with _client(app, new_key.group(1)) as new:
        assert (await new.get("/v1/customers")).status_code == 401
    async with services.sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.merchant_id == merchant.id, AuditEntry.object_type == "api_key")
                .order_by(AuditEntry.seq)
            )
        ).all()
    assert actions == ["api_key.rolled", "api_key.created", "api_key.created", "api_key.revoked"]


async def test_a_bad_grace_period_is_refused(app: Any, services: Services, merchant: NewMerchant) -> None:
    admin = await logged_in(
        app, "root2@example.com", await console_user(services, merchant.id, "root2@example.com", "admin")
    )
    key_id = await _key_id(services, merchant.id)
    response = await post_form(
        admin, "/console/keys", f"/console/keys/{key_id}/roll", expires_in_hours="1000"
    )
    assert response.status_code == 400
    assert "0 (the old key stops at once) to 720" in response.text
    async with services.sessions() as session:
        row = await session.get(ApiKey, key_id)
    assert row is not None and row.expires_at is None


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "BILLING_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "billing", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_command_line_creates_users_and_manages_keys(
    app: Any, settings: Settings, services: Services, merchant: NewMerchant
) -> None:
    made = _cli(
        settings,
        "users",
        "create",
        "--merchant",
        merchant.id,
        "--email",
        "Cli@Example.com",
        "--role",
        "admin",
    )
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    assert set(user) == {"id", "email", "role", "password"}
    assert user["email"] == "cli@example.com" and user["role"] == "admin" and len(user["password"]) == 20
    client = await logged_in(app, "cli@example.com", user["password"])
    assert (await client.get("/console/keys")).status_code == 200
    twice = _cli(
        settings,
        "users",
        "create",
        "--merchant",
        merchant.id,
        "--email",
        "cli@example.com",
        "--role",
        "finance",
    )
    assert twice.returncode == 1 and "already has a console account" in twice.stderr
    reset = _cli(settings, "users", "reset-password", "--email", "cli@example.com")
    assert reset.returncode == 0, reset.stderr
    assert (await client.get("/console/keys")).status_code == 303  # its sessions ended
    await logged_in(app, "cli@example.com", json.loads(reset.stdout)["password"])

    listed = json.loads(_cli(settings, "keys", "list", "--merchant", merchant.id).stdout)
    assert sorted(k["kind"] for k in listed) == ["publishable", "secret"]
    assert all("key" not in k and k["redacted"].count("...") == 1 for k in listed)
    secret_id = next(k["id"] for k in listed if k["kind"] == "secret")
    rolled = _cli(
        settings, "keys", "roll", "--merchant", merchant.id, "--key", secret_id, "--expires-in-hours", "0"
    )
    assert rolled.returncode == 0, rolled.stderr
    new = json.loads(rolled.stdout)
    assert (
        new["key"].startswith("sk_")
        and new["rolled_from"] == secret_id
        and new["old_key"]["status"] == "expired"
    )
    async with _client(app, merchant.secret_key) as old, _client(app, new["key"]) as fresh:
        assert (await old.get("/v1/customers")).status_code == 401
        assert (await fresh.get("/v1/customers")).status_code == 200
    revoked = _cli(settings, "keys", "revoke", "--merchant", merchant.id, "--key", new["id"])
    assert revoked.returncode == 1 and "last working secret key" in revoked.stderr
    created = json.loads(
        _cli(settings, "keys", "create", "--merchant", merchant.id, "--kind", "secret").stdout
    )
    assert _cli(settings, "keys", "revoke", "--merchant", merchant.id, "--key", new["id"]).returncode == 0
    async with _client(app, created["key"]) as newest:
        assert (await newest.get("/v1/customers")).status_code == 200
    async with services.sessions() as session:
        actors = set(
            (
                await session.scalars(
                    select(AuditEntry.actor).where(
                        AuditEntry.merchant_id == merchant.id, AuditEntry.action.like("api_key.%")
                    )
                )
            ).all()
        )
    assert actors == {"command line"}
