"""Tamper evidence (issue 13): the per-run hash chain and its ed25519 seals, on both backends,
against real SQLite files and a real PostgreSQL server, through the real `vigil` CLI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sqlite3
import stat
import struct
import zlib

import msgspec
import pytest

from cli_helpers import vigil
from helpers import counter_steps, record_steps
from kernel.codec import encode
from kernel.events import ActionRequested, ActionSucceeded, Event, RunStarted, StepStarted
from kernel.log.port import is_postgres
from kernel.store import Store

pytest.importorskip("cryptography")


# An implementation of the documented definition written apart from kernel/chain.py, so a test
# that compares with it checks the definition, not the code against itself.
def _chain(prev: bytes, run_id: str, seq: int, ts_ns: int, type_: str, body: bytes) -> bytes:
    rid, typ = run_id.encode(), type_.encode()
    return hashlib.sha256(
        prev + struct.pack(">I", len(rid)) + rid + struct.pack(">q", seq) + struct.pack(">q", ts_ns)
        + struct.pack(">I", len(typ)) + typ + body
    ).digest()


GENESIS = hashlib.sha256(b"vigil chain v1").digest()


def sql(target, query: str, params: tuple = ()) -> list[tuple]:
    """Raw SQL on the log behind vigil's back: `{t}` stands for the table prefix."""
    if is_postgres(target):
        import psycopg

        with psycopg.connect(str(target), autocommit=True) as conn:
            cur = conn.execute(query.format(t="vigil.").replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description else []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    conn = sqlite3.connect(target)
    try:
        with conn:
            return conn.execute(query.format(t=""), params).fetchall()
    finally:
        conn.close()


def _rows(target, run_id: str) -> list[tuple]:
    return sql(target, "SELECT seq, ts_ns, type, body, chain FROM {t}events WHERE run_id = ? ORDER BY seq", (run_id,))


def _expected_chains(run_id: str, rows: list[tuple]) -> list[bytes]:
    out, prev = [], GENESIS
    for seq, ts_ns, type_, body, _ in rows:
        prev = _chain(prev, run_id, seq, ts_ns, type_, bytes(body))
        out.append(prev)
    return out


def _make(target, run_id: str = "run-c", steps: int = 6) -> None:
    async def go():
        async with await Store.open(target) as store:
            await record_steps(store, run_id, counter_steps(steps))

    asyncio.run(go())


def _rewrite(target, run_id: str, seq: int, event) -> None:
    """Replace a row's body with another event, its crc recomputed so the row looks healthy."""
    body, crc = encode(event)
    sql(target, "UPDATE {t}events SET body = ?, crc = ? WHERE run_id = ? AND seq = ?", (body, crc, run_id, seq))


def _rechain(target, run_id: str) -> None:
    """What a careful forger does next: recompute the whole chain so it follows again."""
    rows = _rows(target, run_id)
    for (seq, *_), chain in zip(rows, _expected_chains(run_id, rows)):
        sql(target, "UPDATE {t}events SET chain = ? WHERE run_id = ? AND seq = ?", (chain, run_id, seq))


def _keys(tmp_path, name: str = "k"):
    out = vigil("keygen", str(tmp_path / name))
    assert out.returncode == 0, out.stderr
    return tmp_path / name, tmp_path / f"{name}.pub"


# the chain ------------------------------------------------------------------------------------


def test_every_row_carries_the_documented_chain(both_backends):
    """Many runs appending at once (the group writer folds them into shared commits), two of
    them in the same run from two stores (one writer's cached head goes stale): every row's
    chain is exactly the documented definition."""
    target = both_backends

    async def go():
        async with await Store.open(target) as a, await Store.open(target) as b:
            async def one(r: int) -> None:
                seq = await a.append(f"run{r}", [RunStarted(graph="g")], expected_seq=0)
                for i in range(20):
                    seq = await a.append(f"run{r}", [ActionSucceeded(action_id=f"a{i}", output={"i": i})], expected_seq=seq)

            await asyncio.gather(*(one(r) for r in range(10)))
            # Two writers in one run: b continues a's chain from the table, then a from b's.
            seq = await b.append("run0", [ActionSucceeded(action_id="b", output=1)], expected_seq=21)
            await a.append("run0", [ActionSucceeded(action_id="a", output=2)], expected_seq=seq)

    asyncio.run(go())
    for r in range(10):
        rows = _rows(target, f"run{r}")
        assert len(rows) == (23 if r == 0 else 21)
        assert [bytes(x[4]) for x in rows] == _expected_chains(f"run{r}", rows)
    out = vigil("verify", db=target)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_body_rewritten_with_a_valid_crc_is_named_by_verify(both_backends):
    target = both_backends
    _make(target)
    assert vigil("verify", db=target).returncode == 0
    # seq 4 is the second step's StepStarted: nothing the fold or a state hash looks at, so
    # before the chain `vigil verify` passed this edit.
    _rewrite(target, "run-c", 4, StepStarted(step_id="s2", node="forged"))
    out = vigil("verify", db=target)
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert lines == [
        "run run-c seq 4: hash chain breaks at seq 4: the stored chain does not follow from the rows "
        "up to here (a row was rewritten or removed)"
    ]
    assert "1 of 1 runs failed verification" in out.stderr.decode()


def test_a_removed_row_in_the_middle_breaks_the_chain_where_it_was(both_backends):
    target = both_backends
    _make(target)
    sql(target, "DELETE FROM {t}events WHERE run_id = 'run-c' AND seq = 7")
    sql(target, "UPDATE {t}events SET seq = seq - 1 WHERE run_id = 'run-c' AND seq > 7")
    out = vigil("verify", "run-c", db=target)
    assert out.returncode == 1
    assert "run run-c seq 7: hash chain breaks at seq 7" in out.stdout.decode()


def _old_log(target) -> None:
    """A log made by the vigil before the chain: its schema, rows written by hand as it wrote them."""
    if is_postgres(target):
        import psycopg

        from kernel.log.postgres import schema

        async def make():
            async with await psycopg.AsyncConnection.connect(str(target), autocommit=True) as conn:
                await schema.migrate(conn, upto=1)

        asyncio.run(make())
    else:
        from kernel.log.sqlite import schema

        conn = schema.connect(target)
        schema.migrate(conn, upto=3)
        conn.close()
    for run_id in ("old-a", "old-b"):
        for seq, event in enumerate([RunStarted(graph="g"), ActionRequested(action_id="x", step_id="s", kind="tool", name="t", input={"q": run_id})], 1):
            body, crc = encode(event)
            sql(target, "INSERT INTO {t}events(run_id, seq, ts_ns, type, step_id, body, crc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, 1_000 + seq, type(event).__name__, getattr(event, "step_id", None), body, crc))
        sql(target, "INSERT INTO {t}runs(run_id, graph, status, created_ns) VALUES (?, 'g', 'running', 1001)", (run_id,))


def test_an_existing_log_gets_its_chain_at_migration(both_backends):
    target = both_backends
    _old_log(target)
    assert sql(target, "SELECT count(*) FROM {t}events")[0][0] == 4

    async def go():
        async with await Store.open(target) as store:  # migrates
            await store.append("old-a", [ActionSucceeded(action_id="x", output="done")], expected_seq=2)

    asyncio.run(go())
    for run_id, n in (("old-a", 3), ("old-b", 2)):
        rows = _rows(target, run_id)
        assert len(rows) == n and [bytes(x[4]) for x in rows] == _expected_chains(run_id, rows)
    if is_postgres(target):  # backfilled, then NOT NULL
        assert sql(target, "SELECT is_nullable FROM information_schema.columns"
                           " WHERE table_schema = 'vigil' AND table_name = 'events' AND column_name = 'chain'") == [("NO",)]
    out = vigil("verify", db=target)
    assert out.returncode == 0, out.stdout + out.stderr


def test_migrating_again_never_rechains_a_log_that_has_its_chain(both_backends):
    """A log whose meta was set back to the version before the chain is migrated again; its
    chain stays as it was, so an edit in it is still named (chaining it afresh would hide it)."""
    target = both_backends
    _make(target)
    _rewrite(target, "run-c", 4, StepStarted(step_id="s2", node="forged"))
    sql(target, "UPDATE {t}meta SET value = ? WHERE key = 'schema_version'", ("1" if is_postgres(target) else "3",))

    async def reopen():
        async with await Store.open(target):
            pass

    asyncio.run(reopen())
    out = vigil("verify", db=target)
    assert out.returncode == 1 and "run run-c seq 4: hash chain breaks at seq 4" in out.stdout.decode()


# seals ----------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    private, public = _keys(tmp_path)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = vigil("keygen", str(private))
    assert again.returncode == 2
    assert again.stderr.decode() == f"vigil: {private} already exists; not overwriting a key\n"


def test_seal_then_verify_key_passes_and_names_the_unsealed_tail(both_backends, tmp_path):
    target = both_backends
    _make(target, "run-a")
    _make(target, "run-b", steps=2)
    private, public = _keys(tmp_path)
    out = vigil("seal", "--key", str(private), "--all", db=target)
    assert out.returncode == 0, out.stderr
    assert "run run-a: sealed at seq 13 by key" in out.stdout.decode()
    assert sql(target, "SELECT run_id, seq FROM {t}seals ORDER BY run_id") == [("run-a", 13), ("run-b", 5)]
    again = vigil("seal", "--key", str(private), "run-a", db=target)
    assert again.returncode == 0 and again.stdout.decode().endswith("(already)\n")

    out = vigil("verify", "--key", str(public), db=target)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sealed to seq 13 by key" in out.stdout.decode()

    async def grow():
        async with await Store.open(target) as store:
            await store.append("run-b", [ActionSucceeded(action_id="late", output=1)], expected_seq=5)

    asyncio.run(grow())
    out = vigil("verify", "--key", str(public), "run-b", db=target)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sealed to seq 5 by key" in out.stdout.decode() and "seq 6..6 not sealed yet" in out.stdout.decode()


def test_a_consistently_rewritten_chain_passes_verify_but_not_verify_key(both_backends, tmp_path):
    target = both_backends
    _make(target)
    private, public = _keys(tmp_path)
    assert vigil("seal", "--key", str(private), "run-c", db=target).returncode == 0
    _rewrite(target, "run-c", 4, StepStarted(step_id="s2", node="forged"))
    _rechain(target, "run-c")
    plain = vigil("verify", db=target)
    assert plain.returncode == 0, plain.stdout  # what the chain alone cannot prove
    keyed = vigil("verify", "--key", str(public), db=target)
    assert keyed.returncode == 1
    assert keyed.stdout.decode().splitlines() == [
        "run run-c seq 13: the hash chain no longer reaches the hash sealed at seq 13 (a row up to it was rewritten)"
    ]
    # Nor can the forger re-seal: `vigil seal` with another key makes a seal this key ignores.
    other, _ = _keys(tmp_path, "other")
    assert vigil("seal", "--key", str(other), "run-c", db=target).returncode == 0
    assert vigil("verify", "--key", str(public), db=target).returncode == 1


def test_verify_key_fails_on_a_bad_or_missing_seal(both_backends, tmp_path):
    target = both_backends
    _make(target)
    private, public = _keys(tmp_path)
    out = vigil("verify", "--key", str(public), db=target)
    assert out.returncode == 1 and "run run-c seq 13: no seal by key" in out.stdout.decode()
    assert vigil("seal", "--key", str(private), "run-c", db=target).returncode == 0
    # A seal moved to claim more than was signed: the signature no longer holds.
    sql(target, "UPDATE {t}seals SET sealed_ns = sealed_ns + 1")
    out = vigil("verify", "--key", str(public), db=target)
    assert out.returncode == 1 and "run run-c seq 13: the seal at seq 13 has a bad signature" in out.stdout.decode()
    sql(target, "DELETE FROM {t}seals")
    out = vigil("verify", "--key", str(public), db=target)
    assert out.returncode == 1 and "no seal by key" in out.stdout.decode()


def test_removing_sealed_events_fails_verify_key(both_backends, tmp_path):
    target = both_backends
    _make(target)
    private, public = _keys(tmp_path)
    assert vigil("seal", "--key", str(private), "run-c", db=target).returncode == 0
    sql(target, "DELETE FROM {t}events WHERE run_id = 'run-c' AND seq > 10")
    assert vigil("verify", db=target).returncode == 0  # a shorter run is still a consistent one
    out = vigil("verify", "--key", str(public), db=target)
    assert out.returncode == 1
    assert "sealed at seq 13, but the run now ends at seq 10 (events were removed)" in out.stdout.decode()


def test_seal_refuses_a_run_whose_chain_is_already_broken(both_backends, tmp_path):
    target = both_backends
    _make(target)
    private, _ = _keys(tmp_path)
    _rewrite(target, "run-c", 4, StepStarted(step_id="s2", node="forged"))
    out = vigil("seal", "--key", str(private), "run-c", db=target)
    assert out.returncode == 2
    assert out.stderr.decode().startswith("vigil: run run-c: not sealed: its hash chain breaks at seq 4")
    assert sql(target, "SELECT count(*) FROM {t}seals")[0][0] == 0
    # --all seals the others, names the broken one, and exits 1.
    _make(target, "run-ok", steps=1)
    out = vigil("seal", "--key", str(private), "--all", db=target)
    assert out.returncode == 1
    assert "run run-ok: sealed at seq 3" in out.stdout.decode()
    assert out.stderr.decode().splitlines()[-1] == "vigil: 1 of 2 runs not sealed"
    assert sql(target, "SELECT run_id FROM {t}seals") == [("run-ok",)]


def test_key_errors_are_one_line(tmp_path):
    db = tmp_path / "v.db"
    _make(db)
    private, public = _keys(tmp_path)
    for args, message in [
        (("verify", "--key", str(private)), f"vigil: {private} is a private key; --key takes the public one (PATH.pub)\n"),
        (("verify", "--key", str(tmp_path / "nope")), f"vigil: cannot read key {tmp_path / 'nope'}: No such file or directory\n"),
        (("seal", "--key", str(public), "--all"),
         f"vigil: {public} is a public key; seal takes the private one (PATH of `vigil keygen`)\n"),
        (("seal", "--key", str(private)), "vigil: seal needs a RUN or --all (one of them)\n"),
        (("verify", "--key", str(public), "--secrets"), "vigil: --key and --secrets are separate checks; run them one at a time\n"),
    ]:
        out = vigil(*args, db=db)
        assert out.returncode == 2, args
        err = out.stderr.decode()
        assert err.count("\n") == 1 and "Traceback" not in err, err
        if message is not None:
            assert err == message


def test_a_private_key_others_can_read_is_refused(tmp_path):
    """As ssh refuses an unprotected private key: whoever can read it can seal (it was taken)."""
    db = tmp_path / "v.db"
    _make(db)
    private, _ = _keys(tmp_path)
    os.chmod(private, 0o644)
    out = vigil("seal", "--key", str(private), "--all", db=db)
    err = out.stderr.decode()
    assert out.returncode == 2 and err == (
        f"vigil: {private} can be read by others (mode 0644): `chmod 600 {private}` first, or pass it on stdin\n")
    os.chmod(private, 0o600)
    assert vigil("seal", "--key", str(private), "--all", db=db).returncode == 0


def test_without_cryptography_the_key_commands_say_what_to_install(tmp_path):
    # A `cryptography` that cannot be imported, first on the path: as if it were not installed.
    fake = tmp_path / "shadow" / "cryptography"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no cryptography here')\n")
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tmp_path / "shadow") + (os.pathsep + env_path if env_path else "")
    try:
        out = vigil("keygen", str(tmp_path / "k"))
    finally:
        if env_path is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_path
    assert out.returncode == 2
    assert out.stderr.decode() == "vigil: signing needs the cryptography package: pip install 'vigil-console[sign]'\n"
    assert not (tmp_path / "k").exists()


# export / import / copy -----------------------------------------------------------------------


def test_export_import_keeps_the_chain_and_the_seals(new_log, tmp_path):
    src, dst = new_log(), new_log()
    _make(src)
    private, public = _keys(tmp_path)
    assert vigil("seal", "--key", str(private), "run-c", db=src).returncode == 0
    export = tmp_path / "run.jsonl"
    assert vigil("export", "run-c", "-o", str(export), db=src).returncode == 0
    lines = [json.loads(x) for x in export.read_bytes().splitlines()]
    assert all(len(x["chain"]) == 64 for x in lines) and "seals" in lines[-1]
    out = vigil("import", str(export), db=dst)
    assert out.returncode == 0, out.stderr
    assert _rows(dst, "run-c") == _rows(src, "run-c")  # bodies and chain values, byte for byte
    assert sql(dst, "SELECT seq, chain, key_id, sealed_ns, signature FROM {t}seals") == \
        sql(src, "SELECT seq, chain, key_id, sealed_ns, signature FROM {t}seals")
    out = vigil("verify", "--key", str(public), db=dst)
    assert out.returncode == 0, out.stdout + out.stderr

    # The imported run goes on: its next rows chain from the imported head, in this process
    # (the writer's cache) and in the next (the table).
    async def go_on():
        for i in range(2):
            async with await Store.open(dst) as store:
                last = await store.last_seq("run-c")
                await store.append("run-c", [ActionSucceeded(action_id=f"more{i}", output=i)] * 2, expected_seq=last)

    asyncio.run(go_on())
    rows = _rows(dst, "run-c")
    assert len(rows) == 17 and [bytes(x[4]) for x in rows] == _expected_chains("run-c", rows)


def _edit_export(path, seq: int, node: str, *, rechain: bool) -> None:
    """Edit an exported event's JSON the way a forger would: its crc fixed, and optionally
    every chain recomputed from the bodies import will store."""
    lines = [json.loads(x) for x in path.read_bytes().splitlines()]
    lines[seq - 1]["event"]["node"] = node
    bodies = [
        base64.b64decode(x["body_b64"]) if "body_b64" in x else encode(msgspec.convert(x["event"], Event))[0]
        for x in lines
    ]
    lines[seq - 1]["crc"] = zlib.crc32(bodies[seq - 1])
    if rechain:
        prev = GENESIS
        for x, body in zip(lines, bodies):
            prev = _chain(prev, x["run_id"], x["seq"], x["ts_ns"], x["type"], body)
            x["chain"] = prev.hex()
    path.write_bytes(b"\n".join(json.dumps(x).encode() for x in lines) + b"\n")


def test_an_export_edited_after_the_fact_is_flagged_and_its_break_kept(new_log, tmp_path):
    """Import keeps the chain as exported: an edit is named at import and by `vigil verify`
    (without the key, or with it once the forger recomputed the chain) on the new log."""
    src = new_log()
    _make(src)
    private, public = _keys(tmp_path)
    assert vigil("seal", "--key", str(private), "run-c", db=src).returncode == 0
    export = tmp_path / "run.jsonl"
    assert vigil("export", "run-c", "-o", str(export), db=src).returncode == 0
    original = export.read_bytes()

    dst = new_log()
    _edit_export(export, 4, "forged", rechain=False)
    out = vigil("import", str(export), db=dst)
    assert out.returncode == 0, out.stderr
    assert out.stderr.decode() == (
        "vigil: run run-c: its hash chain breaks at seq 4 (an event edited after export, or a log "
        "already broken where it was exported); imported as it is (`vigil verify` names it)\n"
    )
    assert [r[4] for r in _rows(dst, "run-c")] == [r[4] for r in _rows(src, "run-c")]  # kept, not laundered
    out = vigil("verify", db=dst)
    assert out.returncode == 1 and "run run-c seq 4: hash chain breaks at seq 4" in out.stdout.decode()

    # The chain recomputed in the file too: the seal still names the hash the events were signed at.
    dst = new_log()
    export.write_bytes(original)
    _edit_export(export, 4, "forged", rechain=True)
    out = vigil("import", str(export), db=dst)
    assert out.returncode == 0, out.stderr
    assert "vigil: run run-c: its events no longer reach the hash sealed at seq 13 by key" in out.stderr.decode()
    assert vigil("verify", db=dst).returncode == 0  # consistent, as far as the chain alone can tell
    out = vigil("verify", "--key", str(public), db=dst)
    assert out.returncode == 1
    assert "run run-c seq 13: the hash chain no longer reaches the hash sealed at seq 13" in out.stdout.decode()


def test_an_export_with_a_chain_that_does_not_decode_imports_nothing(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    _make(src)
    lines = vigil("export", "run-c", db=src).stdout.splitlines()
    bad = json.loads(lines[2])
    bad["chain"] = "zz"
    lines[2] = json.dumps(bad).encode()
    out = vigil("import", "-", db=dst, input=b"\n".join(lines) + b"\n")
    assert out.returncode == 2
    assert out.stderr.decode() == "vigil: line 3 (seq 3): a chain or seal that does not decode\n"
    assert vigil("runs", "--json", db=dst).stdout == b""


def test_copy_keeps_the_chain_and_seals_and_a_broken_source_chain_stays_broken(tmp_path, pg_dsn):
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    _make(src)
    private, public = _keys(tmp_path)
    assert vigil("seal", "--key", str(private), "--all", db=src).returncode == 0
    out = vigil("copy", "--to", pg_dsn, db=src)
    assert out.returncode == 0, out.stderr
    assert _rows(pg_dsn, "run-c") == [(s, t, ty, bytes(b), bytes(c)) for s, t, ty, b, c in _rows(src, "run-c")]
    assert vigil("verify", "--key", str(public), db=pg_dsn).returncode == 0

    # A source row rewritten behind the chain's back: named by the copy, and the target keeps the
    # break at the same seq rather than chaining the forged row afresh.
    _rewrite(src, "run-c", 4, StepStarted(step_id="s2", node="forged"))
    out = vigil("copy", "--from", str(src), "--to", str(back))
    assert out.returncode == 0, out.stderr
    assert ("vigil: run run-c: its hash chain breaks at seq 4 in the source; copied as it is "
            "(`vigil verify` names it on both logs)") in out.stderr.decode()
    out = vigil("verify", db=back)
    assert out.returncode == 1 and "run run-c seq 4: hash chain breaks at seq 4" in out.stdout.decode()


def test_seal_reads_the_key_from_stdin_so_it_never_touches_the_box_disk(tmp_path):
    """The README's `ssh box vigil seal --key /dev/stdin --all < key`, without the ssh."""
    db = tmp_path / "v.db"
    _make(db)
    private, public = _keys(tmp_path)
    out = vigil("seal", "--key", "/dev/stdin", "--all", db=db, input=private.read_bytes())
    assert out.returncode == 0, out.stderr
    assert vigil("verify", "--key", str(public), db=db).returncode == 0


def test_a_row_without_its_chain_is_refused_on_sqlite_too(tmp_path):
    """A vigil from before the chain that still has the file open after the migration would
    append rows without one (SQLite's chain column is nullable); every later row of the run
    would then chain from nothing. Refused, as PostgreSQL's NOT NULL refuses it."""
    import sqlite3

    db = tmp_path / "v.db"

    async def make():
        async with await Store.open(db) as store:
            await store.append("r", [RunStarted(graph="g")], expected_seq=0)

    asyncio.run(make())
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="keeps a hash chain"):
        conn.execute("INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc)"
                     " SELECT run_id, 2, ts_ns, type, step_id, body, crc FROM events WHERE seq = 1")
