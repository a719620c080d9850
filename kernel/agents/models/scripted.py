"""A deterministic model for demos and tests: a script decides each reply from the conversation,
streamed word by word with optional realistic delays."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from ...limits import Limit
from . import TokenSink

__all__ = ["ScriptedModel", "reply", "call"]

Script = Callable[[list[dict[str, Any]]], dict[str, Any]]


def reply(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "tool_calls": []}


def call(name: str, arguments: dict[str, Any], *, text: str = "", call_id: str | None = None) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": [{"id": call_id or f"call_{name}", "name": name, "arguments": arguments}],
    }


class ScriptedModel:
    def __init__(
        self, name: str, script: Script, *, token_delay: float = 0.0,
        max_concurrency: int | None = None, limit: Limit | None = None,
    ) -> None:
        self.name = f"scripted:{name}"
        # As a provider's client would: calls of this model in flight at once, every run together.
        self.limit = limit or (Limit(max_concurrency, name=self.name) if max_concurrency is not None else None)
        self._script = script
        self._delay = token_delay

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_token: TokenSink
    ) -> dict[str, Any]:
        message = self._script(messages)
        words = message.get("content", "").split(" ")
        for i, word in enumerate(words):
            if self._delay:
                await asyncio.sleep(self._delay)
            if on_token and word:
                on_token(word if i == 0 else " " + word)
        usage = {
            "input_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
            "output_tokens": len(words),
        }
        return {**message, "usage": usage}
