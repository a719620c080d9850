"""A real HTTP server on loopback that speaks the OpenAI and Anthropic streaming wire formats."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class Provider:
    """`plan(path, body)` returns (status, list of raw SSE chunks, drop) for each request."""

    def __init__(self, plan: Callable[[str, dict], tuple[int, list[bytes], bool]], *, tls: Any = None) -> None:
        """`tls`: an ssl.SSLContext to serve https with (the URL then names localhost)."""
        self.plan = plan
        self.requests: list[tuple[str, dict, dict]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                provider.requests.append((self.path, dict(self.headers), body))
                status, chunks, drop = provider.plan(self.path, body)
                self.send_response(status)
                if status >= 400:
                    payload = chunks[0]
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if drop:
                    self.connection.shutdown(2)  # mid-stream, no terminating chunk
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sse(data: dict | str, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def openai_stream(text: str, calls: list[tuple[str, str, dict]] = ()) -> list[bytes]:
    chunks = [sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})]
    for word in text.split(" "):
        chunks.append(sse({"choices": [{"index": 0, "delta": {"content": word + " "}}]}))
    for i, (call_id, name, args) in enumerate(calls):
        raw = json.dumps(args)
        chunks.append(sse({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]}))
        for k in range(0, len(raw), 7):  # arguments arrive in pieces
            chunks.append(sse({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "function": {"arguments": raw[k:k + 7]}}]}}]}))
    chunks.append(sse({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}))
    chunks.append(sse("[DONE]"))
    return chunks


def anthropic_stream(text: str, calls: list[tuple[str, str, dict]] = ()) -> list[bytes]:
    chunks = [sse({"type": "message_start", "message": {"usage": {"input_tokens": 13}}}, "message_start")]
    chunks.append(sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"))
    for word in text.split(" "):
        chunks.append(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word + " "}}, "content_block_delta"))
    chunks.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    chunks.append(sse({"type": "ping"}, "ping"))
    for i, (call_id, name, args) in enumerate(calls, 1):
        raw = json.dumps(args)
        chunks.append(sse({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}}, "content_block_start"))
        for k in range(0, len(raw), 5):
            chunks.append(sse({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": raw[k:k + 5]}}, "content_block_delta"))
        chunks.append(sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    chunks.append(sse({"type": "message_delta", "delta": {"stop_reason": "tool_use" if calls else "end_turn"}, "usage": {"output_tokens": 9}}, "message_delta"))
    chunks.append(sse({"type": "message_stop"}, "message_stop"))
    return chunks
