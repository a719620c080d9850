"""DBOS doing the 3-node chain (bench.peers_dbos's workflow) on PostgreSQL, in its own process.

    python -m bench.peers_dbos_pg POSTGRESQL_URL RUNS      -> prints node steps/s

The URL names an existing, empty database of its own; DBOS 3.4 takes it as `system_database_url`
(its only database: the application database keys were removed) and drives it with psycopg.
"""

from __future__ import annotations

import sys
import time

from dbos import DBOS, DBOSConfig

from .peers_dbos import chain


def main(url: str, runs: int) -> None:
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
