"""Console test fixtures: a deterministic log (fixed ids and clock) and app factories."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from console.app import VigilApp  # noqa: E402
from kernel.codec import canonical_hash  # noqa: E402
from kernel.events import (  # noqa: E402
    ActionRequested,
    ActionSucceeded,
    InterruptRaised,
    Patch,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from console.workflows import default_registry  # noqa: E402
from kernel.state import apply, state_hash  # noqa: E402
from kernel.store import Store  # noqa: E402

T0 = 1_790_000_000_000_000_000  # a fixed clock: 2026-09-21
NOW = T0 + 95 * 10**9


def _support_events(waiting: bool) -> list:
    state: dict = {}
    events: list = []
    start = (Patch("extend", "messages", [{"role": "user", "content": "My order A-7731 arrived broken."}]),)
    apply(state, start)
    events.append(RunStarted(graph="support", input={"order": "A-7731"}, update=start, start_at=("think",)))

    def step(step_id, node, update, nxt):
        apply(state, update)
        return StepCompleted(step_id=step_id, node=node, update=update, next=nxt, state_hash=state_hash(state))

    events += [
        StepStarted(step_id="1.think", node="think"),
        ActionRequested(action_id="1.think#0", step_id="1.think", kind="llm", name="scripted:support",
                        input={"messages": 1}),
        ActionSucceeded(action_id="1.think#0", output={"role": "assistant", "content": "Let me look up A-7731."}),
        step("1.think", "think", (Patch("extend", "messages", [{"role": "assistant", "content": "Let me look up A-7731."}]),), ("act",)),
        StepStarted(step_id="2.act", node="act"),
        ActionRequested(action_id="2.act#0", step_id="2.act", kind="tool", name="lookup_order", input={"order": "A-7731"}),
        ActionSucceeded(action_id="2.act#0", output={"order": "A-7731", "amount": 89.0, "item": "blender"}),
        step("2.act", "act", (Patch("set", "order", {"order": "A-7731", "amount": 89.0}),), ("think",)),
        StepStarted(step_id="3.act", node="act"),
    ]
    payload = {"tool": "refund", "args": {"order": "A-7731", "amount": 89.0, "reason": "arrived damaged"}}
    events.append(InterruptRaised(interrupt_id="3.act#0.approval", step_id="3.act", kind="approval",
                                  title="refund needs your approval", payload=payload, payload_hash=canonical_hash(payload)))
    if not waiting:
        events.pop()
        events += [
            ActionRequested(action_id="3.act#0", step_id="3.act", kind="tool", name="refund", input=payload["args"]),
            ActionSucceeded(action_id="3.act#0", output={"refund_id": "rf-5521"}),
            step("3.act", "act", (Patch("set", "refund_id", "rf-5521"),), ()),
            RunCompleted(output={"refund_id": "rf-5521"}),
        ]
    return events


async def build_log(path: Path) -> None:
    """Three runs with fixed ids and times: one waiting for approval, one completed, one failed."""
    async with await Store.open(path) as store:
        plans = [
            ("run-support-wait", _support_events(True), 0),
            ("run-support-done", _support_events(False), 10),
            ("run-deploy-fail", [
                RunStarted(graph="deploy", input={"service": "checkout"}, start_at=("test",)),
                StepStarted(step_id="1.test", node="test"),
                StepFailed(step_id="1.test", node="test", attempt=1, error="ToolError: suite timed out"),
                RunFailed(error="node test failed after 1 attempt(s)"),
            ], 20),
        ]
        for run_id, events, offset in plans:
            for i, event in enumerate(events):
                await store.append(run_id, [event], expected_seq=i, ts_ns=T0 + (offset + i) * 10**9)


@pytest.fixture
def log_db(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "console.db"
    asyncio.run(build_log(path))
    return path


@pytest.fixture
def make_app(log_db):
    def make(theme: str = "vigil-dark", **kw) -> VigilApp:
        return VigilApp(log_db, default_registry(), theme=theme, now=lambda: NOW, adopt=False, **kw)

    return make
