"""Finished spans as plain records, and the ids that make an export repeatable.

Ids are derived, never random: a run's trace id from its root run's id, a span's id from
(run id, the seq of the event that opened it). Exporting a run twice, or re-sending a batch
after a crash, gives the receiver the same ids.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

__all__ = ["Span", "SpanEvent", "SpanLink", "trace_id", "span_id"]

Attributes = dict[str, Any]  # str, bool, int, float, or a list of str


class SpanEvent(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ts_ns: int
    attributes: Attributes = {}


class SpanLink(msgspec.Struct, frozen=True, kw_only=True):
    trace_id: int
    span_id: int
    attributes: Attributes = {}


class Span(msgspec.Struct, frozen=True, kw_only=True):
    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    kind: Literal["internal", "client"] = "internal"
    start_ns: int
    end_ns: int
    attributes: Attributes = {}
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    error: str | None = None  # set: the span's status is ERROR with this description


def _digest(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:size], "big")
    return value or 1  # an all-zero id is invalid in OTLP; 2**-64 odds, but never send one


def trace_id(root_run_id: str) -> int:
    return _digest(f"vigil-trace:{root_run_id}", 16)


def span_id(run_id: str, seq: int) -> int:
    return _digest(f"vigil-span:{run_id}:{seq}", 8)
