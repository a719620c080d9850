"""Server-sent events over an httpx streaming response."""

from __future__ import annotations

from typing import AsyncIterator

import httpx

__all__ = ["events"]


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) per event; the name is "message" when the server gives none."""
    name, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        yield name, "\n".join(data)
