"""/schema works offline (issue #12 item 19): the viewer comes from the package, the page refers to nothing but
its own origin, and an installed wheel carries the vendored bundle and its license."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from billing.api.schema_viewer import REDOC
from billing.config import Settings
from tests.billing.live import serve, suite_env
from tests.browser import ARTIFACTS
from tests.conftest import Servers

ROOT = Path(__file__).resolve().parents[2]
VIEWER = ROOT / "billing" / "api" / "viewer"


def _references(page: str) -> list[str]:
    """Every URL the page's markup refers to: src, href, spec-url attributes, CSS url(...) and @import."""
    found = re.findall(r"""(?:src|href|spec-url|action)\s*=\s*["']([^"']*)["']""", page, flags=re.I)
    found += re.findall(r"""url\(\s*["']?([^"')]+)""", page, flags=re.I)
    found += re.findall(r"""@import\s+["']([^"']+)""", page, flags=re.I)
    return found


async def test_the_schema_page_refers_to_nothing_but_its_own_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = _references(page.text)
    assert references, page.text
    for reference in references:
        if reference.startswith("data:"):
            continue
        parts = urlsplit(reference)
        assert not parts.scheme and not parts.netloc, f"{reference} leaves this server"
    # No absolute URL anywhere in the page, not even in a script or a comment.
    assert not re.search(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", page.text), page.text
    scripts = re.findall(r"<script[^>]*\ssrc=[\"']([^\"']+)", page.text)
    assert scripts == ["/schema/viewer/redoc.standalone.js"]
    spec = re.search(r"spec-url=\"([^\"]+)\"", page.text)
    assert spec is not None and spec.group(1) == "/schema/openapi.json"
    # The page also tells the browser to stay on this origin.
    assert "default-src 'self'" in page.text


async def test_the_viewer_bundle_is_served_from_the_package(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/schema/viewer/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert f'Version: "{REDOC["version"]}"' in bundle.text[:20_000] or "Redoc" in bundle.text[:20_000]
    assert bundle.content == (VIEWER / "redoc.standalone.js").read_bytes()
    license_text = await client.get("/schema/viewer/LICENSE")
    assert license_text.status_code == 200
    assert "MIT License" in license_text.text
    assert (await client.get("/schema/viewer/../../config.py")).status_code == 404
    assert (await client.get("/schema/viewer/anything.js")).status_code == 404


def test_the_vendored_bundle_is_the_published_one() -> None:
    """The file is the one in the npm tarball: its version banner, and the notices of what it bundles."""
    bundle = (VIEWER / "redoc.standalone.js").read_bytes()
    assert (
        f'Version: "{REDOC["version"]}"'.encode() in (VIEWER / "redoc.standalone.js.LICENSE.txt").read_bytes()
    )
    assert bundle.startswith(b"/*! For license information please see redoc.standalone.js.LICENSE.txt */")
    assert "MIT" in (VIEWER / "LICENSE").read_text()
    algorithm, _, expected = REDOC["integrity"].partition("-")
    assert algorithm == "sha512" and len(base64.b64decode(expected)) == hashlib.sha512().digest_size


def test_an_installed_wheel_carries_the_viewer(tmp_path: Path) -> None:
    # Built from a copy, so the build leaves nothing in the working tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("billing", "plans", "dunning", "webhooks", "migrations"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("billing_engine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("redoc.standalone.js", "LICENSE", "redoc.standalone.js.LICENSE.txt"):
        assert f"billing/api/viewer/{name}" in names


@pytest.mark.browser
async def test_the_reference_renders_in_a_browser_that_can_reach_nothing_else(
    browser: Any, settings: Settings, servers: Servers
) -> None:
    env = suite_env(settings, servers.redis_url)
    with serve(env) as api:
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            page = await context.new_page()
            elsewhere: list[str] = []
            errors: list[str] = []

            async def offline(route: Any) -> None:
                if route.request.url.startswith(api + "/"):
                    await route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    await route.abort()

            await page.route("**/*", offline)
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(api + "/schema")
            await page.get_by_role("heading", name=re.compile("Billing engine API")).first.wait_for(
                timeout=60_000
            )
            await page.get_by_role("heading", name="Create a customer").first.wait_for(timeout=30_000)
            # The reference is thousands of pixels long: the first screen is what a person sees on arrival.
            await page.screenshot(path=str(ARTIFACTS / "schema-viewer-offline.png"))
            assert elsewhere == []
            # The one thing the bundle tries to load from elsewhere is Redocly's logo in the sidebar footer: the
            # page's policy stops it in the browser (no request is made) and the image hides itself.
            blocked_logo = [e for e in errors if "cdn.redoc.ly/redoc/logo-mini.svg" in e and "blocked" in e]
            assert [e for e in errors if e not in blocked_logo] == []
        finally:
            await context.close()
