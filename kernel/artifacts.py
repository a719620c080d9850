"""Artifacts: large bytes (a tool's 100 MB output, a file a node made) kept content-addressed
beside the events, in the same database, and referenced from events by id.

An artifact's id is the sha256 of its bytes (64 hex digits): storing the same bytes twice stores
them once, and `vigil verify` can re-hash every artifact and name one whose bytes changed. The
log records which step stored which artifact with an `ArtifactStored` event; a tool output over
the threshold is recorded as an `ArtifactRef` (as a dict) in its ActionSucceeded instead of the
body, and a replay reads the bytes back, so the node sees the same output either way.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import msgspec

from .errors import VigilError

__all__ = [
    "ArtifactRef",
    "ArtifactInfo",
    "ArtifactMissing",
    "BadArtifactId",
    "DEFAULT_THRESHOLD",
    "artifact_id",
    "threshold",
    "ref_of",
    "encode_output",
    "decode_output",
    "check_id",
    "OUTPUT_KINDS",
]

# Outputs at most this big stay inside their event: most tool results are small, and one row is
# cheaper to read than a row plus an artifact.
DEFAULT_THRESHOLD = 64 * 1024
_ID = re.compile(r"[0-9a-f]{1,64}")
# The kinds an offloaded effect output is stored as: how to turn the bytes back into the output.
OUTPUT_KINDS = ("text/plain; charset=utf-8", "application/msgpack")


class BadArtifactId(VigilError):
    """Text that cannot be an artifact id or a prefix of one."""


class ArtifactMissing(VigilError):
    """An artifact an event references is not in the log (or its bytes no longer hash to its id)."""


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True):
    """What node code holds after `ctx.artifact(...)`: the id to find the bytes by."""

    artifact_id: str
    kind: str
    size: int


class ArtifactInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact's row without its bytes."""

    artifact_id: str
    kind: str
    size: int
    created_ns: int


def artifact_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_id(text: str) -> str:
    """An artifact id or a prefix of one, lower-cased; refused if it is not hex."""
    text = text.strip().lower().removeprefix("sha256:")
    if not _ID.fullmatch(text):
        raise BadArtifactId(f"{text!r} is not an artifact id (up to 64 hex digits of its sha256)")
    return text


def threshold(host: Any = None) -> int:
    """Effect outputs bigger than this (bytes) are stored as artifacts: the host's
    `artifact_threshold` if it sets one, else env VIGIL_ARTIFACT_THRESHOLD, else 64 KiB."""
    value = getattr(host, "artifact_threshold", None)
    if value is None:
        env = os.environ.get("VIGIL_ARTIFACT_THRESHOLD")
        try:
            value = int(env) if env else DEFAULT_THRESHOLD
        except ValueError:
            raise VigilError(f"VIGIL_ARTIFACT_THRESHOLD={env!r} is not a number of bytes") from None
        if value < 0:
            raise VigilError(f"VIGIL_ARTIFACT_THRESHOLD={env!r} is negative (a number of bytes, 0 or more)")
    return value


def ref_of(value: Any) -> ArtifactRef | None:
    """The reference an event field holds, if it is one (a dict with exactly a ref's fields)."""
    if type(value) is dict and value.keys() == {"artifact_id", "kind", "size"}:
        aid, kind, size = value["artifact_id"], value["kind"], value["size"]
        if type(aid) is str and len(aid) == 64 and _ID.fullmatch(aid) and type(kind) is str and type(size) is int:
            return ArtifactRef(artifact_id=aid, kind=kind, size=size)
    return None


_msgpack = msgspec.msgpack.Encoder()
_unpack = msgspec.msgpack.Decoder()


def encode_output(output: Any, limit: int) -> tuple[bytes, str] | None:
    """(bytes, kind) if a recorded effect output is bigger than `limit`, else None (it stays in
    its event). Text is stored as UTF-8, so the pager shows it as it is; anything else as the
    msgpack the event would have held."""
    if type(output) is str:
        if len(output) * 4 <= limit:  # a UTF-8 character is at most 4 bytes: small for sure
            return None
        data = output.encode("utf-8")
        return (data, OUTPUT_KINDS[0]) if len(data) > limit else None
    if output is None or type(output) in (int, float, bool):
        return None
    data = _msgpack.encode(output)
    return (data, OUTPUT_KINDS[1]) if len(data) > limit else None


def decode_output(data: bytes, kind: str) -> Any:
    if kind == OUTPUT_KINDS[0]:
        return data.decode("utf-8")
    if kind == OUTPUT_KINDS[1]:
        return _unpack.decode(data)
    raise ArtifactMissing(f"an effect output stored as {kind!r}, which this vigil cannot read back")
