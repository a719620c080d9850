"""Anthropic's Messages API, streamed, with tool use."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any


from ...errorinfo import info
from ...errors import ModelError
from ...limits import Limit
from . import TokenSink
from .http import api_key, post_stream
from .sse import events
from .proxied import client_for
from .wire import Client

if TYPE_CHECKING:
    import httpx

__all__ = ["AnthropicMessages"]


class AnthropicMessages:
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.anthropic.com",
        key_env: str | None = "ANTHROPIC_API_KEY",
        max_tokens: int = 4096,
        timeout: float = 120.0,
        client: Client | httpx.AsyncClient | None = None,  # an httpx client: over httpx (proxied.py)
        max_concurrency: int | None = None,
        limit: Limit | None = None,
    ) -> None:
        self.name = f"anthropic:{model}"
        self.model = model
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.key_env = key_env
        self.max_tokens = max_tokens
        self._client = client_for(self.url, timeout, client)
        # Requests in flight to this endpoint from this process, whichever run or client makes them.
        self.limit = limit or (Limit.shared(f"model {self.url}", max_concurrency) if max_concurrency is not None else None)

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_token: TokenSink
    ) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": _wire([m for m in messages if m["role"] != "system"]),
            "stream": True,
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                for t in tools
            ]
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        key = api_key(self.key_env)
        if key:
            headers["x-api-key"] = key
        blocks: dict[int, dict[str, Any]] = {}
        usage = {"input_tokens": 0, "output_tokens": 0}
        stopped = False
        async with post_stream(self._client, "anthropic", self.url, headers, body) as response:
            async for name, data in events(response.aiter_bytes()):
                doc = json.loads(data)
                kind = doc.get("type", name)
                if kind == "message_start":
                    usage["input_tokens"] = doc["message"].get("usage", {}).get("input_tokens", 0)
                elif kind == "content_block_start":
                    block = dict(doc["content_block"])
                    block["_json"] = ""
                    blocks[doc["index"]] = block
                elif kind == "content_block_delta":
                    block, delta = blocks[doc["index"]], doc["delta"]
                    if delta["type"] == "text_delta":
                        block["text"] = block.get("text", "") + delta["text"]
                        if on_token:
                            on_token(delta["text"])
                    elif delta["type"] == "input_json_delta":
                        block["_json"] += delta["partial_json"]
                elif kind == "message_delta":
                    usage["output_tokens"] = doc.get("usage", {}).get("output_tokens", usage["output_tokens"])
                elif kind == "message_stop":
                    stopped = True
                elif kind == "error":
                    error = doc.get("error", {})
                    kind = error.get("type")
                    message = f"anthropic stream error: {error.get('message', error)}"
                    retryable = kind in ("overloaded_error", "api_error", "rate_limit_error")
                    category = {"overloaded_error": "rate_limit", "rate_limit_error": "rate_limit",
                                "api_error": "transport"}.get(kind, "internal")
                    raise ModelError(message, retryable=retryable, info=info(
                        str(kind or "stream_error"), category, message, retryable=retryable,
                    ))
        if not stopped:
            raise ModelError("anthropic: the stream ended before message_stop", retryable=True)
        text, calls = [], []
        for _, block in sorted(blocks.items()):
            if block["type"] == "text":
                text.append(block.get("text", ""))
            elif block["type"] == "tool_use":
                try:
                    arguments = json.loads(block["_json"]) if block["_json"] else block.get("input", {})
                except ValueError:
                    arguments = {"_unparsed": block["_json"]}
                calls.append({"id": block["id"], "name": block["name"], "arguments": arguments})
        return {"role": "assistant", "content": "".join(text), "tool_calls": calls, "usage": usage}


def _wire(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results become user turns of tool_result blocks; consecutive ones share a turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list) \
                    and out[-1]["content"] and out[-1]["content"][0].get("type") == "tool_result":
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            content: list[dict[str, Any]] = []
            if m.get("content"):
                content.append({"type": "text", "text": m["content"]})
            content += [
                {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                for c in m["tool_calls"]
            ]
            out.append({"role": "assistant", "content": content})
        else:
            out.append({"role": m["role"], "content": m.get("content", "")})
    return out
