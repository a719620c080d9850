"""Ownership of runs and the signals other processes send their owners (run on the writer thread).

Only a run's owner appends to it. Another process asks the owner to act (resolve an interrupt,
cancel) by inserting a signal; the owner applies it, records the outcome, and the sender reads it.

A signal row is input from outside this process: anything that can write the database file can
write any row. `parse` checks every part of it, and a row that does not fit is refused with the
reason, never allowed to stop the owner. The sender records who it is (`sender`, its
current_actor() as JSON); the owner takes the actor from there, marked `claimed`, and ignores any
actor the body names.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

from .errors import VigilError
from .events import Actor
from .redact import recordable, redact

__all__ = [
    "Signal", "BadSignal", "ResolveBody", "CancelBody", "PauseBody", "UnpauseBody", "parse",
    "claim", "renew", "release", "send", "pending", "finish", "result",
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


class BadSignal(VigilError):
    """A signal row that does not say what to do, or who sent it, in a form the owner can apply."""


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


def _tx(conn: sqlite3.Connection, fn, *args):
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn, *args)
        conn.execute("COMMIT")
        return out
    except BaseException:
        if conn.in_transaction:  # SQLite has already rolled back after some errors (disk full)
            conn.execute("ROLLBACK")
        raise


def claim(conn: sqlite3.Connection, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
    """Take `run_id` if it is free, ours, or still held by `previous` (found dead by the caller)."""

    def go(conn):
        now = time.time_ns()
        cur = conn.execute(
            "UPDATE runs SET owner = ?, lease_until_ns = ? WHERE run_id = ? AND status IN ('running', 'waiting', 'paused')"
            " AND (owner IS NULL OR owner = ? OR owner = ? OR lease_until_ns < ?)",
            (owner, now + lease_ns, run_id, owner, previous, now),
        )
        return cur.rowcount == 1

    return _tx(conn, go)


def renew(conn: sqlite3.Connection, owner: str, lease_ns: int) -> None:
    _tx(conn, lambda c: c.execute(
        "UPDATE runs SET lease_until_ns = ? WHERE owner = ?", (time.time_ns() + lease_ns, owner)
    ))


def release(conn: sqlite3.Connection, run_ids: list[str], owner: str) -> None:
    def go(conn):
        for run_id in run_ids:
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until_ns = NULL WHERE run_id = ? AND owner = ?",
                (run_id, owner),
            )

    _tx(conn, go)


def send(conn: sqlite3.Connection, run_id: str, kind: str, body: dict, sender: Actor | str) -> int:
    """Queue a signal. `sender` is the sending process's own current_actor() (a wake, sent by an
    owner to itself or another owner, names the owner id instead)."""
    who = sender if isinstance(sender, str) else _enc.encode(sender).decode()
    # Redacted here, the one place a signal is written: an answer, an edit or a reason typed
    # into `vigil approve/reject/cancel` never reaches the disk as typed.
    body = recordable(body)
    return _tx(conn, lambda c: c.execute(
        "INSERT INTO signals(run_id, kind, body, created_ns, sender) VALUES (?, ?, ?, ?, ?)",
        (run_id, kind, _enc.encode(body), time.time_ns(), who),
    ).lastrowid)


def pending(conn: sqlite3.Connection, owner: str) -> list[Signal]:
    # As bytes: a text column that is not UTF-8 would otherwise fail the whole fetch.
    rows = conn.execute(
        "SELECT s.id, r.run_id, CAST(s.kind AS BLOB), CAST(s.body AS BLOB), CAST(s.sender AS BLOB),"
        " s.created_ns FROM signals s JOIN runs r ON r.run_id = s.run_id"
        " WHERE s.applied_ns IS NULL AND r.owner = ? ORDER BY s.id",
        (owner,),
    )
    return [
        Signal(
            id=i, run_id=r, kind=(k or b"").decode("utf-8", "replace"), body=bytes(b or b""),
            sender=None if s is None else bytes(s), created_ns=t if isinstance(t, int) else 0,
        )
        for i, r, k, b, s, t in rows
    ]


def finish(conn: sqlite3.Connection, signal_id: int, outcome: str) -> None:
    _tx(conn, lambda c: c.execute(
        "UPDATE signals SET applied_ns = ?, result = ? WHERE id = ?",
        (time.time_ns(), redact(outcome), signal_id),
    ))


def result(conn: sqlite3.Connection, signal_id: int) -> str | None:
    row = conn.execute("SELECT applied_ns, result FROM signals WHERE id = ?", (signal_id,)).fetchone()
    return row[1] if row and row[0] is not None else None
