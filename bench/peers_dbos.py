"""DBOS doing the 3-node chain on SQLite or PostgreSQL, in its own process (DBOS is a process-wide
singleton).

    python -m bench.peers_dbos DB|POSTGRESQL_URL RUNS      -> prints node steps/s
"""

from __future__ import annotations

import sys
import time

from dbos import DBOS, DBOSConfig


@DBOS.step()
def a(x: int) -> int:
    return x + 1


@DBOS.step()
def b(x: int) -> int:
    return x + 1


@DBOS.step()
def c(x: int) -> int:
    return x + 1


@DBOS.workflow()
def chain(x: int) -> int:
    return c(b(a(x)))


def main(db: str, runs: int) -> None:
    """`db`: a SQLite path, or a postgresql:// URL naming an empty database of its own (DBOS 3.4
    takes it as `system_database_url`, its only database, and drives it with psycopg)."""
    if db.startswith("postgresql://"):
        url = db
    else:
        import sqlite3

        # WAL persists in the file: DBOS gets the same journal as vigil (synchronous stays FULL).
        sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").fetchone()
        url = f"sqlite:///{db}"
    config: DBOSConfig = {"name": "vigil-bench", "system_database_url": url}
    DBOS(config=config)
    DBOS.launch()
    chain(0)  # warm: tables made, code paths loaded
    start = time.perf_counter()
    for i in range(runs):
        chain(i)
    elapsed = time.perf_counter() - start
    print(f"{runs * 3 / elapsed:.1f}", flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
