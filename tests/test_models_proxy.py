"""Model calls through an HTTP proxy named by the environment (kernel/agents/models/proxied.py):
a real forward proxy on loopback sees them, NO_PROXY keeps them direct, and an httpx client of
your own is used as given."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from fake_providers import Provider, openai_stream
from kernel.agents.models import ModelError
from kernel.agents.models.openai import OpenAIChat
from kernel.agents.models.proxied import HttpxClient, proxy_for
from kernel.agents.models.wire import Client

MESSAGES = [{"role": "user", "content": "hi"}]


class ForwardProxy:
    """An HTTP/1.1 forward proxy on its own thread: absolute-form requests (one per connection),
    and CONNECT tunnels (https: the proxy passes the TLS bytes on and sees nothing of them)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve():
            self.server = await asyncio.start_server(self._one, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert ready.wait(10)

    async def _one(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = first.split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            return await self._tunnel(target, reader, writer)
        length = next((int(v) for k, _, v in (l.partition(":") for l in lines) if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        rest = target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        up_r, up_w = await asyncio.open_connection(host, int(port or 80))
        kept = [l for l in lines if l and not l.lower().startswith(("proxy-", "connection"))]
        up_w.write((f"{method} /{path} {version}\r\n" + "\r\n".join(kept + ["connection: close"]) + "\r\n\r\n").encode("latin-1") + body)
        await up_w.drain()
        while data := await up_r.read(65536):
            writer.write(data)
            await writer.drain()
        up_w.close()
        writer.close()

    async def _tunnel(self, target, reader, writer):
        host, _, port = target.rpartition(":")
        up_r, up_w = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src, dst):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def provider_and_proxy(monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    provider = Provider(lambda path, body: (200, openai_stream("through the proxy"), False))
    proxy = ForwardProxy()
    yield provider, proxy
    provider.close()
    proxy.close()


def _complete(model):
    tokens: list[str] = []
    return asyncio.run(model.complete(MESSAGES, [], tokens.append)), tokens


def test_a_proxy_named_by_the_environment_carries_the_calls(provider_and_proxy, monkeypatch):
    provider, proxy = provider_and_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None)
    assert isinstance(model._client, HttpxClient) and proxy_for(model.url) == proxy.url
    message, tokens = _complete(model)
    assert message["content"].strip() == "through the proxy" and "".join(tokens).strip() == "through the proxy"
    assert proxy.seen == [f"POST {provider.url}/v1/chat/completions"]
    assert len(provider.requests) == 1


def test_no_proxy_keeps_the_calls_direct(provider_and_proxy, monkeypatch):
    provider, proxy = provider_and_proxy
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None)
    assert isinstance(model._client, Client)
    message, _ = _complete(model)
    assert message["content"].strip() == "through the proxy" and proxy.seen == []


def test_an_httpx_client_of_your_own_is_used_and_its_errors_are_model_errors(provider_and_proxy):
    provider, proxy = provider_and_proxy
    mine = httpx.AsyncClient(proxy=proxy.url, timeout=10)
    model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None, client=mine)
    message, _ = _complete(model)
    assert message["content"].strip() == "through the proxy" and len(proxy.seen) == 1
    refused = OpenAIChat("m", base_url="http://127.0.0.1:9/v1", key_env=None, client=httpx.AsyncClient(timeout=5))
    with pytest.raises(ModelError) as caught:
        _complete(refused)
    assert caught.value.retryable and caught.value.error_info.category == "transport"


def test_https_through_a_proxy_tunnels_and_trusts_what_direct_calls_trust(tmp_path, monkeypatch):
    """Behind a proxy (a company's, often one that inspects TLS and re-signs with a CA of its own,
    installed in the system's trust store), https calls go through a CONNECT tunnel and verify the
    provider against the same store as direct calls. httpx's default is a bundle of its own
    (certifi), which knows no such CA: there, calls through the proxy were refused while curl and
    vigil's direct calls went through. The process's default context stands in for the system's
    store here, holding the test's CA; a provider it does not know is still refused."""
    import ssl

    import kernel.agents.models.wire as wire
    from tls_helpers import self_signed

    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    cert_pem, server_ctx = self_signed(tmp_path)
    provider = Provider(lambda path, body: (200, openai_stream("over tls"), False), tls=server_ctx)
    proxy = ForwardProxy()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setattr(wire, "_default_ssl", ssl.create_default_context(cafile=str(cert_pem)))
        model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None)
        assert isinstance(model._client, HttpxClient)
        message, tokens = _complete(model)
        assert message["content"].strip() == "over tls" and "".join(tokens).strip() == "over tls"
        assert proxy.seen == [f"CONNECT {provider.url.removeprefix('https://')}"]
        assert len(provider.requests) == 1

        monkeypatch.setattr(wire, "_default_ssl", ssl.create_default_context())  # no test CA
        with pytest.raises(ModelError) as refused:
            _complete(OpenAIChat("m", base_url=provider.url + "/v1", key_env=None))
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) and len(provider.requests) == 1
    finally:
        provider.close()
        proxy.close()
