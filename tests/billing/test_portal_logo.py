"""The merchant's logo (billing.settings.logo): fetched by the engine over https from settings.branding.logo_url
(a real TLS server here, with a certificate the test makes), kept, and served from the engine's own address to
the portal and the hosted invoice page, drawn into the PDF, and refused when it is not an image."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import secrets
import ssl
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from billing.invoices.documents import load_invoice_document, render_pdf
from billing.invoices.models import Invoice
from billing.services import Services
from billing.settings.logo import sniff
from tests.billing.portal_helpers import path_of, portal_link, sign_in, visitor
from tests.billing.test_portal import world_at


def png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG image, red, made by hand (signature, IHDR, IDAT, IEND)."""
    rows = b"".join(b"\x00" + b"\xcc\x11\x11" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class LogoHost:
    """An https server on a free port: /logo.png is a PNG, /page.png is HTML; it counts what it serves."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                body, kind = (
                    (png(), "image/png")
                    if self.path.startswith("/logo")
                    else (b"<html>hi</html>", "image/png")
                )
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def logo_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LogoHost]:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted by the engine's https client, for this test only
    host = LogoHost(cert, key)
    try:
        yield host
    finally:
        host.close()


async def test_the_logo_is_fetched_once_and_served_from_our_own_address(
    api: httpx.AsyncClient, app: Any, services: Services, logo_host: LogoHost
) -> None:
    world = await world_at(api, services)
    path = f"/logo-{secrets.token_hex(4)}.png"
    patched = await api.patch("/v1/settings", json={"branding": {"logo_url": logo_host.url(path)}})
    assert patched.status_code == 200, patched.text
    customer = await world.customer(email="ada@example.com")
    sub = await world.subscribe(customer, await world.plan(1000))
    invoice = await world.get(f"/v1/invoices/{sub['latest_invoice']}")
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = await browser.get("/portal/")
        assert '<img src="/portal/logo" alt="Merchant A logo">' in page.text
        assert "img-src 'self' data:;" in page.headers["content-security-policy"]
        for _ in range(3):
            logo = await browser.get("/portal/logo")
            assert logo.status_code == 200 and logo.content == png()
            assert logo.headers["content-type"] == "image/png"
        token = path_of(invoice["hosted_invoice_url"]).rsplit("/", 1)[1]
        hosted = await browser.get(f"/i/{token}")
        assert (
            f'src="/i/{token}/logo"' in hosted.text
            and "img-src 'self'" in hosted.headers["content-security-policy"]
        )
        assert (await browser.get(f"/i/{token}/logo")).content == png()
        assert (await browser.get(path_of(invoice["invoice_pdf"]))).status_code == 200
    # Fetched once for all of that: the process keeps it.
    assert logo_host.requests == [path]
    async with services.sessions() as session:
        row = await session.get(Invoice, invoice["id"])
        assert row is not None
        doc = await load_invoice_document(session, row)
    assert b"/Subtype /Image" in render_pdf(doc, compress=False, logo=png())
    assert b"/Subtype /Image" not in render_pdf(doc, compress=False)


async def test_a_logo_that_is_not_an_image_is_not_served(
    api: httpx.AsyncClient, app: Any, services: Services, logo_host: LogoHost
) -> None:
    world = await world_at(api, services)
    await api.patch(
        "/v1/settings", json={"branding": {"logo_url": logo_host.url(f"/page-{secrets.token_hex(4)}.png")}}
    )
    customer = await world.customer(email="ada@example.com")
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        assert (await browser.get("/portal/logo")).status_code == 404
        assert "Merchant A" in (await browser.get("/portal/")).text


def test_only_the_image_types_we_serve_are_recognised() -> None:
    assert sniff(png()) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0" + b"0" * 10) == "image/jpeg"
    assert sniff(b"GIF89a" + b"0" * 10) == "image/gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b'<svg xmlns="http://www.w3.org/2000/svg"></svg>') is None
    assert sniff(io.BytesIO(b"<html>").read()) is None
