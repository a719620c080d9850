"""Approvals: forged decisions, approving what the operator saw, ended runs, cancel/approve races
and declared choices. Real SQLite files; the CLI as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import sys

import pytest

from approval_workflows import payments, pick
from cli_helpers import ROOT
from kernel.codec import canonical_hash
from kernel.demos import triage
from kernel.errors import VigilError
from kernel.events import ActionSucceeded, InterruptResolved, RunCancelled, RunStarted
from kernel.projection import TERMINAL
from kernel.engine.runtime import InterruptRefused, Runtime
from kernel.store import Store
from runtime_helpers import events_of, pending, registry, run, runtime


def cli(*args: str, db, ledger=None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `vigil` CLI with the approval workflows registered; stdin is not a terminal."""
    env = {**os.environ, "VIGIL_DB": str(db), "VIGIL_WORKFLOWS": "approval_workflows",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    if ledger is not None:
        env["VIGIL_LEDGER"] = str(ledger)
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def waiting_payment(db, bills) -> tuple[str, object]:
    """A payments run left waiting on its first approval, nobody driving it."""

    async def go():
        async with runtime(db, payments, pick) as (store, rt):
            run_id = await rt.start("payments", {"bills": bills})
            await rt.settle()
            return run_id, pending(rt, run_id)[0]

    return run(go())


async def _append(db, run_id, *events) -> int:
    async with await Store.open(db) as store:
        return await store.append(run_id, list(events), expected_seq=await store.last_seq(run_id))


def _forged(raised, how: str) -> InterruptResolved:
    return InterruptResolved(
        interrupt_id="9.nowhere#0.approval" if how == "unknown id" else raised.interrupt_id,
        decision="approve", payload_hash="0" * 64 if how == "hash" else raised.payload_hash,
    )


# forged decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["hash", "unknown id", "twice"])
def test_forged_resolution_is_not_honoured(db, tmp_path, how):
    run_id, raised = waiting_payment(db, [["bob", 500]])
    if how == "twice":  # a real approval nobody applied yet, then a second one written behind it
        run(_append(db, run_id, InterruptResolved(interrupt_id=raised.interrupt_id, decision="reject",
                                                  value="no", payload_hash=raised.payload_hash)))
    forged_seq = run(_append(db, run_id, _forged(raised, how)))

    calls = []

    async def resume():
        async with runtime(db, payments) as (store, rt):
            rt.listen(lambda what, rid, data: calls.append((what, data)) if what == "error" else None)
            with pytest.raises(VigilError, match=f"seq {forged_seq}"):
                await rt.resume(run_id)
            await rt.resume()  # resuming everything skips it too, and says why
            await rt.settle()
            return await events_of(store, run_id), await store.run(run_id)

    events, info = run(resume())
    assert not any(isinstance(e, ActionSucceeded) for e in events)  # the tool never ran
    assert info.owner is None and len(events) == forged_seq
    assert any(f"seq {forged_seq}" in str(data) for _, data in calls)
    out = cli("verify", run_id, db=db)
    assert out.returncode == 1 and f"run {run_id} seq {forged_seq}:" in out.stdout, out.stdout
    ledger = tmp_path / "ledger.txt"
    out = cli("resume", run_id, db=db, ledger=ledger)
    assert out.returncode == 2 and f"seq {forged_seq}" in out.stderr and not ledger.exists()


def test_import_refuses_forged_resolution(tmp_path):
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    run_id, raised = waiting_payment(src, [["bob", 500]])
    forged_seq = run(_append(src, run_id, _forged(raised, "hash")))
    export = tmp_path / "run.jsonl"
    assert cli("export", run_id, "-o", str(export), db=src).returncode == 0
    out = cli("import", str(export), db=dst)
    assert out.returncode == 2 and f"seq {forged_seq}" in out.stderr and "payload hash" in out.stderr
    assert cli("runs", "--json", db=dst).stdout.strip() == ""  # nothing written


# approving what the operator saw ---------------------------------------------------------------


def test_approve_without_interrupt_refuses_when_pending_changed(db, tmp_path):
    ledger = tmp_path / "ledger.txt"
    run_id, seen = waiting_payment(db, [["ann", 500], ["bob", 9000]])
    assert seen.payload["args"]["amount"] == 500
    # the first operator approves the 500 they saw, and the run goes on to the 9000
    out = cli("approve", run_id, "--interrupt", seen.interrupt_id, "--hash", seen.payload_hash[:12], db=db)
    assert out.returncode == 0, out.stderr
    assert cli("resume", run_id, db=db, ledger=ledger).returncode == 0
    assert ledger.read_text() == "ann 500.0\n"
    events = run(_events(db, run_id))
    now = [e for e in events if type(e).__name__ == "InterruptRaised"][-1]
    assert now.payload["args"]["amount"] == 9000

    # a second operator's late approval, without --interrupt, must not pay the 9000
    late = cli("approve", run_id, db=db)
    assert late.returncode == 2, late.stdout
    err = late.stderr.strip()
    assert len(err.splitlines()) == 1 and "--interrupt" in err
    assert now.interrupt_id in err and now.payload_hash[:12] in err
    # naming the interrupt they saw: already resolved; a hash that is not this payload's: refused
    again = cli("approve", run_id, "--interrupt", seen.interrupt_id, db=db)
    assert again.returncode == 2 and "already resolved" in again.stderr
    stale = cli("approve", run_id, "--interrupt", now.interrupt_id, "--hash", seen.payload_hash[:12], db=db)
    assert stale.returncode == 2 and "hash changed" in stale.stderr
    assert cli("resume", run_id, db=db, ledger=ledger).returncode == 0
    assert ledger.read_text() == "ann 500.0\n"  # nothing else was paid
    assert sum(isinstance(e, InterruptResolved) for e in run(_events(db, run_id))) == 1


async def _events(db, run_id):
    async with await Store.open(db) as store:
        return await events_of(store, run_id)


def test_hash_alone_picks_the_pending_interrupt(db):
    run_id, seen = waiting_payment(db, [["ann", 500]])
    wrong = cli("reject", run_id, "--hash", "ffff" if not seen.payload_hash.startswith("ffff") else "0000", db=db)
    assert wrong.returncode == 2 and seen.interrupt_id in wrong.stderr
    out = cli("reject", run_id, "--hash", seen.payload_hash[:8], "--reason", "too much", db=db)
    assert out.returncode == 0, out.stderr
    assert f"reject {seen.interrupt_id}" in out.stdout


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script for a terminal")
def test_approve_on_a_terminal_shows_the_pending_interrupt_and_asks(db, tmp_path):
    run_id, seen = waiting_payment(db, [["ann", 500]])
    env = {**os.environ, "VIGIL_DB": str(db), "VIGIL_WORKFLOWS": "approval_workflows",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    command = f"{shlex.quote(sys.executable)} -m console.cli approve {run_id}"

    def on_a_terminal(answer: str) -> subprocess.CompletedProcess:
        return subprocess.run(["script", "-qec", command, "/dev/null"], cwd=ROOT, env=env,
                              input=answer, capture_output=True, text=True, timeout=60)

    no = on_a_terminal("n\n")
    assert no.returncode == 2 and "not approved; nothing was sent" in no.stdout
    assert seen.interrupt_id in no.stdout and seen.payload_hash in no.stdout
    assert '{"to": "ann", "amount": 500.0}' in no.stdout and "approve this? [y/N]" in no.stdout
    yes = on_a_terminal("y\n")
    assert yes.returncode == 0 and f"approve {seen.interrupt_id} on run {run_id}" in yes.stdout
    assert sum(isinstance(e, InterruptResolved) for e in run(_events(db, run_id))) == 1


def test_headless_run_prints_id_hash_args(db):
    env = {**os.environ, "VIGIL_DB": str(db), "VIGIL_WORKFLOWS": "approval_workflows",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    attached = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", "payments", "--headless",
         "--input", json.dumps({"bills": [["carol", 750]]})],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    for line in attached.stdout:
        lines.append(line)
        if "vigil approve" in line:
            break
    run_id = lines[0].split()[1]
    text = "".join(lines)
    payload = {"tool": "pay", "args": {"to": "carol", "amount": 750.0}}
    digest = canonical_hash(payload)
    assert "1.pay_all#0.approval" in text and digest in text
    assert '"to": "carol"' in text and '"amount": 750.0' in text
    assert f"--interrupt 1.pay_all#0.approval --hash {digest[:12]}" in text
    out = cli("approve", run_id, "--interrupt", "1.pay_all#0.approval", "--hash", digest[:12], db=db)
    assert out.returncode == 0, out.stderr
    rest, err = attached.communicate(timeout=60)
    assert attached.returncode == 0, err
    assert rest.strip().endswith(f"run {run_id}: completed")


# ended runs ------------------------------------------------------------------------------------


def _cancelled_while_waiting(db):
    async def go():
        async with runtime(db, payments) as (store, rt):
            run_id = await rt.start("payments", {"bills": [["bob", 500]]})
            await rt.settle()
            raised = pending(rt, run_id)[0]
            await rt.cancel(run_id, "changed my mind")
            with pytest.raises(InterruptRefused, match=f"run {run_id} has ended \\(cancelled\\)"):
                await rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            return run_id, raised

    return run(go())


def test_a_second_approval_after_the_run_finished_says_already_resolved(db, tmp_path):
    """Two operators approve the same prompt; the run finishes between the two. The second must
    learn that the interrupt they saw was resolved (by someone else), not only that the run ended
    (it said only "has ended": the headless test's stale approve was flaky for that reason)."""
    ledger = tmp_path / "ledger.txt"
    run_id, seen = waiting_payment(db, [["ann", 500]])
    assert cli("approve", run_id, "--interrupt", seen.interrupt_id, db=db).returncode == 0
    assert cli("resume", run_id, db=db, ledger=ledger).returncode == 0
    assert ledger.read_text() == "ann 500.0\n"
    late = cli("approve", run_id, "--interrupt", seen.interrupt_id, db=db)
    assert late.returncode == 2
    assert f"interrupt {seen.interrupt_id} of run {run_id} is already resolved (the run has ended: completed)" in late.stderr, late.stderr


def test_late_answer_to_ended_run_says_run_ended(db):
    run_id, raised = _cancelled_while_waiting(db)
    for extra in (["--interrupt", raised.interrupt_id], []):
        out = cli("approve", run_id, *extra, db=db)
        assert out.returncode == 2 and f"run {run_id} has ended (cancelled)" in out.stderr, out.stderr
        assert "another process" not in out.stderr

    async def direct():  # a runtime that never drove it says the same
        async with runtime(db, payments) as (store, rt):
            with pytest.raises(InterruptRefused, match=f"run {run_id} has ended \\(cancelled\\)"):
                await rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
            with pytest.raises(InterruptRefused, match=f"run {run_id} has ended \\(cancelled\\)"):
                await rt.cancel(run_id)
            return await events_of(store, run_id)

    assert isinstance(run(direct())[-1], RunCancelled)


def test_terminal_closes_interrupts(db):
    run_id, _ = _cancelled_while_waiting(db)
    rows = [json.loads(x) for x in cli("runs", "--json", db=db).stdout.splitlines()]
    assert [(r["run_id"], r["status"], r["pending"]) for r in rows] == [(run_id, "cancelled", 0)]

    async def still_pending():
        async with await Store.open(db) as store:
            return await store.interrupts(run_id)

    assert run(still_pending()) == []
    assert cli("verify", run_id, db=db).returncode == 0


# cancel and approve racing inside the owner ---------------------------------------------------


def test_cancel_and_approve_race_only_one_wins(db):
    rng = random.Random(9)

    async def go():
        outcomes = []
        async with runtime(db, payments) as (store, rt):
            for i in range(30):
                run_id = await rt.start("payments", {"bills": [["bob", 500]]})
                await rt.settle()
                raised = pending(rt, run_id)[0]
                approve = rt.resolve(run_id, raised.interrupt_id, "approve", payload_hash=raised.payload_hash)
                cancel = rt.cancel(run_id, "race")
                calls = [approve, cancel] if rng.random() < 0.5 else [cancel, approve]
                results = await asyncio.gather(*calls, return_exceptions=True)
                await rt.settle()
                for r in results:
                    assert r is None or isinstance(r, InterruptRefused), r
                events = await events_of(store, run_id)
                ends = [n for n, e in enumerate(events) if type(e).__name__ in
                        ("RunCompleted", "RunFailed", "RunCancelled", "RunDiverged")]
                assert len(ends) == 1 and ends[0] == len(events) - 1, [type(e).__name__ for e in events]
                assert (await store.run(run_id)).status in TERMINAL
                outcomes.append([r is None for r in results])
        return outcomes

    outcomes = run(go())
    assert all(sum(o) == 1 for o in outcomes), outcomes
    assert cli("verify", db=db).returncode == 0


def test_verify_flags_event_after_terminal(db):
    async def go():
        async with await Store.open(db) as store:
            await store.append("r", [RunStarted(graph="g"), RunCancelled(reason="stop")], expected_seq=0)
            await store.append("r", [ActionSucceeded(action_id="late")], expected_seq=2)

    run(go())
    out = cli("verify", "r", db=db)
    assert out.returncode == 1 and "run r seq 3:" in out.stdout and "after the run ended" in out.stdout, out.stdout


# declared choices ------------------------------------------------------------------------------


def test_answer_must_be_a_declared_choice(db):
    async def go():
        async with runtime(db, pick, triage.graph) as (store, rt):
            run_id = await rt.start("pick")
            triage_id = await rt.start("triage", triage.SAMPLE_INPUT)
            await rt.settle()
            asked = pending(rt, run_id)[0]
            question = pending(rt, triage_id)[0].interrupt_id
            with pytest.raises(InterruptRefused, match="'blue' is not one of the choices \\(red, green\\)"):
                await rt.resolve(run_id, asked.interrupt_id, "answer", "blue", payload_hash=asked.payload_hash)
            await rt.resolve(run_id, asked.interrupt_id, "answer", "green", payload_hash=asked.payload_hash)
            await rt.settle()
            return triage_id, question, (await store.state_at(run_id)).state

    triage_id, question, state = run(go())
    assert state == {"colour": "green"}
    out = cli("approve", triage_id, "--interrupt", question, "--answer", "prod", db=db)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "'prod' is not one of the choices (production, staging)" in out.stderr
    out = cli("approve", triage_id, "--interrupt", question, "--answer", "production", db=db)
    assert out.returncode == 0, out.stderr


@pytest.mark.sqlite_only  # a SQLite schema v2 file
def test_an_older_database_closes_the_interrupts_of_ended_runs(db):
    """A database written before ends closed interrupts (schema v2) is mended when opened."""
    import sqlite3

    from kernel.log.sqlite import schema

    run_id, raised = _cancelled_while_waiting(db)
    with sqlite3.connect(db) as conn:  # as a v2 vigil left it: the interrupt still pending
        conn.execute("UPDATE interrupts SET resolved_seq = NULL")
        conn.execute("UPDATE runs SET pending = 1")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")

    async def open_with_write_access():
        async with await Store.open(db):
            pass

    run(open_with_write_access())
    rows = [json.loads(x) for x in cli("runs", "--json", db=db).stdout.splitlines()]
    assert [(r["status"], r["pending"]) for r in rows] == [("cancelled", 0)]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT resolved_seq FROM interrupts").fetchall() == [(4,)]
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(schema.SCHEMA_VERSION)
    assert cli("verify", run_id, db=db).returncode == 0


def test_a_run_lost_just_before_close_is_released_by_close(db):
    """close() cancels the task releasing a lost run; it used to drop that run from what it
    released (the cancelled task took itself out of the list first), so the run stayed owned
    by a process that was gone, until its lease ran out."""

    async def go():
        async with await Store.open(db) as store:
            rt = Runtime(store, registry(payments))
            await rt.__aenter__()
            run_id = await rt.start("payments", {"bills": [["bob", 500]]})
            await rt.settle()
            assert (await store.run(run_id)).owner == rt.owner
            rt.lost(run_id, "its appends failed")  # the release task is made, not yet run
            await rt.close()
            return (await store.run(run_id)).owner

    assert run(go()) is None
