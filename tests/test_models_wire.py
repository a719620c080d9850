"""The providers' HTTP/1.1 client (kernel/agents/models/wire.py) against real loopback servers that
answer byte for byte as scripted: framing, keep-alive, timeouts, dropped and stale connections."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from kernel.agents.models import ModelError
from kernel.agents.models.openai import OpenAIChat
from kernel.agents.models.wire import Client, Timeout, TransportError


async def _serve(answer):
    """A server calling `answer(n, request_bytes, writer)` for the n-th request it reads (0-based,
    across connections); returns (url, connections seen, requests seen)."""
    seen = {"connections": 0, "requests": 0}

    async def handle(reader, writer):
        seen["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                body = await reader.readexactly(length)
                n = seen["requests"]
                seen["requests"] += 1
                if await answer(n, head + body, writer) == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nx-trailer: 1\r\n\r\n"


async def _post(client: Client, url: str, body: bytes = b"{}") -> tuple[int, dict, bytes]:
    async with client.stream("POST", url + "/v1/x?q=1", {"content-type": "application/json"}, body) as r:
        return r.status_code, r.headers, await r.aread()


def _posts(answer, times: int, body: bytes = b"{}") -> tuple[list, dict]:
    """`times` posts in a row through one Client to a server answering as `answer` says: the
    (status, headers, body) of each, and the connections and requests the server saw."""

    async def go():
        server, url, seen = await _serve(answer)
        client = Client(5)
        out = [await _post(client, url, body) for _ in range(times)]
        await client.aclose()
        server.close()
        return out, seen

    return asyncio.run(go())


def test_content_length_and_chunked_bodies_over_one_kept_alive_connection():
    async def answer(n, request, writer):
        if n == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        elif n == 1:  # 100 Continue first, then chunked with extensions and a trailer
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(_chunked(b"wor", b"ld \xc3"))
            writer.write(b"")
        else:
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
                         % len(gzip.compress(b"zipped")) + gzip.compress(b"zipped"))
        await writer.drain()

    out, seen = _posts(answer, 3, b'{"a": 1}')
    assert [(s, b) for s, _, b in out] == [(200, b"hello"), (200, b"world \xc3"), (201, b"zipped")]
    assert seen == {"connections": 1, "requests": 3}  # kept alive


def test_request_head_carries_host_path_and_length_and_refuses_header_injection():
    got = []

    async def answer(n, request, writer):
        got.append(request)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def go():
        server, url, _ = await _serve(answer)
        client = Client(5)
        status = (await _post(client, url, b'{"k": "v"}'))[0]
        with pytest.raises(ValueError):
            async with client.stream("POST", url, {"x-key": "a\r\nx-evil: 1"}, b""):
                pass
        server.close()
        return status

    assert asyncio.run(go()) == 204
    head, _, body = got[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/x?q=1 HTTP/1.1"
    assert b"content-length: 10" in lines and b"content-type: application/json" in lines
    assert any(line.startswith(b"host: 127.0.0.1:") for line in lines)
    assert body == b'{"k": "v"}' and len(got) == 1


def test_a_body_read_to_the_close_and_connection_close_are_not_reused():
    async def answer(n, request, writer):
        if n == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        else:
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await writer.drain()
        return "close"

    out, seen = _posts(answer, 2)
    assert [b for _, _, b in out] == [b"ok", b"until the end"]
    assert seen["connections"] == 2


def test_a_stale_kept_alive_connection_is_retried_once_on_a_fresh_one():
    async def answer(n, request, writer):
        if n == 1:
            return "close"  # the server drops the idle connection as the second request arrives
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n%d" % n)
        await writer.drain()

    out, seen = _posts(answer, 2)
    assert [b for _, _, b in out] == [b"0", b"2"]
    assert seen == {"connections": 2, "requests": 3}


def test_a_server_that_stops_answering_times_out_and_a_drop_mid_body_fails():
    async def answer(n, request, writer):
        if n == 0:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
            await writer.drain()
            await asyncio.sleep(5)  # never the rest
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nhalf\r\n")
            await writer.drain()
            return "close"

    async def go():
        server, url, _ = await _serve(answer)
        client = Client(0.3)
        with pytest.raises(Timeout):
            await _post(client, url)
        with pytest.raises(TransportError, match="mid-answer"):
            await _post(client, url)
        server.close()

    asyncio.run(go())


def test_malformed_answers_are_transport_errors():
    async def answer(n, request, writer):
        writer.write([b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"][n])
        await writer.drain()
        return "close"

    async def go():
        server, url, _ = await _serve(answer)
        client = Client(5)
        for match in ("not HTTP", "malformed"):
            with pytest.raises(TransportError, match=match):
                await _post(client, url)
        server.close()

    asyncio.run(go())


def test_openai_client_maps_a_silent_server_to_a_retryable_timeout():
    async def answer(n, request, writer):
        await asyncio.sleep(5)

    async def go():
        server, url, _ = await _serve(answer)
        model = OpenAIChat("m", base_url=url + "/v1", key_env=None, timeout=0.3)
        try:
            await model.complete([{"role": "user", "content": "hi"}], [], None)
        finally:
            server.close()

    with pytest.raises(ModelError, match="connection failed") as info:
        asyncio.run(go())
    assert info.value.retryable and info.value.error_info.category == "timeout"


def test_openai_client_streams_over_a_chunked_answer_split_at_every_byte():
    events = [{"choices": [{"index": 0, "delta": {"content": "hé"}}]},
              {"choices": [{"index": 0, "delta": {"content": "llo"}}]},
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + _chunked(sse)

    async def answer(n, request, writer):
        for i in range(len(wire)):  # one byte at a time: every split point of head, sizes and data
            writer.write(wire[i:i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    async def go():
        server, url, _ = await _serve(answer)
        tokens: list[str] = []
        model = OpenAIChat("m", base_url=url + "/v1", key_env=None, timeout=5)
        message = await model.complete([{"role": "user", "content": "hi"}], [], tokens.append)
        server.close()
        return message, tokens

    message, tokens = asyncio.run(go())
    assert message["content"] == "héllo" and tokens == ["hé", "llo"]
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 2}


def test_openai_calls_one_after_another_reuse_one_connection():
    """After [DONE] the client reads the body to its end: the connection goes back to the pool
    (it was closed half-read before, a new connection for every call of a run)."""
    sse = (b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}}]}\n\n'
           b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n')

    async def answer(n, request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(sse), sse))
        await writer.drain()
        await asyncio.sleep(0.05)  # [DONE] and the body's end come a moment later, as over a network
        writer.write(b"%x\r\ndata: [DONE]\n\n\r\n" % len(b"data: [DONE]\n\n"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")

    async def go():
        server, url, seen = await _serve(answer)
        model = OpenAIChat("m", base_url=url + "/v1", key_env=None, timeout=5)
        answers = [await model.complete([{"role": "user", "content": "hi"}], [], None) for _ in range(3)]
        server.close()
        return answers, seen

    answers, seen = asyncio.run(go())
    assert [a["content"] for a in answers] == ["ok"] * 3
    assert seen == {"connections": 1, "requests": 3}


def test_https_verifies_the_server_and_speaks_through_tls(tmp_path):
    """A loopback TLS server with a certificate made here: trusted, the call goes through TLS;
    with the default context (the system's CAs) the same server is refused."""
    import ssl

    from tls_helpers import self_signed

    cert_pem, server_ctx = self_signed(tmp_path)

    async def answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
        await writer.drain()
        writer.close()

    async def go():
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}"
        trusting = ssl.create_default_context(cafile=str(cert_pem))
        got = await _post(Client(5, ssl_context=trusting), url)
        with pytest.raises(TransportError, match="cannot connect"):
            await _post(Client(5), url)  # the system's CAs do not know this certificate
        server.close()
        return got

    status, _, body = asyncio.run(go())
    assert (status, body) == (200, b"secure")


def test_a_connection_dropped_after_done_still_gives_the_whole_answer():
    sse = (b'data: {"choices": [{"index": 0, "delta": {"content": "whole"}}]}\n\n'
           b'data: [DONE]\n\n')

    async def answer(n, request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(sse), sse))  # then the connection goes, no final chunk
        await writer.drain()
        return "close"

    async def go():
        server, url, _ = await _serve(answer)
        model = OpenAIChat("m", base_url=url + "/v1", key_env=None, timeout=5)
        message = await model.complete([{"role": "user", "content": "hi"}], [], None)
        server.close()
        return message

    assert asyncio.run(go())["content"] == "whole"
