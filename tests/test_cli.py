"""The CLI contract: outputs, JSON shapes, exit codes, one-line errors."""

import asyncio
import json
import subprocess
import sys

import pytest

from cli_helpers import ROOT, vigil
from helpers import counter_steps, record_steps
from kernel.events import ActionSucceeded, RunCompleted
from kernel.store import Store


@pytest.fixture
def two_runs(db):
    async def go():
        async with await Store.open(db) as store:
            await record_steps(store, "abc-111", counter_steps(3), graph="support")
            await record_steps(store, "abc-222", counter_steps(2), graph="deploy")
            last = await store.last_seq("abc-222")
            await store.append("abc-222", [RunCompleted(output={"ok": True})], expected_seq=last)

    asyncio.run(go())
    return db


def test_runs_table_and_json(two_runs):
    out = vigil("runs", db=two_runs)
    lines = out.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["RUN", "GRAPH", "STATUS"]
    assert lines[1].split()[:3] == ["abc-222", "deploy", "completed"]
    assert lines[2].split()[:3] == ["abc-111", "support", "running"]
    rows = [json.loads(x) for x in vigil("runs", "--json", "--status", "running", db=two_runs).stdout.splitlines()]
    assert [r["run_id"] for r in rows] == ["abc-111"]
    assert set(rows[0]) >= {"run_id", "graph", "status", "last_seq", "pending", "created_ns"}
    assert vigil("runs", "--json", "--graph", "deploy", db=two_runs).stdout.count(b"\n") == 1


def test_runs_table_gives_a_failed_runs_category_its_own_column(db):
    from kernel.events import ErrorInfo, RunFailed, RunStarted

    async def go():
        async with await Store.open(db) as store:
            await store.append("run-tool", [RunStarted(graph="support"), RunFailed(
                error="lookup broke", error_info=ErrorInfo(code="tool_error", category="tool"))], expected_seq=0)
            await store.append("run-ok", [RunStarted(graph="support"), RunCompleted(output={})], expected_seq=0)

    asyncio.run(go())
    out = vigil("runs", db=db)
    header, *rows = out.stdout.decode().splitlines()
    names = header.split()
    assert names[:4] == ["RUN", "GRAPH", "STATUS", "ERROR"] and names[-1] == "OWNER"
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells["run-tool"][2:4] == ["failed", "tool"] and cells["run-ok"][2:4] == ["completed", "-"]
    assert cells["run-tool"][-1] == "-"  # an ended run's owner, not its category
    # every column under its title
    at = header.index("ERROR")
    assert rows[0][at - 2:at] == "  " and rows[0][at] != " "


def test_events_by_prefix_range_and_type(two_runs):
    out = vigil("events", "abc-1", "--from", "3", "--to", "5", "--json", db=two_runs)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [3, 4, 5]
    assert all(r["run_id"] == "abc-111" for r in rows)
    only = [json.loads(x)["type"] for x in vigil("events", "abc-111", "--type", "StepCompleted", "--json", db=two_runs).stdout.splitlines()]
    assert only == ["StepCompleted"] * 3
    # Types are matched whatever their case: `--type stepcompleted` is what a user types.
    folded = [json.loads(x)["type"] for x in vigil("events", "abc-111", "--type", "stepcompleted", "--json", db=two_runs).stdout.splitlines()]
    assert folded == only


def test_ambiguous_and_unknown_run(two_runs):
    out = vigil("events", "abc", db=two_runs)
    assert out.returncode == 2 and out.stderr.decode() == "vigil: 'abc' matches more than one run; give more of the id\n"
    out = vigil("state", "zzz", db=two_runs)
    assert out.returncode == 2 and out.stderr.decode() == "vigil: no run 'zzz'\n"


def test_state_at_and_json(two_runs):
    out = vigil("state", "abc-111", "--at", "5", "--json", db=two_runs)
    doc = json.loads(out.stdout)
    assert doc == {"run_id": "abc-111", "seq": 5, "state": {"i": 1, "log": ["step 0", "step 1"]}, "problems": []}


def test_bad_arguments_are_one_line_not_a_traceback(two_runs):
    out = vigil("state", "abc-111", "--at", "soon", db=two_runs)
    assert out.returncode == 2 and b"Traceback" not in out.stderr and b"invalid int value" in out.stderr


def test_help_lists_every_command():
    out = vigil("--help")
    for command in ["demo", "runs", "events", "state", "verify", "export", "import"]:
        assert command in out.stdout.decode()


def test_events_into_a_closed_pipe_is_quiet(db):
    async def go():
        async with await Store.open(db) as store:
            await store.append("long", [ActionSucceeded(action_id=str(i)) for i in range(40_000)], expected_seq=0)

    asyncio.run(go())
    env_cmd = f"{sys.executable} -m console.cli events long | head -1"
    out = subprocess.run(env_cmd, shell=True, cwd=ROOT, capture_output=True, env={"VIGIL_DB": str(db), "PATH": "/usr/bin:/bin"})
    assert out.stdout.decode().split()[0] == "1"
    assert out.stderr == b""


def test_global_options_work_after_the_command_too(two_runs, tmp_path):
    out = vigil("runs", "--db", str(two_runs), "--json")
    assert out.returncode == 0 and out.stdout.count(b"\n") == 2
    out = vigil("runs", "--db", str(tmp_path / "none.db"), db=two_runs)  # the later --db wins
    assert out.returncode == 2 and b"no database at" in out.stderr
