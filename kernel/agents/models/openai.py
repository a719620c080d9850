"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server),
streamed, with tool calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import msgspec

from ...errors import ModelError
from ...limits import Limit
from . import TokenSink
from .http import api_key, post_stream
from .sse import events
from .proxied import client_for
from .wire import Client

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIChat"]


class OpenAIChat:
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        client: Client | httpx.AsyncClient | None = None,  # an httpx client: over httpx (proxied.py)
        max_concurrency: int | None = None,
        limit: Limit | None = None,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.key_env = key_env
        self._client = client_for(self.url, timeout, client)
        # Requests in flight to this endpoint from this process, whichever run or client makes them.
        self.limit = limit or (Limit.shared(f"model {self.url}", max_concurrency) if max_concurrency is not None else None)

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_token: TokenSink
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
        headers = {"content-type": "application/json"}
        key = api_key(self.key_env)
        if key:
            headers["authorization"] = f"Bearer {key}"
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, int] = {}
        done = False
        async with post_stream(self._client, "openai", self.url, headers, body) as response:
            stream = events(response.aiter_bytes())
            try:
                async for _, data in stream:
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    self._chunk(data, text, calls, usage, on_token)
                if done:
                    # The body ends right after [DONE]: read it to its end, so the connection is
                    # kept for the next call (a half-read one is closed) and no generator is left
                    # for the loop to finalize (7 per call were 4% of a busy worker's loop).
                    # Best effort: the answer is whole, so a drop or a stall now fails nothing.
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(_DRAIN_S):
                            async for _ in stream:
                                pass
            finally:
                await stream.aclose()
        if not done:
            raise ModelError("openai: the stream ended before [DONE]", retryable=True)
        tool_calls = []
        for _, slot in sorted(calls.items()):
            try:
                arguments = json.loads(slot["arguments"] or "{}")
            except ValueError:
                arguments = {"_unparsed": slot["arguments"]}  # the tool's validation tells the model
            tool_calls.append({"id": slot["id"], "name": slot["name"], "arguments": arguments})
        return {"role": "assistant", "content": "".join(text), "tool_calls": tool_calls, "usage": usage}

    @staticmethod
    def _chunk(data: str, text: list[str], calls: dict[int, dict[str, Any]], usage: dict[str, int],
               on_token: TokenSink) -> None:
        """Take one streamed chunk into the answer being assembled."""
        chunk = _decode(data)  # msgspec: several times json.loads' speed on these small chunks
        if chunk.get("error"):
            raise ModelError(f"openai stream error: {chunk['error']}", retryable=True)
        if chunk.get("usage"):
            u = chunk["usage"]
            usage.update(input_tokens=u.get("prompt_tokens", 0), output_tokens=u.get("completion_tokens", 0))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
                if on_token:
                    on_token(delta["content"])
            for tc in delta.get("tool_calls") or ():
                slot = calls.setdefault(tc.get("index", 0), {"id": "", "name": "", "arguments": ""})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""


_decode = msgspec.json.Decoder().decode
_DRAIN_S = 1.0  # what a server may take to end the body after [DONE] before the call returns anyway


def _wire(m: dict[str, Any]) -> dict[str, Any]:
    if m["role"] == "assistant" and m.get("tool_calls"):
        return {
            "role": "assistant",
            "content": m.get("content") or None,
            "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for c in m["tool_calls"]
            ],
        }
    if m["role"] == "tool":
        return {"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]}
    return {"role": m["role"], "content": m.get("content", "")}
