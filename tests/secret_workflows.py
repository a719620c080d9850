"""Graphs that leak secrets into every place the log has, for tests/test_secrets_everywhere.py.

Every place gets its own copy of every kind of secret (a 4-letter tag is part of each value), so
a test can say exactly which kind leaked where. The owner process of the cross-process test
imports this module too (PYTHONPATH includes tests/).
"""

from __future__ import annotations

import string

from kernel.graph import END, START, Graph
from kernel.secrets import Secret
from kernel.tools import ToolRejected, tool

PLACES = [
    "run input", "run labels", "interrupt title", "interrupt payload", "answer",
    "tool args raw", "tool args Secret", "tool output str", "tool output bytes",
    "action error", "node error", "uncaught tool error", "reject reason", "edit", "cancel reason",
    "cli answer", "cli edit", "cli reject reason", "cli cancel reason", "owner tool args Secret",
]
_TAGS = {p: "".join(string.ascii_uppercase[(i // 26 ** k) % 26] for k in range(3)) + "Q"
         for i, p in enumerate(PLACES)}


def secrets_for(place: str) -> dict[str, str]:
    """One value of every kind, unique to `place`: the strings searched for in the raw files."""
    t = _TAGS[place]
    return {
        "openai": f"sk-proj-{t}A1b2C3d4E5f6G7h8I9j0K1l2",
        "anthropic": f"sk-ant-api03-{t}Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1",
        "aws-access-key": f"AKIA{t}IOSFODNN7EXA",
        "aws-secret": f"{t}wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPL",
        "github": f"ghp_{t}a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6",
        "slack": f"xoxb-1234567890-{t}abcdefghijkl",
        "google": f"AIza{t}SyD4xY7zQ1wE2rT3yU4iO5pA6sD7fGh",
        "jwt": f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{t}IxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36P",
        "bearer": f"{t}opaqueBearerToken0987654321",
        "private-key": f"MIIEow{t}" + "x1Y2" * 12,
        "url-password": f"pgPw{t}9f8e7d",
        "password": f"hunter2{t}horse",
        "token": f"tok{t}5e4d3c",
        "api-key": f"key{t}0f1e2d",
        "authorization": f"dXNl{t}cjpwYXNz",
        "client-secret": f"cs{t}7h6g5f",
        "secret-object": f"vault{t}shapeless42",  # only ever inside a Secret()
    }


def text_form(place: str) -> str:
    """Every kind of secret (except Secret objects) as free text, the way errors and titles carry them."""
    s = secrets_for(place)
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{s['private-key']}\n-----END RSA PRIVATE KEY-----"
    return (
        f"openai {s['openai']} anthropic {s['anthropic']} aws {s['aws-access-key']} "
        f"aws_secret_access_key={s['aws-secret']} github {s['github']} slack {s['slack']} "
        f"google {s['google']} jwt {s['jwt']} sent with Bearer {s['bearer']} key file {pem} "
        f"dsn postgres://app:{s['url-password']}@db.example.com:5432/app password={s['password']} "
        f"token: {s['token']} api_key={s['api-key']} Authorization: Basic {s['authorization']} "
        f"client_secret={s['client-secret']}"
    )


def structured_form(place: str, *, objects: bool = False) -> dict:
    """Every kind in a dict: shaped ones under plain keys, shapeless ones under secret-named keys."""
    s = secrets_for(place)
    out = {
        "model": {"openai": s["openai"], "claude": s["anthropic"]},
        "aws": {"aws_access_key_id": s["aws-access-key"], "aws_secret_access_key": s["aws-secret"]},
        "notes": [s["github"], s["slack"], s["google"], s["jwt"]],
        "headers": {"X-Forward": f"Bearer {s['bearer']}", "Authorization": f"Basic {s['authorization']}"},
        "pem": f"-----BEGIN PRIVATE KEY-----\n{s['private-key']}\n-----END PRIVATE KEY-----",
        "dsn": f"mysql://root:{s['url-password']}@10.0.0.5/prod",
        "password": s["password"],
        "token": s["token"],
        "apiKey": s["api-key"],
        "client_secret": s["client-secret"],
        "text": text_form(place),
    }
    if objects:
        out["vault"] = Secret(s["secret-object"])
    return out


def secret_args(place: str) -> dict:
    """Every kind wrapped in Secret(), as a node would pass them to a tool."""
    return {kind: Secret(value) for kind, value in secrets_for(place).items()}


SEEN: dict = {}  # what the tools received, in this process


@tool(requires_approval=True, idempotent=True)
async def leak(raw: dict, hidden: dict, key: str) -> dict:
    """Receives secrets raw and as Secret(); returns them in its output."""
    SEEN.update(raw=raw, hidden=hidden, key=key)
    return {"text": text_form("tool output str"), "data": structured_form("tool output str")}


@tool(idempotent=True)
async def blob() -> bytes:
    return text_form("tool output bytes").encode()


@tool(idempotent=True)
async def boom() -> None:
    raise RuntimeError(text_form("action error"))


@tool(idempotent=True)
async def boom_uncaught() -> None:
    raise RuntimeError(text_form("uncaught tool error"))


@tool(requires_approval=True, idempotent=True)
async def risky(note: str) -> str:
    return "ran"


@tool(requires_approval=True, idempotent=True)
async def configure(settings: dict) -> dict:
    SEEN["configure"] = settings
    return {"ok": True}


TOOLS = [leak, blob, boom, boom_uncaught, risky, configure]


async def _everything(state, ctx):
    answer = await ctx.interrupt(
        text_form("interrupt title"),
        {"ask": structured_form("interrupt payload", objects=True)},
    )
    out = await ctx.tool(
        "leak", raw=structured_form("tool args raw"), hidden=secret_args("tool args Secret"),
        key=Secret(secrets_for("tool args Secret")["openai"]),
    )
    data = await ctx.tool("blob")
    try:
        await ctx.tool("boom")
        err = None
    except Exception as exc:
        err = str(exc)
    try:
        await ctx.tool("risky", note="go")
        rejected = None
    except ToolRejected as exc:
        rejected = str(exc)
    conf = await ctx.tool("configure", settings={"mode": "safe"})
    return {"answer": answer, "out": out, "blob": data, "err": err, "rejected": rejected, "conf": conf}


everything = Graph("everything", tools=TOOLS)
everything.add_node("work", _everything)
everything.add_edge(START, "work")
everything.add_edge("work", END)


async def _fail_node(state, ctx):
    raise RuntimeError(text_form("node error"))


node_fails = Graph("node_fails")
node_fails.add_node("work", _fail_node)
node_fails.add_edge(START, "work")
node_fails.add_edge("work", END)


async def _fail_tool(state, ctx):
    await ctx.tool("boom_uncaught")


tool_fails = Graph("tool_fails", tools=TOOLS)
tool_fails.add_node("work", _fail_tool)
tool_fails.add_edge(START, "work")
tool_fails.add_edge("work", END)


async def _wait(state, ctx):
    await ctx.interrupt("hold on", {"n": 1})


waits = Graph("waits")
waits.add_node("work", _wait)
waits.add_edge(START, "work")
waits.add_edge("work", END)


async def _asker(state, ctx):
    answer = await ctx.interrupt("a question", {"q": "which?"})
    conf = await ctx.tool(
        "configure", settings={"mode": "a", "creds": secret_args("owner tool args Secret")}
    )
    try:
        await ctx.tool("risky", note="go")
    except ToolRejected:
        pass
    return {"answer": answer, "conf": conf}


asker = Graph("asker", tools=TOOLS)
asker.add_node("work", _asker)
asker.add_edge(START, "work")
asker.add_edge("work", END)

GRAPHS = [everything, node_fails, tool_fails, waits, asker]
