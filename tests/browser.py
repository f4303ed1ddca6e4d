"""Real-browser fixtures: Debian's chromium driven by the `playwright` package (SPEC §10 pages are tested as a
person uses them).

`playwright install` cannot download browsers on these machines, so the tests launch the system's chromium by
path and install it with apt when it is missing (CI machines start without it). Every test that takes a
screenshot saves it under `BILLING_TEST_ARTIFACTS` (default `.artifacts/screenshots`), to be looked at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ARTIFACTS = Path(os.environ.get("BILLING_TEST_ARTIFACTS", ".artifacts/screenshots"))


# A CJK font, so that Simplified Chinese pages render as text in screenshots rather than as empty boxes.
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(
            f"Browser tests need Debian's {' '.join(packages)}: `apt-get install {' '.join(packages)}`."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, capture_output=True)


def chromium_path() -> str:
    """The system chromium (and a CJK font), installed with apt first when missing, as on fresh CI machines."""
    missing = [] if CJK_FONT.exists() else ["fonts-wqy-zenhei"]
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser")):
        missing.append("chromium")
    if missing:
        _apt_install(*missing)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("apt-get installed chromium but it is not on PATH")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact and return its path."""
    path = ARTIFACTS / f"{name}.png"
    # Playwright creates the folders of the path it writes to.
    await page.screenshot(path=str(path), full_page=True)
    return path
