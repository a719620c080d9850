"""The artifacts table in PostgreSQL. The bytes go over as binary (`%b`, and binary results),
never hex-escaped at twice their size; only `get` reads `data` (the TOASTed bytea)."""

from __future__ import annotations

import psycopg

from ...artifacts import ArtifactInfo
from .schema import NOW_NS

__all__ = ["put", "get", "info", "page", "match"]

Conn = psycopg.AsyncConnection
_INFO = "SELECT artifact_id, kind, size, created_ns FROM vigil.artifacts"


async def put(conn: Conn, artifact_id: str, kind: str, data: bytes, created_ns: int | None) -> bool:
    cur = await conn.execute(
        f"INSERT INTO vigil.artifacts VALUES (%s, %s, %s, coalesce(%s, {NOW_NS}), %b)"
        " ON CONFLICT (artifact_id) DO NOTHING",
        (artifact_id, kind, len(data), created_ns, data),
    )
    return cur.rowcount == 1


async def get(conn: Conn, artifact_id: str) -> bytes | None:
    cur = await conn.execute(
        "SELECT data FROM vigil.artifacts WHERE artifact_id = %s", (artifact_id,), binary=True
    )
    row = await cur.fetchone()
    return None if row is None else bytes(row[0])


async def info(conn: Conn, artifact_id: str) -> ArtifactInfo | None:
    cur = await conn.execute(f"{_INFO} WHERE artifact_id = %s", (artifact_id,))
    row = await cur.fetchone()
    return None if row is None else ArtifactInfo(artifact_id=row[0], kind=row[1], size=row[2], created_ns=row[3])


async def page(conn: Conn, after: str, limit: int) -> list[ArtifactInfo]:
    cur = await conn.execute(f"{_INFO} WHERE artifact_id > %s ORDER BY artifact_id LIMIT %s", (after, limit))
    return [ArtifactInfo(artifact_id=a, kind=k, size=s, created_ns=c) for a, k, s, c in await cur.fetchall()]


async def match(conn: Conn, prefix: str) -> list[str]:
    cur = await conn.execute(
        "SELECT artifact_id FROM vigil.artifacts WHERE artifact_id >= %s AND artifact_id < %s"
        " ORDER BY artifact_id LIMIT 2",
        (prefix, prefix + "g"),
    )
    return [r[0] for r in await cur.fetchall()]
