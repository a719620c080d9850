"""`vigil copy`: a whole log moved between SQLite and PostgreSQL, byte for byte, verified."""

import asyncio
import json

from cli_helpers import vigil
from kernel.demos import samples
from console.workflows import default_registry
from kernel.engine.runtime import Runtime
from kernel.store import Store


async def _fill(db) -> list[str]:
    """The demo runs: some complete, some wait on a human (interrupts pending), one forked."""
    async with await Store.open(db) as store:
        async with Runtime(store, default_registry()) as rt:
            ids = [await rt.start(g, v, labels={"copy": "yes"}) for g, v in samples().items()]
            await rt.settle()
            ids.append(await rt.fork(ids[0], 3))
            await rt.settle()
            return ids


def _events(db, run_id) -> list[dict]:
    rows = [json.loads(x) for x in vigil("events", run_id, "--json", db=db).stdout.splitlines()]
    for r in rows:  # a log's own global order: copied run by run, the interleaving differs
        r.pop("pos")
    return rows


def _runs(db) -> list[dict]:
    rows = [json.loads(x) for x in vigil("runs", "--json", "--limit", "0", db=db).stdout.splitlines()]
    for r in rows:  # nobody drives a copy until a worker adopts it
        for key in ("owner", "lease_until_ns", "owner_state"):
            r.pop(key)
    return sorted(rows, key=lambda r: r["run_id"])


def test_copy_sqlite_to_postgres_and_back_is_identical(tmp_path, pg_dsn):
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    ids = asyncio.run(_fill(src))

    out = vigil("copy", "--from", f"sqlite:{src}", "--to", pg_dsn)
    assert out.returncode == 0, out.stderr
    assert b"verified identical" in out.stdout and f"copied {len(ids)} runs".encode() in out.stdout
    assert _runs(pg_dsn) == _runs(src)
    assert any(r["status"] == "waiting" for r in _runs(pg_dsn))
    for run_id in ids:
        assert _events(pg_dsn, run_id) == _events(src, run_id)
    assert vigil("verify", db=pg_dsn).returncode == 0
    pending = vigil("runs", "--json", "--status", "waiting", db=pg_dsn).stdout
    assert pending  # the interrupts projection came over: the copy can be answered

    out = vigil("copy", "--from", pg_dsn, "--to", str(back))
    assert out.returncode == 0, out.stderr
    assert _runs(back) == _runs(src)
    for run_id in ids:
        assert _events(back, run_id) == _events(src, run_id)


def test_copy_into_a_log_that_has_the_runs_writes_nothing_and_says_why(tmp_path, pg_dsn):
    src = tmp_path / "src.db"
    asyncio.run(_fill(src))
    assert vigil("copy", "--from", str(src), "--to", pg_dsn).returncode == 0
    before = _runs(pg_dsn)
    again = vigil("copy", "--from", str(src), "--to", pg_dsn)
    assert again.returncode != 0
    err = again.stderr.decode()
    assert "already in" in err and "nothing was copied" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _runs(pg_dsn) == before


def test_copy_to_an_unreachable_server_is_one_line(tmp_path):
    src = tmp_path / "src.db"
    asyncio.run(_fill(src))
    out = vigil("copy", "--from", str(src), "--to", "postgresql://nobody@127.0.0.1:1/none")
    assert out.returncode != 0
    err = out.stderr.decode()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "cannot connect" in err
