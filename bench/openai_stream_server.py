"""A loopback OpenAI-compatible chat-completions server for the many-runs benchmark: it streams
each reply over SSE with a model's latency (first token after 300 ms, then 30 tokens/s) and calls
a tool in the wire format kernel/agents/models/openai.py reads. It runs in a process of its own
(one process, one asyncio loop: at most one core) so its CPU is never charged to the process
being measured.

    python -m bench.openai_stream_server [--turns 5] [--tokens 6]   # prints "port N", then serves

The reply depends only on the conversation: with fewer than `turns - 1` assistant messages so far
the model says `tokens` words and calls `lookup`; then it answers without a tool. Control
(plain GET): /hold makes first-turn requests wait until /release (so a benchmark can read its RSS
while every run waits on the model), /stats returns this process's CPU seconds and requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

FIRST_TOKEN_S = 0.300
TOKEN_S = 1 / 30


def _chunk(doc: dict | str) -> bytes:
    text = doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))
    payload = f"data: {text}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Server:
    def __init__(self, turns: int, tokens: int) -> None:
        self.turns = turns
        self.tokens = tokens
        self.gate = asyncio.Event()
        self.gate.set()
        self.requests = 0
        self.waiting = 0

    def _plan(self, body: dict) -> tuple[list[bytes], list[bytes]]:
        """(content token chunks, the closing chunks: tool call or nothing, usage, [DONE])."""
        messages = body.get("messages") or []
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        tokens = [_chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        for i in range(self.tokens):
            word = f"word{i} " if i < self.tokens - 1 else f"turn{turn}."
            tokens.append(_chunk({"choices": [{"index": 0, "delta": {"content": word}}]}))
        tail = []
        if turn < self.turns - 1:
            args = json.dumps({"order": f"A-{turn:04d}"})
            tail.append(_chunk({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": f"call_{turn}", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}}]}))
            tail.append(_chunk({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": args}}]}}]}))
        tail.append(_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tail else "stop"}]}))
        tail.append(_chunk({"choices": [], "usage": {"prompt_tokens": 20 * len(messages), "completion_tokens": self.tokens}}))
        tail.append(_chunk("[DONE]") + b"0\r\n\r\n")
        return tokens, tail

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                length = 0
                for h in headers:
                    name, _, value = h.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if method == "GET":
                    writer.write(self._control(path))
                    await writer.drain()
                    continue
                await self._stream(json.loads(body), writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _control(self, path: str) -> bytes:
        if path == "/hold":
            self.gate.clear()
        elif path == "/release":
            self.gate.set()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        doc = json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime, "requests": self.requests, "waiting": self.waiting,
                          "pid": os.getpid()}).encode()
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(doc), doc)

    async def _stream(self, body: dict, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        arrived = time.monotonic()
        tokens, tail = self._plan(body)
        first_turn = not any(m.get("role") == "assistant" for m in body.get("messages") or [])
        if first_turn and not self.gate.is_set():
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
            arrived = time.monotonic()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        # Each token goes out at its own time (sleeping to a deadline, so the rate holds under load).
        due = arrived + FIRST_TOKEN_S
        for i, chunk in enumerate(tokens):
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(chunk)
            if i:
                due += TOKEN_S
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(b"".join(tail))  # the tool call arrives as one more token's worth
        await writer.drain()


async def serve(port: int, turns: int, tokens: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per live run
    server = Server(turns, tokens)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=4096)
    print(f"port {srv.sockets[0].getsockname()[1]}", flush=True)
    # Gone with the benchmark that started it: its end closes our stdin.
    loop = asyncio.get_running_loop()
    eof = loop.run_in_executor(None, sys.stdin.read)
    async with srv:
        serving = asyncio.ensure_future(srv.serve_forever())
        await asyncio.wait([serving, eof], return_when=asyncio.FIRST_COMPLETED)
    os._exit(0)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.openai_stream_server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--turns", type=int, default=5)
    p.add_argument("--tokens", type=int, default=6)
    a = p.parse_args()
    asyncio.run(serve(a.port, a.turns, a.tokens))
