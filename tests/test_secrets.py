"""Secrets planted in inputs, tool arguments and outputs never reach the database or its WAL."""

from kernel.graph import END, START, Graph
from kernel.tools import tool
from runtime_helpers import run, runtime, stored_bytes

OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
ANTHROPIC = "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1"
BEARER = "Bearer " + "eyJhbGciOiJIUzI1NiJ9abcdefghijklmnop"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a" * 36
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA75" + "x" * 64 + "\n-----END RSA PRIVATE KEY-----"
SECRETS = [OPENAI, ANTHROPIC, BEARER.split()[1], AWS, GITHUB, "MIIEowIBAAKCAQEA75"]


def test_secrets_never_reach_the_log(db):
    seen_by_tool = {}

    @tool(idempotent=True)
    async def call_api(url: str, headers: dict) -> dict:
        seen_by_tool.update(headers)  # the tool itself gets the real value
        return {"status": 200, "echo": f"token={OPENAI}", "key_file": PEM, "aws": AWS}

    g = Graph("leaky", tools=[call_api])

    async def work(state, ctx):
        out = await ctx.tool("call_api", url="https://api.example.com", headers={"Authorization": BEARER, "X-Gh": GITHUB})
        answer = await ctx.interrupt("continue?", {"context": out, "config": state["config"]})
        return {"result": out, "answer": answer, "note": f"used {ANTHROPIC}"}

    g.add_node("work", work)
    g.add_edge(START, "work")
    g.add_edge("work", END)

    async def go():
        async with runtime(db, g) as (store, rt):
            run_id = await rt.start("leaky", {"config": {"api_key": OPENAI, "other": "fine"}})
            await rt.settle()
            ask = rt.drivers[run_id].view.pending_interrupts()[0]
            await rt.resolve(run_id, ask.interrupt_id, "answer", f"yes, use {AWS}", payload_hash=ask.payload_hash)
            await rt.settle()
            state = (await store.state_at(run_id)).state
            raw = await stored_bytes(db)  # while the store is open: the WAL holds the recent pages
            return await store.run(run_id), state, raw

    info, state, raw = run(go())
    assert info.status == "completed"
    assert seen_by_tool["Authorization"] == BEARER
    assert state["config"]["api_key"] == "[REDACTED:openai-key]" and state["config"]["other"] == "fine"
    assert state["result"]["key_file"] == "[REDACTED:private-key]"
    assert state["note"] == "used [REDACTED:anthropic-key]"
    assert b"[REDACTED:openai-key]" in raw  # what was read holds the redacted events
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
