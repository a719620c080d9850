"""Signals: how another process asks a run's owner to act, and how the owner checks what it got.

Only a run's owner appends to it. Another process asks the owner to act (resolve an interrupt,
cancel) by inserting a signal; the owner applies it, records the outcome, and the sender reads it.

A signal row is input from outside this process: anything that can write the database file can
write any row. `parse` checks every part of it, and a row that does not fit is refused with the
reason, never allowed to stop the owner. The sender records who it is (`sender`, its
current_actor() as JSON); the owner takes the actor from there, marked `claimed`, and ignores any
actor the body names.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import BadSignal
from .events import Actor
from .redact import recordable

__all__ = [
    "Signal", "ResolveBody", "CancelBody", "PauseBody", "UnpauseBody", "parse",
    "sealed_body", "sender_text",
]

_enc = msgspec.json.Encoder()


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A row as stored: nothing in it is trusted until `parse` has checked it."""

    id: int
    run_id: str
    kind: str
    body: bytes
    sender: bytes | None
    created_ns: int


class ResolveBody(msgspec.Struct, frozen=True, kw_only=True):
    interrupt_id: str
    decision: str
    payload_hash: str
    value: Any = None
    always: bool = False


class CancelBody(msgspec.Struct, frozen=True, kw_only=True):
    reason: str = ""


class PauseBody(msgspec.Struct, frozen=True, kw_only=True):
    reason: str = ""


class UnpauseBody(msgspec.Struct, frozen=True, kw_only=True):
    pass


_BODIES: dict[str, type] = {
    "resolve": ResolveBody, "cancel": CancelBody, "pause": PauseBody, "unpause": UnpauseBody,
}
_body_decoders = {kind: msgspec.json.Decoder(t) for kind, t in _BODIES.items()}
_actor_decoder = msgspec.json.Decoder(Actor)
_probe = msgspec.msgpack.Encoder()


def parse(signal: Signal) -> tuple[Any, Actor | None]:
    """The checked body (ResolveBody, CancelBody, PauseBody, UnpauseBody, or None for a wake)
    and the sender's actor as it recorded itself, marked claimed. Raises BadSignal saying what
    is wrong."""
    if signal.kind == "wake":
        return None, None
    decoder = _body_decoders.get(signal.kind)
    if decoder is None:
        raise BadSignal(f"unknown signal kind {_short(signal.kind)}")
    try:
        body = decoder.decode(signal.body)
        # Whatever will be recorded must encode: no lone surrogates, no integer past 64 bits.
        _probe.encode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, msgspec.EncodeError) as exc:
        raise BadSignal(f"the {signal.kind} body does not fit: {exc}") from None
    except (RecursionError, OverflowError, TypeError, UnicodeError) as exc:
        raise BadSignal(f"the {signal.kind} body cannot be recorded: {exc}") from None
    if signal.sender is None:
        raise BadSignal("the signal does not record who sent it")
    try:
        actor = _actor_decoder.decode(signal.sender)
        _probe.encode(actor)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, OverflowError, UnicodeError) as exc:
        raise BadSignal(f"the sender it records is not an actor ({exc})") from None
    return body, msgspec.structs.replace(actor, claimed=True)


def _short(value: Any, width: int = 40) -> str:
    text = ascii(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def sealed_body(body: dict) -> bytes:
    """The body as stored. Redacted here, the one place every backend's signal passes: an answer,
    an edit or a reason typed into `vigil approve/reject/cancel` never reaches the disk as typed."""
    return _enc.encode(recordable(body))


def sender_text(sender: Actor | str) -> str:
    """`sender` is the sending process's own current_actor() (a wake, sent by an owner to itself
    or another owner, names the owner id instead)."""
    return sender if isinstance(sender, str) else _enc.encode(sender).decode()
