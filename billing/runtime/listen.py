"""The address a server listens on, and the URL people reach it by when `BILLING_PUBLIC_URL` is not set.

Hosted invoice, PDF, portal and email links are built from `BILLING_PUBLIC_URL` (billing.invoices.hosted). When it
is not set, `billing serve` and `billing up` set it, for themselves and their children, to the address they really
bound: `--port 9000` links to port 9000, and `--port 0` to the port the system picked.
"""

from __future__ import annotations

import ipaddress
import os
import socket

PUBLIC_URL_VARIABLE = "BILLING_PUBLIC_URL"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), ready to hand to the ASGI server."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def listening_url(host: str, port: int) -> str:
    """The http URL of a server bound to host:port, as a person on this machine types it. A wildcard address
    (0.0.0.0, ::) is not an address anyone can reach: loopback stands for it, which works on this machine and
    through a container's published port; other machines need BILLING_PUBLIC_URL."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if _is_ipv6(host) else f"http://{host}:{port}"


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")  # noqa: S104


def default_public_url(url: str) -> str:
    """Make `url` this process's public URL unless BILLING_PUBLIC_URL says otherwise; returns the one in force.
    Child processes inherit it through the environment."""
    if not os.environ.get(PUBLIC_URL_VARIABLE):
        os.environ[PUBLIC_URL_VARIABLE] = url
    return os.environ[PUBLIC_URL_VARIABLE]


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False
