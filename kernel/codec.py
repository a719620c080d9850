"""Encoding events to log rows and decoding them back through a stable envelope.

A row is decoded by its `type` column first: a type this version does not know (written by a
newer vigil) becomes `Unknown`, a body whose checksum or decoding fails becomes `Corrupt`. Both
carry the raw bytes, so nothing that reads the log crashes on them and nothing is lost on export.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import msgspec

from .errors import EncodeFailed
from .events import EVENT_TYPES, Event
from .redact import may_hold_secrets, redact
from .secrets import Secret

__all__ = [
    "Unknown",
    "Corrupt",
    "Record",
    "encode",
    "seal",
    "decode",
    "type_of",
    "canonical_hash",
    "short",
    "to_builtins",
]


def _enc_hook(obj: Any) -> Any:
    # A Secret is only ever encoded as its marker: in the log, in a hash, in JSON.
    if isinstance(obj, Secret):
        return obj.marker
    raise TypeError(f"Encoding objects of type {type(obj).__name__} is unsupported")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(Event)
# Sorted keys make the hash independent of dict insertion order, so any process can prove a replay.
_canonical = msgspec.json.Encoder(order="sorted", enc_hook=_enc_hook)
_json = msgspec.json.Encoder(enc_hook=_enc_hook)


class Unknown(msgspec.Struct, frozen=True, kw_only=True):
    """An event type this version of vigil does not know."""

    type: str
    body: bytes


class Corrupt(msgspec.Struct, frozen=True, kw_only=True):
    """A row whose body fails its checksum or does not decode."""

    type: str
    error: str
    body: bytes


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the log, decoded: where it sits and what it says."""

    pos: int
    run_id: str
    seq: int
    ts_ns: int
    type: str
    event: Any  # Event | Unknown | Corrupt


def type_of(event: Event) -> str:
    return type(event).__name__


def seal(event: Event) -> tuple[Event, bytes, int]:
    """The event as it may be written (secrets redacted), its msgpack body and crc32.

    The one door to the log: every event body, and the runs and interrupts rows projected from
    the event, come from here, so nothing written can skip the redaction."""
    try:
        body = _encoder.encode(event)
        if may_hold_secrets(body):  # most events cannot: skip the walk over their values
            clean = redact(event)
            if clean is not event:
                event, body = clean, _encoder.encode(clean)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:  # ValueError: lone surrogates
        raise EncodeFailed(f"{type(event).__name__} cannot be encoded: {exc}") from None
    return event, body, zlib.crc32(body)


def encode(event: Event) -> tuple[bytes, int]:
    """The msgpack body of an event (secrets redacted) and its crc32."""
    _, body, crc = seal(event)
    return body, crc


def decode(type_: str, body: bytes, crc: int | None) -> Any:
    """An Event, or Unknown / Corrupt; never raises."""
    if crc is not None and zlib.crc32(body) != crc:
        return Corrupt(type=type_, error="checksum mismatch", body=bytes(body))
    if type_ not in EVENT_TYPES:
        return Unknown(type=type_, body=bytes(body))
    try:
        event = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Corrupt(type=type_, error=str(exc), body=bytes(body))
    if type(event).__name__ != type_:
        return Corrupt(
            type=type_, error=f"body says {type(event).__name__}", body=bytes(body)
        )
    return event


def canonical_hash(value: Any) -> str:
    """sha256 over a canonical JSON encoding (sorted keys)."""
    return hashlib.sha256(_canonical.encode(value)).hexdigest()


def short(value: Any, width: int = 60) -> str:
    """Compact JSON of a value, cut to `width` with an ellipsis that shows it was cut."""
    text = _json.encode(msgspec.to_builtins(value)).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def to_builtins(value: Any) -> Any:
    """JSON-ready builtins (bytes become base64 strings, Secrets their markers)."""
    return msgspec.to_builtins(value, enc_hook=_enc_hook)
