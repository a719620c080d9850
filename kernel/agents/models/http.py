"""What the HTTP providers share: keys from the environment, one error mapping."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx

from ...errors import ModelError

__all__ = ["api_key", "post_stream"]

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504, 529}


def api_key(env: str | None) -> str | None:
    """Keys live in the environment only; they are never passed into anything recorded."""
    return os.environ.get(env) if env else None


@asynccontextmanager
async def post_stream(
    client: httpx.AsyncClient, provider: str, url: str, headers: dict, body: dict
) -> AsyncIterator[httpx.Response]:
    try:
        async with client.stream("POST", url, headers=headers, json=body) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode(errors="replace")
                raise ModelError(
                    f"{provider} answered {response.status_code}: {_message(text)}",
                    retryable=response.status_code in _RETRYABLE,
                )
            yield response
    except httpx.TransportError as exc:  # refused, reset, dropped mid-stream, timed out
        raise ModelError(f"{provider}: connection failed ({type(exc).__name__}: {exc})", retryable=True) from None


def _message(text: str) -> str:
    import json

    try:
        doc: Any = json.loads(text)
        error = doc.get("error", doc)
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return text[:200]
