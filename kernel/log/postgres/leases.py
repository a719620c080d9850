"""Ownership of runs and the signals table, in PostgreSQL. Lease times come from the database's
clock (NOW_NS), so hosts whose clocks disagree still agree on whose lease has run out. Rows of
`runs` are locked in run_id order by every writer here, as by the group commit: no deadlocks."""

from __future__ import annotations

from typing import Any

import psycopg

from ...redact import redact
from ...signals import Signal, sealed_body, sender_text
from .schema import NOW_NS
from .writer import text

Conn = psycopg.AsyncConnection
_LIVE = "('running', 'waiting', 'paused')"


async def claim(conn: Conn, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
    cur = await conn.execute(
        f"UPDATE vigil.runs SET owner = %s, lease_until_ns = {NOW_NS} + %s"
        f" WHERE run_id = %s AND status IN {_LIVE}"
        f" AND (owner IS NULL OR owner = %s OR owner = %s OR lease_until_ns < {NOW_NS})",
        (owner, lease_ns, run_id, owner, previous),
    )
    return cur.rowcount == 1


async def renew(conn: Conn, owner: str, lease_ns: int) -> None:
    await conn.execute(
        f"UPDATE vigil.runs SET lease_until_ns = {NOW_NS} + %s WHERE run_id IN"
        " (SELECT run_id FROM vigil.runs WHERE owner = %s ORDER BY run_id FOR UPDATE)",
        (lease_ns, owner),
    )


async def release(conn: Conn, run_ids: list[str], owner: str) -> None:
    await conn.execute(
        "UPDATE vigil.runs SET owner = NULL, lease_until_ns = NULL WHERE run_id IN"
        " (SELECT run_id FROM vigil.runs WHERE run_id = ANY(%s) AND owner = %s ORDER BY run_id FOR UPDATE)",
        (list(run_ids), owner),
    )


async def send(conn: Conn, run_id: str, kind: str, body: dict, sender: Any) -> int:
    cur = await conn.execute(
        f"INSERT INTO vigil.signals(run_id, kind, body, created_ns, sender) VALUES (%s, %s, %s, {NOW_NS}, %s)"
        " RETURNING id",
        (run_id, text(kind), sealed_body(body), text(sender_text(sender))),
    )
    return (await cur.fetchone())[0]


async def pending(conn: Conn, owner: str) -> list[Signal]:
    cur = await conn.execute(
        "SELECT s.id, s.run_id, s.kind, s.body, s.sender, s.created_ns FROM vigil.signals s"
        " JOIN vigil.runs r ON r.run_id = s.run_id WHERE s.applied_ns IS NULL AND r.owner = %s ORDER BY s.id",
        (owner,),
    )
    return [
        Signal(id=i, run_id=r, kind=k, body=bytes(b), sender=None if s is None else s.encode(), created_ns=t)
        for i, r, k, b, s, t in await cur.fetchall()
    ]


async def finish(conn: Conn, signal_id: int, outcome: str) -> None:
    await conn.execute(
        f"UPDATE vigil.signals SET applied_ns = {NOW_NS}, result = %s WHERE id = %s",
        (text(redact(outcome)), signal_id),
    )


async def result(conn: Conn, signal_id: int) -> str | None:
    cur = await conn.execute("SELECT applied_ns, result FROM vigil.signals WHERE id = %s", (signal_id,))
    row = await cur.fetchone()
    return row[1] if row and row[0] is not None else None
