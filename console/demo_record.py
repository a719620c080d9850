"""A scripted support-agent run, recorded into the log the way the runtime will record it.

This stands in for the demo workflows until the graph runtime lands (issue 3): every event goes
through the real store, and every state hash is the hash of the real fold.
"""

from __future__ import annotations

import getpass
import os
import socket

from kernel.events import (
    ActionRequested,
    ActionSucceeded,
    Actor,
    InterruptRaised,
    InterruptResolved,
    Patch,
    RunCompleted,
    RunStarted,
    StepCompleted,
    StepStarted,
)
from kernel.codec import canonical_hash
from kernel.ids import new_run_id
from kernel.state import apply, state_hash
from kernel.store import Store

__all__ = ["record_demo_run"]

_TICKET = {"customer": "c-1042", "order": "A-7731", "text": "My blender arrived broken."}


def _actor() -> Actor:
    return Actor(
        user=getpass.getuser(),
        uid=os.getuid(),
        host=socket.gethostname(),
        pid=os.getpid(),
        ssh_connection=os.environ.get("SSH_CONNECTION"),
    )


async def record_demo_run(store: Store) -> str:
    run_id = new_run_id()
    state: dict = {}
    seq = 0

    async def emit(*events) -> None:
        nonlocal seq
        seq = await store.append(run_id, list(events), expected_seq=seq)

    def step(step_id: str, node: str, update: tuple, nxt: tuple) -> StepCompleted:
        apply(state, update)
        return StepCompleted(
            step_id=step_id, node=node, update=update, next=nxt, state_hash=state_hash(state)
        )

    start = (Patch("set", "ticket", _TICKET), Patch("set", "messages", []))
    apply(state, start)
    await emit(RunStarted(graph="support", input=_TICKET, update=start, labels={"demo": "yes"}))

    await emit(StepStarted(step_id="1.classify", node="classify"))
    await emit(ActionRequested(action_id="1.classify#0", step_id="1.classify", kind="llm",
                               name="scripted", input={"prompt": _TICKET["text"]}))
    await emit(ActionSucceeded(action_id="1.classify#0", output={"intent": "refund"}))
    await emit(step("1.classify", "classify",
                    (Patch("set", "intent", "refund"),
                     Patch("append", "messages", {"role": "assistant", "content": "Intent: refund"})),
                    ("lookup",)))

    await emit(StepStarted(step_id="2.lookup", node="lookup"))
    order = {"order": "A-7731", "amount": 89.0, "paid": "card"}
    await emit(ActionRequested(action_id="2.lookup#0", step_id="2.lookup", kind="tool",
                               name="lookup_order", input={"order": "A-7731"}))
    await emit(ActionSucceeded(action_id="2.lookup#0", output=order))
    await emit(step("2.lookup", "lookup", (Patch("set", "order", order),), ("refund",)))

    await emit(StepStarted(step_id="3.refund", node="refund"))
    args = {"order": "A-7731", "amount": 89.0, "reason": "arrived broken"}
    await emit(InterruptRaised(interrupt_id="3.refund#0", step_id="3.refund", kind="approval",
                               title="refund 89.00 on order A-7731",
                               payload={"tool": "refund", "args": args},
                               payload_hash=canonical_hash({"tool": "refund", "args": args})))
    await emit(InterruptResolved(interrupt_id="3.refund#0", decision="approve",
                                 payload_hash=canonical_hash({"tool": "refund", "args": args}),
                                 actor=_actor()))
    await emit(ActionRequested(action_id="3.refund#1", step_id="3.refund", kind="tool",
                               name="refund", input=args, idempotency_key=f"{run_id}:3.refund#1"))
    await emit(ActionSucceeded(action_id="3.refund#1", output={"refund_id": "rf-5521"}))
    reply = "Sorry about the blender. I've refunded 89.00 to your card (rf-5521)."
    await emit(step("3.refund", "refund",
                    (Patch("set", "refund_id", "rf-5521"),
                     Patch("append", "messages", {"role": "assistant", "content": reply})),
                    ()))
    await emit(RunCompleted(output={"reply": reply}))
    return run_id
