"""Secrets planted in every place vigil writes (events, runs rows, interrupts, signals, exports)
are found 0 times in the raw bytes of the database, its -wal and -shm files and the exports.

17 kinds of secret (tests/secret_workflows.py) go into 20 places; each place has its own copy of
each kind, so a failure names exactly which kind leaked from which place into which file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec

import secret_workflows as sw
from cli_helpers import ROOT, vigil
from runtime_helpers import pending, runtime

HERE = Path(__file__).resolve().parent
OBJECT_PLACES = {"run input", "interrupt payload", "tool args Secret", "owner tool args Secret"}

OWNER = """
import asyncio, sys
import secret_workflows as sw
from kernel.registry import Registry
from kernel.engine.runtime import Runtime
from kernel.store import Store

async def main(db):
    registry = Registry()
    for g in sw.GRAPHS:
        registry.add(g)
    async with await Store.open(db) as store:
        async with Runtime(store, registry) as rt:
            ids = [await rt.start("asker", {"n": 1}), await rt.start("waits", {"n": 2})]
            await rt.settle()
            print(" ".join(ids), flush=True)
            while [r for r in ids if (await store.run(r)).status not in ("completed", "cancelled", "failed")]:
                await asyncio.sleep(0.05)
            print("done", flush=True)
            sys.stdin.readline()  # the test reads the files while this store is still open

asyncio.run(main(sys.argv[1]))
"""


def _files(db: Path) -> dict[str, bytes]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            out[path.name] = path.read_bytes()
    return out


def _planted() -> list[tuple[str, str, str]]:
    return [
        (place, kind, value)
        for place in sw.PLACES
        for kind, value in sw.secrets_for(place).items()
        if kind != "secret-object" or place in OBJECT_PLACES
    ]


def _leaks(blobs: dict[str, bytes]) -> list[str]:
    return [
        f"{kind} from {place} in {name}"
        for place, kind, value in _planted()
        for name, blob in blobs.items()
        if value.encode() in blob
    ]


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def _base64_decoded(db: Path) -> bytes:
    """Bytes outputs are recorded base64-encoded: decode every string that is base64, so a
    secret inside them is found too."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    found = []
    for (body,) in conn.execute("SELECT body FROM events"):
        strings: list[str] = []
        _strings(msgspec.msgpack.decode(body), strings)
        for s in strings:
            if len(s) >= 16 and len(s) % 4 == 0:
                try:
                    found.append(base64.b64decode(s, validate=True))
                except (binascii.Error, ValueError):
                    pass
    conn.close()
    return b"\n".join(found)


async def _in_process(db: Path, blobs: dict[str, bytes]) -> dict:
    seen: dict = {}
    async with runtime(db, *sw.GRAPHS) as (store, rt):
        s = sw.secrets_for("run labels")
        labels = {"note": sw.text_form("run labels"), "password": s["password"], "token": s["token"],
                  "api_key": s["api-key"], "client_secret": s["client-secret"],
                  "authorization": f"Basic {s['authorization']}"}
        a = await rt.start("everything", sw.structured_form("run input", objects=True), labels=labels)
        while True:
            await rt.settle()
            info = await store.run(a)
            if info.status != "waiting":
                break
            ask = pending(rt, a)[0]
            value = None
            if ask.kind == "input":
                decision, value = "answer", sw.structured_form("answer")
            elif ask.payload["tool"] == "leak":
                seen["leak approval"] = ask
                decision = "approve"
            elif ask.payload["tool"] == "risky":
                decision, value = "reject", sw.text_form("reject reason")
            else:
                decision, value = "edit", {"settings": sw.structured_form("edit")}
            await rt.resolve(a, ask.interrupt_id, decision, value, payload_hash=ask.payload_hash)
        seen["everything"] = info.status
        b = await rt.start("node_fails", {"n": 1})
        c = await rt.start("tool_fails", {"n": 1})
        d = await rt.start("waits", {"n": 1})
        await rt.settle()
        await rt.cancel(d, sw.text_form("cancel reason"))
        seen["statuses"] = [(await store.run(r)).status for r in (b, c, d)]
        records = [r for r in await store.events(a, limit=10_000)]
        seen["logged approval"] = next(
            r.event for r in records
            if r.type == "InterruptRaised" and r.event.interrupt_id == seen["leak approval"].interrupt_id
        )
        seen["runs"] = [a, b, c, d]
        blobs.update({f"{k} (in-process store open)": v for k, v in _files(db).items()})
    blobs.update({f"{k} (in-process store closed)": v for k, v in _files(db).items()})
    return seen


def _wait_for_interrupt(db: Path, run_id: str, interrupt_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT 1 FROM interrupts WHERE run_id = ? AND interrupt_id = ? AND resolved_seq IS NULL",
                (run_id, interrupt_id),
            ).fetchone()
        finally:
            conn.close()
        if row:
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never raised {interrupt_id}")


def _cross_process(db: Path, blobs: dict[str, bytes]) -> list[str]:
    env = {**os.environ, "VIGIL_DB": str(db), "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(db)], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline().split()
        assert len(line) == 2, owner.stderr.read()
        asker, waits = line

        def cli(*args: str) -> None:
            out = subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert "applied by its owner" in out.stdout, out.stdout

        _wait_for_interrupt(db, asker, "1.work#0")
        cli("approve", asker, "--interrupt", "1.work#0", "--answer", sw.text_form("cli answer"))
        _wait_for_interrupt(db, asker, "1.work#1.approval")
        cli("approve", asker, "--interrupt", "1.work#1.approval", "--edit", json.dumps({"settings": sw.structured_form("cli edit")}))
        _wait_for_interrupt(db, asker, "1.work#2.approval")
        cli("reject", asker, "--interrupt", "1.work#2.approval", "--reason", sw.text_form("cli reject reason"))
        cli("cancel", waits, "--reason", sw.text_form("cli cancel reason"))
        assert owner.stdout.readline().strip() == "done", owner.stderr.read()
        blobs.update({f"{k} (owner open)": v for k, v in _files(db).items()})
        owner.stdin.write("\n")
        owner.stdin.flush()
        assert owner.wait(timeout=30) == 0, owner.stderr.read()
    finally:
        if owner.poll() is None:
            owner.kill()
    blobs.update({f"{k} (owner closed)": v for k, v in _files(db).items()})
    return [asker, waits]


def test_secrets_in_every_place_never_reach_any_file(db, tmp_path):
    blobs: dict[str, bytes] = {}
    seen = asyncio.run(_in_process(db, blobs))
    assert seen["everything"] == "completed"
    assert seen["statuses"] == ["failed", "failed", "cancelled"]
    run_ids = seen["runs"] + _cross_process(db, blobs)

    for run_id in run_ids:
        target = tmp_path / f"{run_id}.jsonl"
        out = vigil("export", run_id, "-o", str(target), db=db)
        assert out.returncode == 0, out.stderr
        blobs[f"export of {run_id}"] = target.read_bytes()
        stdout = vigil("export", run_id, db=db)
        blobs[f"export of {run_id} (stdout)"] = stdout.stdout
    blobs["base64 strings in events, decoded"] = _base64_decoded(db)
    blobs.update({f"{k} (at the end)": v for k, v in _files(db).items()})
    assert sum(len(b) for b in blobs.values()) > 100_000

    leaks = _leaks(blobs)
    leaked = {(p, k) for p, k, v in _planted() if any(v.encode() in b for b in blobs.values())}
    assert not leaks, f"{len(leaked)} of {len(_planted())} planted secrets found:\n" + "\n".join(leaks)

    # the scanner agrees: nothing in this log looks like a secret
    scan = vigil("verify", "--secrets", db=db)
    assert scan.returncode == 0, scan.stdout + scan.stderr


def test_a_tool_gets_the_real_secret_and_the_approver_sees_its_kind(db):
    sw.SEEN.clear()
    seen = asyncio.run(_in_process(db, {}))
    real = sw.secrets_for("tool args Secret")
    # the tool ran with the values themselves, unwrapped
    assert sw.SEEN["key"] == real["openai"] and type(sw.SEEN["key"]) is str
    assert sw.SEEN["hidden"] == real
    # raw secrets in the arguments reach the tool too
    assert sw.SEEN["raw"] == sw.structured_form("tool args raw")
    # the approver (live and in the log) sees that a secret is there, and which kind
    for ask in (seen["leak approval"], seen["logged approval"]):
        args = ask.payload["args"]
        assert args["key"] == "[REDACTED:openai-key]"
        assert args["hidden"]["aws-access-key"] == "[REDACTED:aws-access-key]"
        assert args["hidden"]["password"] == "[REDACTED:secret]"
        assert all(v.startswith("[REDACTED:") for v in args["hidden"].values())
        assert args["raw"]["password"] == "[REDACTED:password]"
        assert args["raw"]["model"]["openai"] == "[REDACTED:openai-key]"
        assert args["raw"]["dsn"] == "mysql://root:[REDACTED:password]@10.0.0.5/prod"


def test_the_planted_log_still_verifies(db):
    """Redacting at the codec keeps state hashes true: the driver folds the same redacted values."""
    asyncio.run(_in_process(db, {}))
    out = vigil("verify", db=db)
    assert out.returncode == 0, out.stdout + out.stderr
