"""What the HTTP providers share: keys from the environment, one error mapping."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import msgspec

from ...errorinfo import info
from ...errors import ModelError
from .wire import Client, Response, Timeout, TransportError

__all__ = ["api_key", "post_stream"]

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504, 529}


def api_key(env: str | None) -> str | None:
    """Keys live in the environment only; they are never passed into anything recorded."""
    return os.environ.get(env) if env else None


_encode = msgspec.json.Encoder().encode


@asynccontextmanager
async def post_stream(
    client: Client, provider: str, url: str, headers: dict, body: dict
) -> AsyncIterator[Response]:
    try:
        headers = {"content-type": "application/json", **headers}
        async with client.stream("POST", url, headers, _encode(body)) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode(errors="replace")
                status = response.status_code
                message = f"{provider} answered {status}: {_message(text)}"
                retryable = status in _RETRYABLE
                raise ModelError(message, retryable=retryable, info=info(
                    f"http_{status}", _category(status), message, retryable=retryable,
                ))
            yield response
    except TransportError as exc:  # refused, reset, dropped mid-stream, timed out
        message = f"{provider}: connection failed ({type(exc).__name__}: {exc})"
        timeout = isinstance(exc, Timeout)
        raise ModelError(message, retryable=True, info=info(
            "timeout" if timeout else "connection_failed", "timeout" if timeout else "transport",
            message, retryable=True,
        )) from None


def _category(status: int) -> str:
    if status == 429 or status == 529:  # 529: Anthropic's "overloaded", its rate limit for everyone
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "transport"  # the provider broke, not the request: the same call may succeed later
    if status in (401, 403):
        return "policy"  # the key is refused or not allowed this model
    return "internal"  # a request the provider cannot take: a bug on this side


def _message(text: str) -> str:
    import json

    try:
        doc: Any = json.loads(text)
        error = doc.get("error", doc)
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return text[:200]
