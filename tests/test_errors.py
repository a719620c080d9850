"""Structured errors: each failure is classified where it happens (a model's HTTP 429, a broken
connection, a tool's exception, a rejection, a timeout, a node's own NodeError), the class rides
ActionFailed -> StepFailed -> RunFailed, the runs projection keeps a failed run's category (filled
by both writers, backfilled by the migration) and `vigil runs --error-category` filters on it."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import msgspec
import pytest

import note_workflows as wf
from cli_helpers import vigil
from fake_providers import Provider
from kernel.codec import decode, encode
from kernel.errors import NodeError
from kernel.events import ActionFailed, ErrorInfo, RunFailed, RunStarted, StepFailed
from kernel.graph import END, START, Graph
from runtime_helpers import events_of, pending, run, runtime, stored_bytes


async def _run_to_end(db, graph: Graph, input=None, *, decide=None):
    async with runtime(db, graph) as (store, rt):
        run_id = await rt.start(graph.name, input)
        await rt.settle()
        if decide is not None:
            raised = pending(rt, run_id)[0]
            await rt.resolve(run_id, raised.interrupt_id, decide, "not today", payload_hash=raised.payload_hash)
            await rt.settle()
        return run_id, await store.run(run_id), await events_of(store, run_id), await stored_bytes(db)


def _of(events: list, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def test_a_429_from_the_provider_fails_the_run_as_rate_limit(new_log):
    from kernel.agents.agent import agent_graph
    from kernel.agents.models.openai import OpenAIChat

    db = new_log()
    provider = Provider(lambda path, body: (429, [json.dumps({"error": {"message": "slow down"}}).encode()], False))
    try:
        graph = agent_graph("chat", model=OpenAIChat("m", base_url=provider.url + "/v1", key_env=None),
                            tools=[], system="be brief")
        run_id, info, events, _ = run(_run_to_end(db, graph, {"messages": [{"role": "user", "content": "hi"}]}))
    finally:
        provider.close()
    expected = ErrorInfo(code="http_429", category="rate_limit", retryable=True, message="openai answered 429: slow down")
    assert info.status == "failed" and info.error_category == "rate_limit"
    # Each attempt of the node's retry policy: the model call fails, then the step.
    assert [a.error_info for a in _of(events, ActionFailed)] == [expected] * 3
    assert [s.error_info for s in _of(events, StepFailed)] == [expected] * 3
    assert _of(events, RunFailed)[0].error_info == expected
    assert len(provider.requests) == 3

    async def listed():
        from kernel.store import Store

        async with await Store.open(db, readonly=True) as store:
            return ([r.run_id for r in await store.runs(error_category="rate_limit")],
                    await store.runs(error_category="tool"), await store.count_runs(error_category="rate_limit"))

    assert run(listed()) == ([run_id], [], 1)
    out = vigil("runs", "--error-category", "rate_limit", "--json", db=db)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0 and [(r["run_id"], r["error_category"]) for r in rows] == [(run_id, "rate_limit")]
    out = vigil("runs", db=db)
    header, *rows = out.stdout.decode().splitlines()
    row = next(x for x in rows if x.startswith(run_id)).split()
    assert row[header.split().index("STATUS")] == "failed" and row[header.split().index("ERROR")] == "rate_limit"


def test_a_refused_connection_is_transport(new_log):
    from kernel.agents.models.openai import OpenAIChat

    g = Graph("offline")

    async def ask(state, ctx):
        model = OpenAIChat("m", base_url="http://127.0.0.1:9/v1", key_env=None)
        return {"reply": await ctx.llm(model, [{"role": "user", "content": "hi"}])}

    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    _, info, events, _ = run(_run_to_end(new_log(), g))
    failed = _of(events, RunFailed)[0].error_info
    assert info.error_category == "transport"
    assert (failed.category, failed.code, failed.retryable) == ("transport", "connection_failed", True)


def test_a_tool_exception_is_tool_and_its_text_is_redacted(new_log):
    db = new_log()
    token = wf.TOKEN
    _, info, events, stored = run(_run_to_end(db, wf.tool_fails))
    action = _of(events, ActionFailed)[0]
    assert action.error_info.category == "tool" and action.error_info.code == "runtime_error"
    assert _of(events, StepFailed)[0].error_info == action.error_info
    assert info.error_category == "tool"
    assert "the disk broke" in action.error_info.message
    assert token not in action.error_info.message and token.encode() not in stored


def test_a_rejection_is_policy(new_log):
    _, info, events, _ = run(_run_to_end(new_log(), wf.gated, decide="reject"))
    failed = _of(events, RunFailed)[0].error_info
    assert info.error_category == "policy" and (failed.code, failed.category) == ("rejected", "policy")
    assert "not today" in failed.message


def test_a_timeout_is_timeout(new_log):
    _, info, events, _ = run(_run_to_end(new_log(), wf.slow))
    assert info.error_category == "timeout"
    assert _of(events, StepFailed)[0].error_info.code == "timeout"


def test_a_node_error_carries_its_own_info(new_log):
    _, info, events, _ = run(_run_to_end(new_log(), wf.own_error))
    assert info.error_category == "rate_limit"
    assert _of(events, RunFailed)[0].error_info == ErrorInfo(
        code="quota", category="rate_limit", retryable=False, message="the quota for today is used up",
    )
    with pytest.raises(ValueError, match="not one of"):
        NodeError("x", code="y", category="weather")


def test_anything_else_is_internal_and_the_step_limit_is_policy(new_log):
    _, info, events, _ = run(_run_to_end(new_log(), wf.plain))
    assert info.error_category == "internal" and _of(events, RunFailed)[0].error_info.code == "key_error"

    g = Graph("loop", step_limit=3)

    async def spin(state, ctx):
        return {"n": state.get("n", 0) + 1}

    g.add_node("spin", spin)
    g.add_edge(START, "spin")
    g.add_branch("spin", lambda s: "spin" if s["n"] < 100 else END, ["spin", END])
    _, info, events, _ = run(_run_to_end(new_log(), g))
    assert info.error_category == "policy" and _of(events, RunFailed)[0].error_info.code == "step_limit"


def test_old_bodies_without_error_info_still_decode():
    old = msgspec.msgpack.Encoder()
    for body, cls in (
        ({"type": "RunFailed", "error": "boom"}, RunFailed),
        ({"type": "StepFailed", "step_id": "1.a", "node": "a", "attempt": 1, "error": "boom"}, StepFailed),
        ({"type": "ActionFailed", "action_id": "1.a#0", "error": "boom", "retryable": True}, ActionFailed),
    ):
        raw = old.encode(body)
        import zlib

        event = decode(body["type"], raw, zlib.crc32(raw))
        assert isinstance(event, cls) and event.error == "boom" and event.error_info is None
    # A category this vigil does not know (a newer writer's) still decodes.
    body, crc = encode(RunFailed(error="x", error_info=ErrorInfo(code="c", category="weather")))
    assert decode("RunFailed", body, crc).error_info.category == "weather"


def test_an_old_body_in_a_log_projects_as_internal(new_log):
    db = new_log()

    async def go():
        from kernel.store import Store

        async with await Store.open(db) as store:
            await store.append("r1", [RunStarted(graph="g"), RunFailed(error="boom")], expected_seq=0)
            return await store.run("r1"), await store.runs(error_category="internal")

    info, internal = run(go())
    assert info.status == "failed" and info.error_category == "internal"
    assert [r.run_id for r in internal] == ["r1"]


_BACKFILL = [
    ("rl", [RunStarted(graph="g"), RunFailed(error="429", error_info=ErrorInfo(code="http_429", category="rate_limit"))], "failed"),
    ("old", [RunStarted(graph="g"), RunFailed(error="boom")], "failed"),
    ("ok", [RunStarted(graph="g")], "completed"),
]


def _expect_backfilled(rows: dict) -> None:
    assert rows == {"rl": "rate_limit", "old": "internal", "ok": None}


@pytest.mark.sqlite_only
def test_the_sqlite_migration_backfills_categories(tmp_path):
    from kernel.log.sqlite import schema

    db = tmp_path / "v3.db"
    conn = schema.connect(db)
    schema.migrate(conn, upto=3)
    for run_id, events, status in _BACKFILL:
        for seq, ev in enumerate(events, 1):
            body, crc = encode(ev)
            conn.execute("INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc) VALUES (?,?,?,?,?,?,?)",
                         (run_id, seq, seq, type(ev).__name__, None, body, crc))
        conn.execute("INSERT INTO runs(run_id, graph, status, created_ns) VALUES (?, 'g', ?, 1)", (run_id, status))
    conn.close()

    async def go():
        from kernel.store import Store

        async with await Store.open(db) as store:
            return {r.run_id: r.error_category for r in await store.runs()}

    _expect_backfilled(run(go()))
    assert sqlite3.connect(db).execute("SELECT value FROM meta").fetchone()[0] == str(schema.SCHEMA_VERSION)


def test_the_postgres_migration_backfills_categories(pg_dsn):
    import psycopg

    from kernel.log.postgres import schema

    async def go():
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            await schema.migrate(conn, upto=1)
            async with conn.transaction():
                for run_id, events, status in _BACKFILL:
                    for seq, ev in enumerate(events, 1):
                        body, crc = encode(ev)
                        await conn.execute(
                            "INSERT INTO vigil.events(run_id, seq, ts_ns, type, step_id, body, crc)"
                            " VALUES (%s, %s, %s, %s, NULL, %s, %s)", (run_id, seq, seq, type(ev).__name__, body, crc))
                    await conn.execute("INSERT INTO vigil.runs(run_id, graph, status, created_ns) VALUES (%s, 'g', %s, 1)",
                                       (run_id, status))
        from kernel.store import Store

        async with await Store.open(pg_dsn) as store:
            return {r.run_id: r.error_category for r in await store.runs()}

    _expect_backfilled(run(go()))


def test_cli_unknown_error_category_is_one_line_exit_2(tmp_path):
    db = tmp_path / "e.db"
    run(_run_to_end(db, wf.plain))
    out = vigil("runs", "--error-category", "weather", db=db)
    err = out.stderr.decode()
    assert out.returncode == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "is not a category" in err and "rate_limit" in err
    out = vigil("runs", "--error-category", "internal", db=db)
    assert out.returncode == 0 and len(out.stdout.decode().splitlines()) == 2  # header and the run


def test_a_child_failure_keeps_the_childs_category(new_log):
    db = new_log()
    parent = Graph("parent")

    async def spawn(state, ctx):
        return {"r": await ctx.child("own_error")}

    parent.add_node("spawn", spawn)
    parent.add_edge(START, "spawn")
    parent.add_edge("spawn", END)

    async def go():
        async with runtime(db, parent, wf.own_error) as (store, rt):
            run_id = await rt.start("parent")
            for _ in range(50):
                await rt.settle()
                if (await store.run(run_id)).status == "failed":
                    break
                await asyncio.sleep(0.05)
            return await store.run(run_id), await events_of(store, run_id)

    info, events = run(go())
    assert info.status == "failed" and info.error_category == "rate_limit"
    assert _of(events, ActionFailed)[0].error_info.code == "child_failed"


@pytest.mark.parametrize("status, category", [
    (429, "rate_limit"), (529, "rate_limit"), (503, "transport"), (504, "timeout"), (401, "policy"), (400, "internal"),
])
def test_a_providers_status_is_classified_by_the_client(status, category):
    from kernel.agents.models import ModelError
    from kernel.agents.models.openai import OpenAIChat

    provider = Provider(lambda path, body: (status, [json.dumps({"error": {"message": "no"}}).encode()], False))
    try:
        model = OpenAIChat("m", base_url=provider.url + "/v1", key_env=None)
        with pytest.raises(ModelError) as raised:
            asyncio.run(model.complete([{"role": "user", "content": "hi"}], [], lambda token: None))
    finally:
        provider.close()
    info = raised.value.error_info
    assert (info.code, info.category) == (f"http_{status}", category)
    assert info.retryable == raised.value.retryable


def test_exceptions_without_their_own_info_are_classified_by_type():
    import httpx

    from kernel.errorinfo import classify
    from kernel.errors import ToolError, ToolInputError, ToolRejected

    assert classify(httpx.ReadTimeout("slow")).category == "timeout"
    assert classify(httpx.ConnectError("refused")).category == "transport"
    assert classify(TimeoutError()).category == "timeout"
    assert classify(ToolRejected("no")).category == "policy"
    assert classify(ToolInputError("bad")).category == "tool"
    assert classify(ToolError("broke", retryable=True)).retryable is True
    assert classify(ValueError("x"), default="tool") == ErrorInfo(code="value_error", category="tool", message="x")
    assert classify(ValueError("x")).category == "internal"


def test_every_field_of_an_error_info_is_in_its_json_even_the_defaults():
    """A script reads error_info["category"]: an internal, non-retryable failure used to be
    written without its category and retryable (omit_defaults), so the key was missing."""
    from kernel.codec import to_builtins

    body = to_builtins(RunFailed(error="boom", error_info=ErrorInfo(code="runtime_error", message="boom")))
    assert body["error_info"] == {"code": "runtime_error", "category": "internal", "retryable": False,
                                  "message": "boom"}
