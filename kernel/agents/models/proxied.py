"""Model calls through an HTTP proxy, or through an httpx client of your own.

wire.py's client connects straight to the provider. Where the environment names a proxy for the
provider's URL (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, lower- or upper-case; NO_PROXY honoured, as
curl and httpx read them), the calls go over httpx instead, which speaks to proxies (CONNECT for
https, proxy credentials in the URL). An `httpx.AsyncClient` passed as a model's `client=` (your
own TLS, proxy or transport settings) is used the same way. Either way the provider code sees
wire.py's interface: `stream(method, url, headers, content)` and a response with `status_code`,
`aiter_bytes()` and `aread()`; httpx's errors become wire.py's.
"""

from __future__ import annotations

import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from .wire import Client, Timeout, TransportError, default_ssl_context

__all__ = ["HttpxClient", "client_for", "proxy_for"]


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, or None (none named, or NO_PROXY covers it)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy


def client_for(url: str, timeout: float, client: Any = None) -> Any:
    """The client a provider at `url` calls through: the one given (an httpx.AsyncClient is
    wrapped), httpx when a proxy applies, else wire.py's."""
    if client is not None:
        return HttpxClient(client) if _is_httpx(client) else client
    if proxy_for(url):
        return HttpxClient(timeout=timeout)
    return Client(timeout)


def _is_httpx(client: Any) -> bool:
    return type(client).__module__.startswith("httpx")


class _Response:
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def aread(self) -> bytes:
        return await self._response.aread()


class HttpxClient:
    def __init__(self, client: Any = None, *, timeout: float = 120.0) -> None:
        import httpx

        self._httpx = httpx
        # trust_env (httpx's default): the proxy and NO_PROXY come from the environment. The
        # system's trust store, as for direct calls, not httpx's own bundle (certifi): a proxy
        # that inspects TLS re-signs with a CA installed there, and only there.
        self._client = client or httpx.AsyncClient(timeout=timeout, verify=default_ssl_context())

    @asynccontextmanager
    async def stream(self, method: str, url: str, headers: dict[str, str], content: bytes) -> AsyncIterator[_Response]:
        httpx = self._httpx
        try:
            async with self._client.stream(method, url, headers=headers, content=content) as response:
                yield _Response(response)
        except httpx.TimeoutException as exc:
            raise Timeout(f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:  # refused, reset, dropped mid-stream, a proxy that said no
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
