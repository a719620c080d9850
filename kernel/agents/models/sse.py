"""Server-sent events over a streamed HTTP body."""

from __future__ import annotations

from typing import AsyncIterable, AsyncIterator

__all__ = ["events"]


async def events(body: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) per event; the name is "message" when the server gives none.

    Lines are split from the raw bytes here, not decoded and re-split chunk by chunk through a
    text decoder (with thousands of runs streaming, the model client was the largest share of a
    worker's CPU, bench/NOTES.md). A line ends at \\n, \\r\\n or \\r;
    UTF-8 is decoded a whole line at a time, so a character split across chunks is safe."""
    parser = _Parser()
    rest = b""
    async for chunk in body:
        rest += chunk
        if b"\r" in rest:
            if rest.endswith(b"\r"):
                continue  # a \r\n may be split across chunks: wait for the next byte
            rest = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = rest.split(b"\n")
        for event in parser.feed(lines):
            yield event
    for event in parser.feed([*rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"), b""]):
        yield event


class _Parser:
    def __init__(self) -> None:
        self.name, self.data = "message", []

    def feed(self, lines: list[bytes]) -> list[tuple[str, str]]:
        out = []
        for raw in lines:
            if not raw:  # a blank line ends the event
                if self.data:
                    out.append((self.name, "\n".join(self.data)))
                self.name, self.data = "message", []
                continue
            line = raw.decode("utf-8", errors="replace")
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                self.name = value
            elif field == "data":
                self.data.append(value)
        return out
