"""What goes over the live channel, one JSON object a line (unix socket) or a NOTIFY payload."""

from __future__ import annotations

import msgspec

__all__ = ["Delta", "Queue", "Hello", "Want", "Message", "encode", "decode", "split"]


class Delta(msgspec.Struct, frozen=True, kw_only=True, tag="delta", tag_field="type"):
    """Text a model streamed for one action of one run, coalesced. `t0` is the CLOCK_MONOTONIC
    time (ns) the first token in it was published: comparable across processes on one host only
    (the bench uses it); `reset` says tokens were dropped before this one (the viewer starts the
    text again instead of gluing two pieces together)."""

    run: str
    action: str
    text: str
    owner: str = ""
    n: int = 0  # the publisher's count: PostgreSQL folds identical payloads in one transaction
    t0: int = 0
    reset: bool = False


class Queue(msgspec.Struct, frozen=True, kw_only=True, tag="queue", tag_field="type"):
    """What of one run waits for a concurrency slot in its owner's process (kernel.limits), as
    the line a pane shows (`queued: search ×2 (2 running, limit 2)`; "" once nothing waits). Sent
    on a change and again every second, so a viewer that missed one, or whose owner died, is
    right (or blank) within seconds."""

    run: str
    text: str
    owner: str = ""
    n: int = 0


class Hello(msgspec.Struct, frozen=True, kw_only=True, tag="hello", tag_field="type"):
    """The first line an owner's socket sends: who answers (a socket file of a dead owner whose
    pid was reused would name someone else)."""

    owner: str


class Want(msgspec.Struct, frozen=True, kw_only=True, tag="want", tag_field="type"):
    """A subscriber's whole wish list; each one replaces the last."""

    runs: list[str]


Message = Delta | Queue | Hello | Want

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Message)


def encode(message: Message) -> bytes:
    return _ENCODER.encode(message)


def decode(data: bytes | str) -> Message:
    """Raises msgspec.DecodeError on anything that is not one of ours."""
    return _DECODER.decode(data)


def split(delta: Delta, limit: int) -> list[bytes]:
    """`delta` encoded in pieces of at most `limit` bytes each (a NOTIFY payload must stay under
    8000). Cut by characters, so a piece never ends inside a UTF-8 sequence."""
    whole = encode(delta)
    if len(whole) <= limit:
        return [whole]
    overhead = len(encode(msgspec.structs.replace(delta, text="")))
    room = max(16, (limit - overhead) // 6)  # worst case: six bytes of JSON escape a character
    pieces, text = [], delta.text
    for k, i in enumerate(range(0, len(text), room)):
        # each piece its own n: two equal payloads in one transaction would reach listeners once
        part = msgspec.structs.replace(delta, text=text[i:i + room], n=delta.n + k, reset=delta.reset and i == 0)
        pieces.append(encode(part))
    return pieces
