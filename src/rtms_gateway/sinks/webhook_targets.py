"""Where outbound webhooks may go: never to this machine or a private network, unless
`RTMS_WEBHOOK_ALLOW_PRIVATE` says so.

Checked when a subscription is added (its URL, its host resolved), and again at every
connection: the transport resolves the host itself, refuses any private address among the
answers and connects to the address it checked, so a DNS answer that changes after the
check (rebinding) cannot steer a delivery inside. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

MAX_URL_CHARS = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """A webhook URL the gateway will not send to; the message says why."""


def is_public(address: Address) -> bool:
    """Routable on the internet: not loopback, private, link-local, shared, reserved,
    unspecified or multicast (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str) -> tuple[str, int]:
    """The URL's host and port; TargetRefused for what is not an http(s) URL."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL must not hold credentials (receivers check the signature)")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[str]:
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the host {host!r} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def refuse_private(host: str, addresses: Iterable[str],
                   accept: Callable[[Address], bool] = is_public) -> None:
    for text in addresses:
        if not accept(ipaddress.ip_address(text.split("%", 1)[0])):
            raise TargetRefused(f"{host!r} is a loopback, private or link-local address ({text}); "
                                "set RTMS_WEBHOOK_ALLOW_PRIVATE=true to allow it")


async def check_target(url: str, *, allow_private: bool) -> None:
    """TargetRefused unless `url` is an http(s) URL whose host resolves, and only to
    public addresses (any address with `allow_private`)."""
    host, port = check_url(url)
    addresses = await resolve(host, port)
    if not allow_private:
        refuse_private(host, addresses)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses `accept` allows, the ones it resolved and checked itself
    (each in turn until one answers)."""

    def __init__(self, accept: Callable[[Address], bool]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._accept = accept

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(resolve(host, port), timeout)
            refuse_private(host, addresses, self._accept)
        except TargetRefused as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout("the host did not resolve in time") from None
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(addresses[-1], port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(accept: Callable[[Address], bool] = is_public) -> httpx.AsyncHTTPTransport:
    """An HTTP transport that connects only to addresses `accept` allows, checked at every
    connection; one connection, no proxy from the environment."""
    made = httpx.AsyncHTTPTransport(trust_env=False, limits=httpx.Limits(max_connections=1))
    # httpx has no public way to pass httpcore a network backend: its pool is replaced by one
    # made alike, plus the guard. TLS still names (and verifies) the URL's host.
    made._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=1,
        network_backend=_GuardedBackend(accept))
    return made


def transport(*, allow_private: bool) -> httpx.AsyncHTTPTransport:
    """An HTTP transport for deliveries: to public addresses only, unless private targets
    are allowed."""
    if allow_private:
        return httpx.AsyncHTTPTransport(trust_env=False, limits=httpx.Limits(max_connections=1))
    return guarded_transport()
