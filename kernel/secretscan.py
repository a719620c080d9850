"""`vigil verify --secrets`: look through everything a log holds for what looks like a secret.

Uses the rules that redact writes (kernel.redact), over every event body, runs row, interrupt
title, signal and snapshot, so it finds what an older vigil, an import or a bug let through.
Runs on a reader connection; bodies are decoded schema-free so corrupt or unknown rows are
scanned too.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator

import msgspec

from .redact import may_hold_secrets, secrets_in

__all__ = ["Finding", "scan"]

_PAGE = 2000


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    where: str  # "seq 12 ActionSucceeded output.text", "runs row labels.token", "signal 3 body.value"
    kind: str


def _decoded(blob: bytes) -> Any:
    try:
        return msgspec.msgpack.decode(blob)
    except (msgspec.DecodeError, ValueError):
        return bytes(blob)  # scanned as text: a corrupt row can still hold a secret


def _rows(conn: sqlite3.Connection, sql: str, args: tuple) -> Iterator[tuple]:
    cur = conn.execute(sql, args)
    while batch := cur.fetchmany(_PAGE):
        yield from batch


def scan(conn: sqlite3.Connection, run_id: str | None = None) -> tuple[list[Finding], int]:
    """Everything that looks like a secret (in one run, or the whole log), and how many rows
    were looked at."""
    where, args = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
    found: list[Finding] = []
    rows = 0

    def add(rid: str, place: str, value: Any, path: str = "") -> None:
        for p, kind in secrets_in(value, path):
            found.append(Finding(run_id=rid, where=f"{place} {p}".rstrip(), kind=kind))

    for rid, seq, type_, body in _rows(
        conn, f"SELECT run_id, seq, type, body FROM events {where} ORDER BY pos", args
    ):
        rows += 1
        if may_hold_secrets(body):
            add(rid, f"seq {seq} {type_}", _decoded(body))
    for rid, labels, error in _rows(conn, f"SELECT run_id, labels, error FROM runs {where}", args):
        rows += 1
        try:
            add(rid, "runs row", json.loads(labels or "{}"), "labels")
        except ValueError:
            add(rid, "runs row", labels, "labels")
        add(rid, "runs row", error, "error")
    for rid, seq, title in _rows(conn, f"SELECT run_id, seq, title FROM interrupts {where}", args):
        rows += 1
        add(rid, f"interrupts row (seq {seq})", title, "title")
    for sid, rid, body, result in _rows(
        conn, f"SELECT id, run_id, body, result FROM signals {where} ORDER BY id", args
    ):
        rows += 1
        try:
            add(rid, f"signal {sid}", json.loads(body), "body")
        except ValueError:
            add(rid, f"signal {sid}", bytes(body), "body")
        add(rid, f"signal {sid}", result, "result")
    for rid, seq, state in _rows(conn, f"SELECT run_id, seq, state FROM snapshots {where}", args):
        rows += 1
        if may_hold_secrets(state):
            add(rid, f"snapshot at seq {seq}", _decoded(state), "state")
    return found, rows
