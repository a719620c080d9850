"""Many hosts, one PostgreSQL log: two workers on two hosts (distinct VIGIL_HOST ids, so neither
can see the other's pids and only the lease tells them apart), a console on a third."""

import asyncio
import os
import signal
import subprocess
import sys
import time


from cli_helpers import ROOT
from kernel.events import RunStarted
from kernel.owner import owner_alive
from kernel.store import Store
from test_worker import HERE, _events, _info, _until


def _env(dsn: str, ledger, host: str) -> dict:
    return {**os.environ, "VIGIL_DB": dsn, "VIGIL_LEDGER": str(ledger), "VIGIL_HOST": host,
            "VIGIL_WORKFLOWS": "worker_workflows", "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _worker(env: dict, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "worker", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("worker "), proc.stderr.read()
    return proc


def test_a_run_outlives_its_host_and_a_third_host_approves_its_payment(pg_dsn, tmp_path):
    ledger = tmp_path / "ledger.txt"
    a, b, c = (_env(pg_dsn, ledger, h) for h in ("host-a", "host-b", "host-c"))
    lease = 2.0
    first = _worker(a, "--lease", str(lease))
    second = None
    try:
        run_id = _cli(c, "run", "payout", "--queue").stdout.split()[1]
        _until(lambda: (_info(c, run_id)["owner"] or "").startswith("host-a:"))
        _until(lambda: any(e["type"] == "ActionSucceeded" for e in _events(c, run_id)))
        second = _worker(b, "--lease", str(lease))
        first.send_signal(signal.SIGKILL)  # host A dies mid-step: no release, its lease must run out
        first.wait()
        killed = time.time_ns()
        time.sleep(0.5)
        assert _info(c, run_id)["owner"].startswith("host-a:"), "adopted while host A's lease was live"

        def by_b():
            return next((e for e in _events(c, run_id)
                         if e["type"] == "RunAdopted" and e["owner"].startswith("host-b:")), None)

        adopted = _until(by_b, timeout=20)
        assert adopted["previous"].startswith("host-a:")
        # not before the lease ran out: renewed every lease/3, so it ran out 2/3 to 1 lease after the kill
        assert adopted["ts_ns"] - killed > 0.5 * lease * 1e9

        raised = _until(lambda: next((e for e in _events(c, run_id) if e["type"] == "InterruptRaised"), None), timeout=20)
        assert raised["kind"] == "approval" and _info(c, run_id)["status"] == "waiting"
        out = _cli(c, "approve", run_id, "--interrupt", raised["interrupt_id"])
        assert out.returncode == 0, out.stderr
        assert "applied by its owner (host-b:" in out.stdout
        _until(lambda: _info(c, run_id)["status"] == "completed", timeout=20)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)

    events = _events(c, run_id)
    resolved = next(e for e in events if e["type"] == "InterruptResolved")
    assert resolved["actor"]["host"] == "host-c" and resolved["decision"] == "approve"
    lines = ledger.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["step 1", "pay 40"], lines  # each effect once


def test_leases_are_judged_by_the_database_clock_not_the_hosts(pg_dsn, monkeypatch):
    """A host whose clock runs an hour ahead must not steal a live lease; one an hour behind must
    not keep a dead one alive."""
    from kernel.registry import Registry
    from kernel.engine.runtime import Runtime

    async def go():
        async with await Store.open(pg_dsn) as store:
            live, dead = "run-live", "run-dead"
            await store.submit(live, [RunStarted(graph="g")], expected_seq=0, claim=("far-host:1:1", 60 * 10**9))
            await store.submit(dead, [RunStarted(graph="g")], expected_seq=0, claim=("far-host:2:2", -60 * 10**9))
            real = time.time_ns
            rt = Runtime(store, Registry())
            for skew in (3600 * 10**9, -3600 * 10**9):
                monkeypatch.setattr(time, "time_ns", lambda: real() + skew)
                info = await store.run(live)
                assert abs(info.seen_ns - real()) < 5 * 10**9  # the database's clock, not ours
                assert owner_alive(info.owner, info.lease_until_ns, info.seen_ns)
                assert not await store.claim(live, rt.owner, 10**9, None)
                dead_info = await store.run(dead)
                assert not owner_alive(dead_info.owner, dead_info.lease_until_ns, dead_info.seen_ns)
            monkeypatch.setattr(time, "time_ns", lambda: real() - 3600 * 10**9)
            assert await store.claim(dead, rt.owner, 10**9, "far-host:2:2")
            assert (await store.run(live)).owner == "far-host:1:1"

    asyncio.run(go())


def test_verify_secrets_reads_every_postgres_table(pg_dsn):
    """What an older vigil (or a hand-written row) left in any table is found and named."""
    import psycopg

    from cli_helpers import vigil

    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"

    async def plant():
        async with await Store.open(pg_dsn) as store:
            await store.append("r1", [RunStarted(graph="g", labels={"team": "x"})], expected_seq=0)
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await conn.execute("UPDATE vigil.runs SET error = %s", (f"failed with {key}",))
            await conn.execute(
                "INSERT INTO vigil.signals(run_id, kind, body, created_ns) VALUES ('r1', 'cancel', %s, 1)",
                (b'{"reason": "' + key.encode() + b'"}',),
            )

    asyncio.run(plant())
    out = vigil("verify", "--secrets", db=pg_dsn)
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert "run r1 runs row error: looks like a secret (openai-key)" in lines
    assert any(line.startswith("run r1 signal ") and "body.reason" in line for line in lines), lines
