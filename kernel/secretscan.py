"""`vigil verify --secrets`: look through everything a log holds for what looks like a secret.

Uses the rules that redact writes (kernel.redact), over every event body, runs row, interrupt
title, signal and snapshot, so it finds what an older vigil, an import or a bug let through.
Each backend reads its tables page by page and feeds the rows to a Scanner; bodies are decoded
schema-free so corrupt or unknown rows are scanned too.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from .redact import may_hold_secrets, secrets_in

__all__ = ["Finding", "Scanner"]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    where: str  # "seq 12 ActionSucceeded output.text", "runs row labels.token", "signal 3 body.value"
    kind: str


def _decoded(blob: bytes) -> Any:
    try:
        return msgspec.msgpack.decode(blob)
    except (msgspec.DecodeError, ValueError):
        return bytes(blob)  # scanned as text: a corrupt row can still hold a secret


class Scanner:
    """Collects findings row by row; `rows` counts what was looked at."""

    def __init__(self) -> None:
        self.found: list[Finding] = []
        self.rows = 0

    def _add(self, rid: str, place: str, value: Any, path: str = "") -> None:
        for p, kind in secrets_in(value, path):
            self.found.append(Finding(run_id=rid, where=f"{place} {p}".rstrip(), kind=kind))

    def event(self, rid: str, seq: int, type_: str, body: bytes) -> None:
        self.rows += 1
        body = bytes(body)
        if may_hold_secrets(body):
            self._add(rid, f"seq {seq} {type_}", _decoded(body))

    def run(self, rid: str, labels: str | None, error: str | None) -> None:
        self.rows += 1
        try:
            self._add(rid, "runs row", json.loads(labels or "{}"), "labels")
        except ValueError:
            self._add(rid, "runs row", labels, "labels")
        self._add(rid, "runs row", error, "error")

    def interrupt(self, rid: str, seq: int, title: str) -> None:
        self.rows += 1
        self._add(rid, f"interrupts row (seq {seq})", title, "title")

    def signal(self, sid: int, rid: str, body: bytes, result: str | None) -> None:
        self.rows += 1
        try:
            self._add(rid, f"signal {sid}", json.loads(body), "body")
        except ValueError:
            self._add(rid, f"signal {sid}", bytes(body), "body")
        self._add(rid, f"signal {sid}", result, "result")

    def snapshot(self, rid: str, seq: int, state: bytes) -> None:
        self.rows += 1
        state = bytes(state)
        if may_hold_secrets(state):
            self._add(rid, f"snapshot at seq {seq}", _decoded(state), "state")
