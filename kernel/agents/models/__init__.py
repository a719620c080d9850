"""Model providers. A model turns a conversation into one assistant message, streaming its
tokens to `on_token` as they arrive; only the final message is recorded.

Messages (provider-neutral):
    {"role": "system" | "user", "content": str}
    {"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments": {...}}]}
    {"role": "tool", "tool_call_id": str, "name": str, "content": str}
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ...errors import ModelError

__all__ = ["Model", "ModelError", "TokenSink"]

TokenSink = Callable[[str], None] | None


class Model(Protocol):
    name: str

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], on_token: TokenSink
    ) -> dict[str, Any]: ...
